"""The display pages (being built)."""

from flask import Blueprint

blueprint = Blueprint("display", __name__)
