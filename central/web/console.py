"""The console pages (being built)."""

from flask import Blueprint

blueprint = Blueprint("console", __name__)
