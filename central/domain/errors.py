"""Every error Nextup raises on purpose.

Each error has one root, ``NextupError``, and also subclasses the builtin it
resembles, so callers may catch either.  ``code`` is the stable machine name
sent to devices and API clients; the message is for a person.
"""

from __future__ import annotations

from datetime import datetime


class NextupError(Exception):
    """Root of every error Nextup raises on purpose."""

    code = "error"

    @property
    def message(self) -> str:
        return str(self.args[0]) if self.args else self.__class__.__name__


class UnknownService(NextupError, LookupError):
    code = "unknown_service"


class ServiceInactive(NextupError, ValueError):
    code = "service_inactive"


class UnknownPriority(NextupError, LookupError):
    code = "unknown_priority"


class PriorityNotAllowed(NextupError, PermissionError):
    code = "priority_not_allowed"


class UnknownPoint(NextupError, LookupError):
    code = "unknown_point"


class UnknownTicket(NextupError, LookupError):
    code = "unknown_ticket"


class UnknownDevice(NextupError, LookupError):
    code = "unknown_device"


class NotPermitted(NextupError, PermissionError):
    """A device or person acting outside its role."""

    code = "not_permitted"


class IllegalTransition(NextupError, ValueError):
    code = "illegal_transition"


class PointInactive(IllegalTransition):
    code = "point_inactive"


class NothingWaiting(NextupError, LookupError):
    code = "nothing_waiting"


class SiteClosed(NextupError, RuntimeError):
    code = "closed"

    def __init__(self, message: str, opens_at: datetime | None = None) -> None:
        super().__init__(message)
        self.opens_at = opens_at


class BadPayload(NextupError, ValueError):
    """A message or request body that does not follow the contract."""

    code = "bad_payload"


class InvalidSiteFile(NextupError, ValueError):
    code = "invalid_site_file"


class StoreUnavailable(NextupError, ConnectionError):
    """The database could not be reached, or refused the work for now: nothing was changed, and the
    same work may succeed later.  ``stale_connection``: the database had dropped the connection
    used, and a new one may succeed at once."""

    code = "unavailable"

    def __init__(self, message: str, *, stale_connection: bool = False) -> None:
        super().__init__(message)
        self.stale_connection = stale_connection
