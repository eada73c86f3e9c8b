"""The specialist's console (/console): work a point from a browser, as its hardware unit would."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, render_template

from .auth import ADMIN, SPECIALIST, init_auth, role_required

blueprint = Blueprint("console", __name__)
blueprint.record_once(lambda state: init_auth(state.app))


@blueprint.get("/")
@role_required(ADMIN, SPECIALIST)
def index() -> Any:
    return render_template("console/index.html")
