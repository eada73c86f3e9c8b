"""Flask extensions shared by every blueprint: one instance each, set up by the factory."""

from __future__ import annotations

from flask import Flask, request
from flask_babel import Babel
from flask_limiter import Limiter
from flask_limiter.util import get_remote_address
from flask_login import LoginManager
from flask_wtf.csrf import CSRFProtect

LANGUAGES = ("en", "de")

csrf = CSRFProtect()
login_manager = LoginManager()
# Limits live in memory: one central process per site serves the web.
limiter = Limiter(key_func=get_remote_address, storage_uri="memory://", default_limits=[])
babel = Babel()


def select_locale() -> str | None:
    return request.accept_languages.best_match(LANGUAGES) or LANGUAGES[0]


def init_extensions(app: Flask) -> None:
    csrf.init_app(app)
    login_manager.init_app(app)
    limiter.init_app(app)
    babel.init_app(app, locale_selector=select_locale)
