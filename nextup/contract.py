"""The MQTT contract between central and the devices of a site.

The only place that spells a topic or a payload field.  Central and every
edge program import it.  Payloads are JSON objects, UTF-8, QoS 1; a parser
either returns a model or raises ``BadPayload`` with the reason, and unknown
fields are ignored so that a newer peer can add some.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field, fields, is_dataclass
from datetime import date, datetime
from functools import cache
from typing import Any

from central.domain.errors import BadPayload
from central.domain.model import SLUG, DeviceKind, PointAction

QOS = 1
MAX_PAYLOAD_BYTES = 16 * 1024
MAX_ID_LENGTH = 128
# \Z, not $: "$" also matches before a final newline ("main\n" would pass).
DEVICE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}\Z")
SITE_KEY = re.compile(r"^[a-z0-9][a-z0-9_-]{0,31}\Z")
LANGUAGE = re.compile(r"^[a-z]{2,3}(-[A-Za-z0-9]{2,8})?\Z")
SHARED_GROUP = "central"


# --- topics ---------------------------------------------------------------


@dataclass(frozen=True)
class Route:
    """What a topic central listens on is about."""

    # "ticket_request" | "ticket_printed" | "command" | "status" | "ticket_offline" | "lease_request"
    kind: str
    device_id: str


class Topics:
    """Topic names of one site: ``nextup/<site>/...``."""

    NAMESPACE = "nextup"

    def __init__(self, site: str) -> None:
        if not SITE_KEY.match(site):
            raise ValueError(f"site key {site!r} is not a slug")
        self.site = site
        self.root = f"{self.NAMESPACE}/{site}"

    @classmethod
    def every_site(cls) -> str:
        """The filter of every Nextup topic of every site (central's broker account)."""
        return f"{cls.NAMESPACE}/#"

    def _device(self, device_id: str, leaf: str) -> str:
        if not DEVICE_ID.match(device_id):
            raise ValueError(f"device id {device_id!r} is not valid")
        return f"{self.root}/device/{device_id}/{leaf}"

    def ticket_request(self, device_id: str) -> str:
        return self._device(device_id, "ticket/request")

    def ticket_reply(self, device_id: str) -> str:
        return self._device(device_id, "ticket/reply")

    def ticket_printed(self, device_id: str) -> str:
        return self._device(device_id, "ticket/printed")

    def command(self, device_id: str) -> str:
        return self._device(device_id, "command")

    def ticket_offline(self, device_id: str) -> str:
        """Kiosk -> central: a ticket the kiosk issued from its lease while it could not reach central."""
        return self._device(device_id, "ticket/offline")

    def ticket_offline_ack(self, device_id: str) -> str:
        """Central -> kiosk: an offline ticket is stored (or refused for good); the kiosk may forget it."""
        return self._device(device_id, "ticket/offline/ack")

    def lease(self, device_id: str) -> str:
        """Central -> kiosk, retained: the blocks of numbers the kiosk may issue offline."""
        return self._device(device_id, "lease")

    def lease_request(self, device_id: str) -> str:
        """Kiosk -> central: lease me numbers of these services for today."""
        return self._device(device_id, "lease/request")

    def device_config(self, device_id: str) -> str:
        return self._device(device_id, "config")

    def device_status(self, device_id: str) -> str:
        return self._device(device_id, "status")

    def point_state(self, serial: int) -> str:
        return f"{self.root}/point/{serial}/state"

    @property
    def site_state(self) -> str:
        return f"{self.root}/site"

    @property
    def board(self) -> str:
        return f"{self.root}/board"

    @property
    def call(self) -> str:
        return f"{self.root}/call"

    def sim_press(self, device_id: str) -> str:
        if not DEVICE_ID.match(device_id):
            raise ValueError(f"device id {device_id!r} is not valid")
        return f"{self.root}/sim/{device_id}/press"

    @property
    def all_point_states(self) -> str:
        return f"{self.root}/point/+/state"

    def central_subscriptions(self, shared: bool = False) -> list[str]:
        """What central listens to; ``shared`` splits it among central instances.

        Statuses are never split: every instance takes every device's statuses in the order the
        device sent them, so the last one each stores is the newest. Split, one instance could
        store "online" just before another stored the older "offline".
        """
        leaves = ("ticket/request", "ticket/printed", "command", "status", "ticket/offline", "lease/request")
        topics = [f"{self.root}/device/+/{leaf}" for leaf in leaves]
        if shared:
            topics = [t if t.endswith("/status") else f"$share/{SHARED_GROUP}/{t}" for t in topics]
        return topics

    def device_tree(self, device_id: str) -> str:
        """The filter of everything under ``device/<id>/``."""
        return self._device(device_id, "#")

    def device_acl(self, device_id: str, kind: str) -> list[tuple[str, str]]:
        """The broker rights of a device of ``kind``: ``(access, topic filter)`` pairs.

        A device writes only the leaves its role sends under its own id, so a
        display cannot send a command even on its own topic; a new leaf a
        device publishes must be added here or the broker refuses it.
        """
        writes = {
            DeviceKind.KIOSK: [
                self.ticket_request(device_id),
                self.ticket_printed(device_id),
                self.ticket_offline(device_id),
                self.lease_request(device_id),
            ],
            DeviceKind.POINT: [self.command(device_id)],
            DeviceKind.DISPLAY: [],
        }
        reads = {
            DeviceKind.KIOSK: [],
            DeviceKind.POINT: [self.all_point_states],
            DeviceKind.DISPLAY: [self.board, self.call, self.all_point_states],
        }
        try:
            role = DeviceKind(kind)
        except ValueError:
            raise ValueError(f"device kind {kind!r} is not one of kiosk, point, display") from None
        rules = [("write", t) for t in [*writes[role], self.device_status(device_id)]]
        own = [self.device_tree(device_id), self.site_state, self.sim_press(device_id)]
        rules += [("read", t) for t in [*own, *reads[role]]]
        return rules

    def route(self, topic: str) -> Route | None:
        """Which device sent ``topic`` and what it is, or None for a topic central ignores."""
        prefix = f"{self.root}/device/"
        if not topic.startswith(prefix):
            return None
        device_id, _, leaf = topic[len(prefix) :].partition("/")
        kind = {
            "ticket/request": "ticket_request",
            "ticket/printed": "ticket_printed",
            "command": "command",
            "status": "status",
            "ticket/offline": "ticket_offline",
            "lease/request": "lease_request",
        }.get(leaf)
        if kind is None or not DEVICE_ID.match(device_id):
            return None
        return Route(kind, device_id)


# --- payload parsing --------------------------------------------------------


def decode(payload: bytes | bytearray | str) -> dict[str, Any]:
    """The JSON object in ``payload``, or ``BadPayload`` saying why not."""
    if isinstance(payload, str):
        try:
            payload = payload.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise BadPayload(f"payload is not valid Unicode: {exc.reason} at {exc.start}") from None
    if len(payload) > MAX_PAYLOAD_BYTES:
        raise BadPayload(f"payload of {len(payload)} bytes is over the limit of {MAX_PAYLOAD_BYTES}")
    try:
        text = bytes(payload).decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BadPayload(f"payload is not UTF-8: {exc.reason} at byte {exc.start}") from None
    try:
        data = json.loads(text, parse_constant=_not_json)
    except RecursionError:
        raise BadPayload("payload JSON is nested too deeply") from None
    except ValueError as exc:
        raise BadPayload(f"payload is not JSON: {exc}") from None
    if not isinstance(data, dict):
        raise BadPayload(f"payload must be a JSON object, not {type(data).__name__}")
    return data


def _not_json(name: str) -> Any:
    # Python's json takes NaN and Infinity; JSON and every other peer do not.
    raise ValueError(f"{name} is not a JSON value")


def _nested(name: str, parse: Any, value: Any) -> Any:
    """``parse(value)`` with a failure's message saying where in the payload it was."""
    try:
        return parse(value)
    except BadPayload as exc:
        raise BadPayload(f"in {name}: {exc.message}") from None


def _objects(data: dict[str, Any], name: str, parse: Any) -> list[Any]:
    values = data.get(name)
    if not isinstance(values, list):
        raise BadPayload(f"field {name!r} must be a list")
    out = []
    for i, value in enumerate(values):
        if not isinstance(value, dict):
            raise BadPayload(f"field {name!r}: item {i} must be an object")
        out.append(_nested(f"{name}[{i}]", parse, value))
    return out


# One encoder for every payload: json.dumps with options builds a new one on each call.
_ENCODER = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False)


def encode(model: Any) -> bytes:
    """The JSON bytes of a payload model (None fields left out)."""
    return _ENCODER.encode(model.to_dict()).encode("utf-8")


def _str(
    data: dict[str, Any],
    name: str,
    *,
    required: bool = True,
    max_length: int = MAX_ID_LENGTH,
    pattern: re.Pattern[str] | None = None,
    choices: frozenset[str] | None = None,
) -> Any:
    value = data.get(name)
    if value is None:
        if required:
            raise BadPayload(f"field {name!r} is missing")
        return None
    if not isinstance(value, str):
        raise BadPayload(f"field {name!r} must be a string, not {type(value).__name__}")
    if not value or len(value) > max_length:
        raise BadPayload(f"field {name!r} must have 1 to {max_length} characters")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        # A lone surrogate ("\ud800") parses, then breaks the reply that echoes it.
        raise BadPayload(f"field {name!r} is not valid Unicode") from None
    if pattern is not None and not pattern.match(value):
        raise BadPayload(f"field {name!r} has an invalid value {value[:40]!r}")
    if choices is not None and value not in choices:
        raise BadPayload(f"field {name!r} must be one of {', '.join(sorted(choices))}, not {value[:40]!r}")
    return value


def _int(data: dict[str, Any], name: str, *, required: bool = True, minimum: int = 0) -> Any:
    value = data.get(name)
    if value is None and not required:
        return None
    if not isinstance(value, int) or isinstance(value, bool):
        raise BadPayload(f"field {name!r} must be an integer")
    if value < minimum:
        raise BadPayload(f"field {name!r} must be at least {minimum}")
    return value


def _bool(data: dict[str, Any], name: str) -> bool:
    value = data.get(name)
    if not isinstance(value, bool):
        raise BadPayload(f"field {name!r} must be true or false")
    return value


def _obj(data: dict[str, Any], name: str, *, required: bool = True) -> Any:
    value = data.get(name)
    if value is None and not required:
        return None
    if not isinstance(value, dict):
        raise BadPayload(f"field {name!r} must be an object")
    return value


@cache
def _field_names(model: type) -> tuple[str, ...]:
    return tuple(f.name for f in fields(model))


def _plain(value: Any) -> Any:
    """``value`` as JSON-able data, as ``dataclasses.asdict`` makes it (states are encoded on every change:
    asdict's deep copy of every field was a tenth of issuing a ticket)."""
    if value is None or isinstance(value, (str, int, float)):
        return value
    if is_dataclass(value):
        return {name: _plain(getattr(value, name)) for name in _field_names(type(value))}
    if isinstance(value, (list, tuple)):
        return type(value)(_plain(v) for v in value)
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


class Payload:
    """Common JSON methods of the payload models."""

    def to_dict(self) -> dict[str, Any]:
        values = ((name, getattr(self, name)) for name in _field_names(type(self)))
        return {name: _plain(value) for name, value in values if value is not None}

    def to_json(self) -> bytes:
        return encode(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Any:
        raise NotImplementedError

    @classmethod
    def parse(cls, payload: bytes | bytearray | str) -> Any:
        return cls.from_dict(decode(payload))


# --- payload models -----------------------------------------------------------


@dataclass(frozen=True)
class TicketRequest(Payload):
    """Kiosk -> central: ``device/<id>/ticket/request``."""

    request_id: str
    service: str
    priority: str | None = None
    language: str | None = None

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TicketRequest:
        return cls(
            request_id=_str(data, "request_id"),
            service=_str(data, "service", pattern=SLUG),
            priority=_str(data, "priority", required=False, pattern=SLUG),
            language=_str(data, "language", required=False, pattern=LANGUAGE),
        )


@dataclass(frozen=True)
class IssuedTicket(Payload):
    number: str
    service: str
    ahead: int
    eta_s: int
    track_url: str

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> IssuedTicket:
        return cls(
            number=_str(data, "number", max_length=16),
            service=_str(data, "service", pattern=SLUG),
            ahead=_int(data, "ahead"),
            eta_s=_int(data, "eta_s"),
            track_url=_str(data, "track_url", max_length=2048),
        )


@dataclass(frozen=True)
class ErrorInfo(Payload):
    code: str
    message: str

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ErrorInfo:
        return cls(code=_str(data, "code", max_length=64), message=_str(data, "message", max_length=1024))


@dataclass(frozen=True)
class TicketReply(Payload):
    """Central -> kiosk: the ticket, or the reason there is none."""

    request_id: str
    ok: bool
    ticket: IssuedTicket | None = None
    error: ErrorInfo | None = None

    @classmethod
    def success(cls, request_id: str, ticket: IssuedTicket) -> TicketReply:
        return cls(request_id=request_id, ok=True, ticket=ticket)

    @classmethod
    def failure(cls, request_id: str, code: str, message: str) -> TicketReply:
        return cls(request_id=request_id, ok=False, error=ErrorInfo(code, message))

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"request_id": self.request_id, "ok": self.ok}
        if self.ticket is not None:
            out["ticket"] = self.ticket.to_dict()
        if self.error is not None:
            out["error"] = self.error.to_dict()
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TicketReply:
        ok = _bool(data, "ok")
        return cls(
            request_id=_str(data, "request_id"),
            ok=ok,
            ticket=_nested("ticket", IssuedTicket.from_dict, _obj(data, "ticket")) if ok else None,
            error=None if ok else _nested("error", ErrorInfo.from_dict, _obj(data, "error")),
        )


@dataclass(frozen=True)
class TicketPrinted(Payload):
    """Kiosk -> central: whether the ticket of a request came out of the printer.

    A ticket that could not be printed stays valid in the queue; central
    records it so that the admin can see it.
    """

    request_id: str
    number: str
    printed: bool
    reason: str | None = None

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TicketPrinted:
        return cls(
            request_id=_str(data, "request_id"),
            number=_str(data, "number", max_length=16),
            printed=_bool(data, "printed"),
            reason=_str(data, "reason", required=False, max_length=256),
        )


ACTIONS = frozenset(a.value for a in PointAction)


@dataclass(frozen=True)
class Command(Payload):
    """Point unit -> central: ``device/<id>/command``."""

    command_id: str
    action: str

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Command:
        return cls(command_id=_str(data, "command_id"), action=_str(data, "action", choices=ACTIONS))


@dataclass(frozen=True)
class Current(Payload):
    number: str
    service: str


@dataclass(frozen=True)
class PointState(Payload):
    """Central -> all, retained: ``point/<serial>/state``."""

    serial: int
    name: str
    active: bool
    current: Current | None
    waiting: int
    last_command_id: str | None = None
    version: int = 0
    last_error: dict[str, str] | None = None
    """Why the last command was refused ({"code", "message"}), or None when it took effect."""

    def to_dict(self) -> dict[str, Any]:
        # Written out: every change encodes the state of each point of its services.
        current, error = self.current, self.last_error
        return {
            "serial": self.serial,
            "name": self.name,
            "active": self.active,
            "current": None if current is None else {"number": current.number, "service": current.service},
            "waiting": self.waiting,
            "last_command_id": self.last_command_id,
            "version": self.version,
            "last_error": None if error is None else dict(error),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PointState:
        current = _obj(data, "current", required=False)
        return cls(
            serial=_int(data, "serial", minimum=1),
            name=_str(data, "name", max_length=64),
            active=_bool(data, "active"),
            current=None
            if current is None
            else _nested(
                "current", lambda c: Current(_str(c, "number", max_length=16), _str(c, "service")), current
            ),
            waiting=_int(data, "waiting"),
            last_command_id=_str(data, "last_command_id", required=False),
            version=_int(data, "version", required=False) or 0,
            last_error=_error_dict(_obj(data, "last_error", required=False)),
        )


def _error_dict(data: dict[str, Any] | None) -> dict[str, str] | None:
    if data is None:
        return None
    return {"code": _str(data, "code", max_length=64), "message": _str(data, "message", max_length=1024)}


@dataclass(frozen=True)
class ServiceInfo(Payload):
    key: str
    name: str
    prefix: str
    active: bool


@dataclass(frozen=True)
class SiteState(Payload):
    """Central -> all, retained: ``site``."""

    name: str
    open: bool
    services: list[ServiceInfo]
    opens_at: str | None = None

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SiteState:
        return cls(
            name=_str(data, "name", max_length=128),
            open=_bool(data, "open"),
            services=_objects(
                data,
                "services",
                lambda s: ServiceInfo(
                    _str(s, "key"),
                    _str(s, "name", max_length=128),
                    _str(s, "prefix", max_length=3),
                    _bool(s, "active"),
                ),
            ),
            opens_at=_str(data, "opens_at", required=False, max_length=64),
        )


@dataclass(frozen=True)
class CallInfo(Payload):
    """Central -> displays: ``call``, one ticket called to one point."""

    number: str
    point: int
    point_name: str
    service: str
    at: str
    language: str | None = None

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CallInfo:
        return cls(
            number=_str(data, "number", max_length=16),
            point=_int(data, "point", minimum=1),
            point_name=_str(data, "point_name", max_length=64),
            service=_str(data, "service"),
            at=_str(data, "at", max_length=64),
            language=_str(data, "language", required=False, pattern=LANGUAGE),
        )


@dataclass(frozen=True)
class Board(Payload):
    """Central -> displays, retained: ``board``; newest call first."""

    calls: list[CallInfo]
    waiting: dict[str, int]
    version: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "calls": [c.to_dict() for c in self.calls],
            "waiting": dict(self.waiting),
            "version": self.version,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Board:
        calls = _objects(data, "calls", CallInfo.from_dict)
        waiting = _obj(data, "waiting")
        if not all(isinstance(v, int) and not isinstance(v, bool) for v in waiting.values()):
            raise BadPayload("field 'waiting' must map service keys to counts")
        return cls(
            calls=calls,
            waiting=dict(waiting),
            version=_int(data, "version", required=False) or 0,
        )


@dataclass(frozen=True)
class DeviceConfig(Payload):
    """Central -> one device, retained: what the registry says of it."""

    kind: str
    point: int | None = None
    language: str | None = None
    buttons: dict[str, dict[str, str | None]] | None = None
    """Kiosks: button name -> {"service", "priority"}; absent means one button per active service."""

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DeviceConfig:
        buttons = _obj(data, "buttons", required=False)
        if buttons is not None:
            buttons = {
                str(name)[:32]: {
                    "service": _str(b, "service", pattern=SLUG),
                    "priority": _str(b, "priority", required=False, pattern=SLUG),
                }
                for name, b in buttons.items()
                if isinstance(b, dict)
            }
        return cls(
            kind=_str(data, "kind", choices=frozenset(k.value for k in DeviceKind)),
            point=_int(data, "point", required=False, minimum=1),
            language=_str(data, "language", required=False, pattern=LANGUAGE),
            buttons=buttons,
        )


@dataclass(frozen=True)
class DeviceStatus(Payload):
    """Device -> central, retained and as the device's will."""

    online: bool
    kind: str
    version: str
    printer: str | None = None
    details: dict[str, Any] | None = field(default=None)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DeviceStatus:
        details = _obj(data, "details", required=False)
        return cls(
            online=_bool(data, "online"),
            kind=_str(data, "kind", choices=frozenset(k.value for k in DeviceKind)),
            version=_str(data, "version", max_length=64),
            printer=_str(data, "printer", required=False, max_length=64),
            details=details,
        )


# --- offline kiosk: leased numbers -------------------------------------------------

TOKEN = re.compile(r"^[A-Za-z0-9_-]{16,64}\Z")
MAX_LEASE_BLOCKS = 64
MAX_BLOCK_SIZE = 10_000


def _day(data: dict[str, Any], name: str) -> str:
    value = _str(data, name, max_length=10)
    try:
        date.fromisoformat(value)
    except ValueError:
        raise BadPayload(f"field {name!r} must be a date (YYYY-MM-DD), not {value!r}") from None
    return value


def _instant(data: dict[str, Any], name: str) -> str:
    value = _str(data, name, max_length=40)
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise BadPayload(f"field {name!r} must be an ISO 8601 time, not {value!r}") from None
    if moment.tzinfo is None:
        # A time without its offset means another thing in every time zone.
        raise BadPayload(f"field {name!r} must carry its UTC offset")
    return value


@dataclass(frozen=True)
class LeaseBlock(Payload):
    """Numbers ``first``..``last`` of one service's ``day``, leased to one kiosk.

    ``used_up_to`` is the highest number central has received an offline
    ticket for (``first - 1`` when none); ``id`` names the block for good.
    """

    id: int
    service: str
    prefix: str
    day: str
    first: int
    last: int
    used_up_to: int

    @property
    def day_date(self) -> date:
        return date.fromisoformat(self.day)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> LeaseBlock:
        block = cls(
            id=_int(data, "id", minimum=1),
            service=_str(data, "service", pattern=SLUG),
            prefix=_str(data, "prefix", max_length=3),
            day=_day(data, "day"),
            first=_int(data, "first", minimum=1),
            last=_int(data, "last", minimum=1),
            used_up_to=_int(data, "used_up_to"),
        )
        if not block.first <= block.last < block.first + MAX_BLOCK_SIZE:
            raise BadPayload(f"block {block.id}: numbers {block.first}..{block.last} are not a block")
        if not block.first - 1 <= block.used_up_to <= block.last:
            raise BadPayload(f"block {block.id}: used_up_to {block.used_up_to} is outside the block")
        return block


@dataclass(frozen=True)
class NumberLease(Payload):
    """Central -> kiosk, retained: ``device/<id>/lease``, every block the kiosk holds for today.

    ``tz`` is the site's time zone, in which a block's ``day`` runs; a kiosk
    issues from a block only on that day.  ``track_base`` + a ticket's token
    is the page that follows it.  ``version`` grows with every change; a
    kiosk ignores an older one.
    """

    version: int
    tz: str
    blocks: list[LeaseBlock]
    track_base: str | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "version": self.version,
            "tz": self.tz,
            "blocks": [b.to_dict() for b in self.blocks],
        }
        if self.track_base is not None:
            out["track_base"] = self.track_base
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> NumberLease:
        tz = _str(data, "tz", max_length=64)
        # imported here: zoneinfo brings sysconfig and its data, which only a kiosk's lease needs
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(tz)
        except (ZoneInfoNotFoundError, ValueError):
            raise BadPayload(f"field 'tz' is not a known time zone: {tz!r}") from None
        blocks = _objects(data, "blocks", LeaseBlock.from_dict)
        if len(blocks) > MAX_LEASE_BLOCKS:
            raise BadPayload(f"a lease holds at most {MAX_LEASE_BLOCKS} blocks")
        return cls(
            version=_int(data, "version"),
            tz=tz,
            blocks=blocks,
            track_base=_str(data, "track_base", required=False, max_length=1024),
        )


@dataclass(frozen=True)
class LeaseRequest(Payload):
    """Kiosk -> central: ``device/<id>/lease/request``, the services its buttons issue."""

    services: list[str]

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> LeaseRequest:
        values = data.get("services")
        if not isinstance(values, list) or len(values) > MAX_LEASE_BLOCKS:
            raise BadPayload(f"field 'services' must be a list of at most {MAX_LEASE_BLOCKS} service keys")
        services = [_str({"service": v}, "service", pattern=SLUG) for v in values]
        return cls(services=sorted(set(services)))


@dataclass(frozen=True)
class OfflineTicket(Payload):
    """Kiosk -> central: ``device/<id>/ticket/offline``, a ticket printed from leased block ``lease``.

    ``issued_at`` (with its UTC offset) is when it was printed: it enters the
    queue at that time.  ``token`` (made by the kiosk) is its tracking token;
    ``printed`` is absent when the kiosk does not know (it stopped mid-print).
    """

    request_id: str
    lease: int
    service: str
    number: str
    seq: int
    day: str
    issued_at: str
    priority: str | None = None
    language: str | None = None
    token: str | None = None
    printed: bool | None = None
    reason: str | None = None

    @property
    def day_date(self) -> date:
        return date.fromisoformat(self.day)

    @property
    def issued(self) -> datetime:
        return datetime.fromisoformat(self.issued_at)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> OfflineTicket:
        printed = data.get("printed")
        if printed is not None and not isinstance(printed, bool):
            raise BadPayload("field 'printed' must be true or false")
        return cls(
            request_id=_str(data, "request_id"),
            lease=_int(data, "lease", minimum=1),
            service=_str(data, "service", pattern=SLUG),
            number=_str(data, "number", max_length=16),
            seq=_int(data, "seq", minimum=1),
            day=_day(data, "day"),
            issued_at=_instant(data, "issued_at"),
            priority=_str(data, "priority", required=False, pattern=SLUG),
            language=_str(data, "language", required=False, pattern=LANGUAGE),
            token=_str(data, "token", required=False, pattern=TOKEN),
            printed=printed,
            reason=_str(data, "reason", required=False, max_length=256),
        )


@dataclass(frozen=True)
class OfflineTicketAck(Payload):
    """Central -> kiosk: ``device/<id>/ticket/offline/ack``.

    ``ok``: the ticket is stored, ``state`` "waiting" (in the queue at its
    issue time) or "expired" (its day was over when it arrived).  Not ok: it
    is refused for good (``error``: not_leased, number_taken, ...).  Either
    way the kiosk stops sending it.
    """

    request_id: str
    ok: bool
    number: str | None = None
    state: str | None = None
    error: ErrorInfo | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"request_id": self.request_id, "ok": self.ok}
        for name in ("number", "state"):
            if getattr(self, name) is not None:
                out[name] = getattr(self, name)
        if self.error is not None:
            out["error"] = self.error.to_dict()
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> OfflineTicketAck:
        ok = _bool(data, "ok")
        return cls(
            request_id=_str(data, "request_id"),
            ok=ok,
            number=_str(data, "number", required=False, max_length=16),
            state=_str(data, "state", required=False, max_length=16),
            error=None if ok else _nested("error", ErrorInfo.from_dict, _obj(data, "error")),
        )


PAYLOAD_OF_ROUTE: dict[str, type[Payload]] = {
    "ticket_request": TicketRequest,
    "ticket_printed": TicketPrinted,
    "command": Command,
    "status": DeviceStatus,
    "ticket_offline": OfflineTicket,
    "lease_request": LeaseRequest,
}
"""The model of what central receives, by ``Route.kind``."""
