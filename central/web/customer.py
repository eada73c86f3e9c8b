"""The customer pages (being built)."""

from flask import Blueprint

blueprint = Blueprint("customer", __name__)
