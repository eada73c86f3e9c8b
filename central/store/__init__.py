"""Storage: SQLAlchemy models, engine set-up and Alembic migrations."""

from .db import Store

__all__ = ["Store"]
