"""The admin panel (/admin): the site's registry, opening hours and tickets that need a look.

Every page is for admins only (``role_required(ADMIN)``); every change goes
through ``central.registry`` (one transaction, then the new retained states
are published).
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, render_template

from .auth import ADMIN, add_auth_routes, role_required

blueprint = Blueprint("admin", __name__)
add_auth_routes(blueprint)


@blueprint.get("/")
@role_required(ADMIN)
def index() -> Any:
    return render_template("admin/index.html")
