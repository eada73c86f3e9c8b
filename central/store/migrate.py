"""Alembic migrations, run from code (``nextup db upgrade``)."""

from __future__ import annotations

import logging
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

from central.domain.errors import NextupError

from .db import make_engine, normalise_url

MIGRATIONS = Path(__file__).with_name("migrations")

# Alembic announces each of its plugins at INFO on every run; the migrations it runs are what matter.
logging.getLogger("alembic.runtime.plugins").setLevel(logging.WARNING)


class SchemaOutdated(NextupError, RuntimeError):
    code = "schema_outdated"


def alembic_config(url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option("sqlalchemy.url", normalise_url(url).replace("%", "%%"))
    return config


def upgrade(url: str, revision: str = "head") -> None:
    """Migrate the database at ``url`` to ``revision`` (creating the SQLite file if needed)."""
    if url.startswith("sqlite:///"):
        Path(url[len("sqlite:///") :]).parent.mkdir(parents=True, exist_ok=True)
    command.upgrade(alembic_config(url), revision)


def head_revision() -> str:
    head = ScriptDirectory.from_config(alembic_config("sqlite://")).get_current_head()
    assert head is not None
    return head


def current_revision(url: str) -> str | None:
    engine = make_engine(url)
    try:
        with engine.connect() as connection:
            return MigrationContext.configure(connection).get_current_revision()
    finally:
        engine.dispose()


def check_schema(url: str) -> None:
    """Raise ``SchemaOutdated`` unless the database is at the newest schema."""
    current, head = current_revision(url), head_revision()
    if current != head:
        where = "empty" if current is None else f"at revision {current}"
        raise SchemaOutdated(f"the database is {where}, this Nextup needs {head}: run `nextup db upgrade`")
