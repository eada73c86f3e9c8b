"""The HTTP side of central: a Flask application factory, one blueprint per audience.

- ``api``      JSON API under /api/v1, for apps and scripts;
- ``customer`` the public pages: services, take a ticket, follow it (/, /t/<token>);
- ``display``  the web board for any TV with a browser (/board);
- ``console``  the specialist's console at a point (/console);
- ``admin``    the admin panel (/admin).
"""

from __future__ import annotations

import logging
import os
from typing import Any

from flask import Flask, request
from werkzeug.exceptions import HTTPException, ServiceUnavailable

from central.coordinator import Coordinator
from central.domain.errors import StoreUnavailable
from nextup.logs import RateLimitedLog

# Every request fails alike while the database is away: a line each would flood the disk.
outage_log = RateLimitedLog(logging.getLogger(__name__))


def create_app(
    coordinator: Coordinator, *, bridge: Any = None, config: dict[str, Any] | None = None
) -> Flask:
    """The web application of one site, over ``coordinator`` (and ``bridge`` for health)."""
    app = Flask(__name__, instance_relative_config=False)
    app.config.from_mapping(
        SECRET_KEY=os.environ.get("NEXTUP_SECRET_KEY") or os.urandom(32),
        MAX_CONTENT_LENGTH=64 * 1024,
    )
    app.config.from_prefixed_env("NEXTUP")
    if config:
        app.config.update(config)
    app.extensions["nextup.coordinator"] = coordinator
    app.extensions["nextup.bridge"] = bridge

    from .extensions import csrf, init_extensions

    init_extensions(app)

    from . import admin, api, console, customer, dashboard, display

    csrf.exempt(
        api.blueprint
    )  # JSON clients send no form token; the API takes no cookie-authenticated action
    app.register_blueprint(api.blueprint, url_prefix="/api/v1")
    app.register_blueprint(customer.blueprint)
    app.register_blueprint(display.blueprint)
    app.register_blueprint(console.blueprint, url_prefix="/console")
    app.register_blueprint(admin.blueprint, url_prefix="/admin")
    app.register_blueprint(dashboard.blueprint, url_prefix="/admin")  # /admin/dashboard, /admin/stats

    from central import metrics

    metrics.init_app(app)  # /metrics for Prometheus, and the latency of every request
    if app.config.get("DEMO"):  # `nextup demo` only: the virtual hall drives the sim devices
        from . import demo

        app.register_blueprint(demo.blueprint, url_prefix="/demo")

    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException) -> Any:
        # Unmatched URLs belong to no blueprint: answer API clients in JSON all the same.
        if request.path.startswith("/api/"):
            return api.http_error(exc)
        return exc

    @app.errorhandler(StoreUnavailable)
    def _store_unavailable(exc: StoreUnavailable) -> Any:
        # The API answers its own routes (503 in JSON); a page says to try again, not "server error".
        outage_log.log("unavailable", logging.ERROR, "%s: %s %s", exc.message, request.method, request.path)
        page = ServiceUnavailable("The queue cannot be reached just now; please try again in a moment.")
        response = page.get_response()
        response.headers["Retry-After"] = "5"
        return response

    return app
