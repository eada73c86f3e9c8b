"""The HTTP side of central: a Flask application factory, one blueprint per audience."""

from __future__ import annotations

import os
from typing import Any

from flask import Flask

from central.coordinator import Coordinator


def create_app(coordinator: Coordinator, *, bridge: Any = None, config: dict[str, Any] | None = None) -> Flask:
    """The web application of one site, over ``coordinator`` (and ``bridge`` for health)."""
    app = Flask(__name__, instance_relative_config=False)
    app.config.from_mapping(
        SECRET_KEY=os.environ.get("NEXTUP_SECRET_KEY") or os.urandom(32),
        JSON_SORT_KEYS=False,
        MAX_CONTENT_LENGTH=64 * 1024,
    )
    app.config.from_prefixed_env("NEXTUP")
    if config:
        app.config.update(config)
    app.extensions["nextup.coordinator"] = coordinator
    app.extensions["nextup.bridge"] = bridge

    from . import api

    app.register_blueprint(api.blueprint, url_prefix="/api/v1")
    return app
