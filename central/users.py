"""People who sign in: admins and specialists.  Passwords are hashed with argon2id."""

from __future__ import annotations

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import select

from central.domain.errors import NextupError
from central.store import Store
from central.store.migrate import check_schema
from central.store.models import UserRow
from nextup.settings import Settings

ROLES = ("admin", "specialist")
MIN_PASSWORD = 10

hasher = PasswordHasher()  # argon2id with the library's current recommended parameters


class BadPassword(NextupError, ValueError):
    code = "bad_password"


def hash_password(password: str) -> str:
    if len(password) < MIN_PASSWORD:
        raise BadPassword(f"a password needs at least {MIN_PASSWORD} characters")
    return hasher.hash(password)


def verify_password(stored_hash: str | None, password: str) -> bool:
    """Whether ``password`` matches; False for a user without a password."""
    if not stored_hash:
        # Spend the same time as a real check so a timing cannot tell which users exist.
        hasher.hash(password or "x")
        return False
    try:
        return hasher.verify(stored_hash, password)
    except (VerificationError, InvalidHashError):
        return False


def set_user(store: Store, name: str, role: str, password: str) -> None:
    """Create ``name`` with ``role`` and ``password``, or give both to an existing user."""
    if role not in ROLES:
        raise ValueError(f"role must be one of {', '.join(ROLES)}")
    password_hash = hash_password(password)
    with store.write() as s:
        row = s.scalars(select(UserRow).where(UserRow.name == name)).one_or_none()
        if row is None:
            s.add(UserRow(name=name, role=role, password_hash=password_hash, active=True))
        else:
            row.role, row.password_hash, row.active = role, password_hash, True


def add_user(settings: Settings, name: str, role: str, password: str) -> None:
    """``nextup user add``."""
    check_schema(settings.database)
    store = Store(settings.database)
    try:
        set_user(store, name, role, password)
    finally:
        store.close()
