"""The admin pages (being built)."""

from flask import Blueprint

blueprint = Blueprint("admin", __name__)
