"""The MQTT contract between central and the devices of a site.

The only place that spells a topic or a payload field.  Central and every
edge program import it.  Payloads are JSON objects, UTF-8, QoS 1; a parser
either returns a model or raises ``BadPayload`` with the reason, and unknown
fields are ignored so that a newer peer can add some.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, field
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

    kind: str  # "ticket_request" | "ticket_printed" | "command" | "status"
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
        """What central listens to; ``shared`` splits it among central instances."""
        leaves = ("ticket/request", "ticket/printed", "command", "status")
        topics = [f"{self.root}/device/+/{leaf}" for leaf in leaves]
        if shared:
            topics = [f"$share/{SHARED_GROUP}/{t}" for t in topics]
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
            DeviceKind.KIOSK: [self.ticket_request(device_id), self.ticket_printed(device_id)],
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


def encode(model: Any) -> bytes:
    """The JSON bytes of a payload model (None fields left out)."""
    return json.dumps(model.to_dict(), separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def _str(
    data: dict[str, Any], name: str, *, required: bool = True, max_length: int = MAX_ID_LENGTH,
    pattern: re.Pattern[str] | None = None, choices: frozenset[str] | None = None,
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


class Payload:
    """Common JSON methods of the payload models."""

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if v is not None}  # type: ignore[call-overload]

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
        out = asdict(self)
        out["current"] = self.current.to_dict() if self.current else None
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PointState:
        current = _obj(data, "current", required=False)
        return cls(
            serial=_int(data, "serial", minimum=1),
            name=_str(data, "name", max_length=64),
            active=_bool(data, "active"),
            current=None if current is None else _nested(
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
                    _str(s, "key"), _str(s, "name", max_length=128), _str(s, "prefix", max_length=3),
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
        return {"calls": [c.to_dict() for c in self.calls], "waiting": dict(self.waiting), "version": self.version}

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
                str(name)[:32]: {"service": _str(b, "service", pattern=SLUG),
                                 "priority": _str(b, "priority", required=False, pattern=SLUG)}
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


PAYLOAD_OF_ROUTE: dict[str, type[Payload]] = {
    "ticket_request": TicketRequest,
    "ticket_printed": TicketPrinted,
    "command": Command,
    "status": DeviceStatus,
}
"""The model of what central receives, by ``Route.kind``."""
