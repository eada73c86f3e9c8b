"""Reading a site file (``nextup site apply FILE.toml``) into plain, checked values.

The file is checked as a whole: every problem is reported with its line and
reason, one per line, so a person fixes the file in one go; when there is any
problem nothing is returned.  tomllib keeps no positions, so ``_Locator``
finds the line of each table and key in the text itself.

The format is documented in examples/site.toml.  Writing the result to the
database is not done here.
"""

from __future__ import annotations

import difflib
import json
import re
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date, datetime, time
from os import PathLike
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from central.domain.errors import InvalidSiteFile
from central.domain.hours import WEEKDAYS, OpeningHours
from central.domain.model import PREFIX, SLUG, DeviceKind
from central.domain.policy import PolicyKind, PriorityPolicy
from nextup.contract import DEVICE_ID, LANGUAGE

USER_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}$")
ROLES = ("admin", "specialist")
DEFAULT_AGING_AFTER_S = 600

_INTERVAL = re.compile(r"^\s*(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})\s*$")
_ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


@dataclass(frozen=True)
class PrioritySpec:
    """A priority class; ``rank`` is its place in the file, 0 = first = highest."""

    key: str
    name: str
    rank: int
    public: bool = True


@dataclass(frozen=True)
class ServiceSpec:
    key: str
    name: str
    description: str
    prefix: str
    active: bool = True


@dataclass(frozen=True)
class PointSpec:
    serial: int
    name: str
    services: tuple[str, ...]
    active: bool = True


@dataclass(frozen=True)
class KioskButton:
    """What one kiosk button issues: a ticket for ``service``, of class ``priority`` if set."""

    service: str
    priority: str | None = None


@dataclass(frozen=True)
class DeviceSpec:
    """A device of the registry.

    ``point`` is set exactly for kind "point".  ``buttons`` (kiosks only) maps
    a button's name to what it issues; None means one button per active
    service, named by the service key.
    """

    id: str
    kind: DeviceKind
    point: int | None = None
    language: str | None = None
    buttons: Mapping[str, KioskButton] | None = None


@dataclass(frozen=True)
class UserSpec:
    """A person who signs in; the password is never in the site file."""

    name: str
    role: str
    points: tuple[int, ...] = ()


@dataclass(frozen=True)
class SiteSpec:
    """Everything a site file declares, checked.

    ``hours`` holds the declared weekdays only (0 = Monday), intervals sorted;
    with ``hours_declared`` false the site is always open.
    """

    name: str
    timezone: str
    language: str
    policy: PolicyKind
    aging_after_s: int
    ratio: tuple[int, ...]
    priorities: tuple[PrioritySpec, ...]
    services: tuple[ServiceSpec, ...]
    points: tuple[PointSpec, ...]
    devices: tuple[DeviceSpec, ...]
    users: tuple[UserSpec, ...]
    hours: Mapping[int, tuple[tuple[time, time], ...]]
    closed_dates: frozenset[date]
    hours_declared: bool

    @property
    def opening_hours(self) -> OpeningHours:
        return OpeningHours(weekly=dict(self.hours), closed_dates=self.closed_dates)

    @property
    def priority_policy(self) -> PriorityPolicy:
        return PriorityPolicy(kind=self.policy, aging_after_s=self.aging_after_s, ratio=self.ratio)


def parse_site_file(path: str | PathLike[str]) -> SiteSpec:
    """Read and check the site file at ``path``; errors name it as given."""
    source = str(path)
    try:
        raw = Path(path).read_bytes()
    except OSError as exc:
        raise InvalidSiteFile(f"{source}: cannot read the site file: {exc.strerror or exc}") from exc
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise InvalidSiteFile(f"{source}:{line}: the site file is not UTF-8 text") from None
    return parse_site_text(text.removeprefix("\ufeff"), source)


def parse_site_text(text: str, source: str = "<site>") -> SiteSpec:
    """Check a site file's text; ``source`` names it in error messages.

    Raises InvalidSiteFile listing every problem, one ``source:line: reason``
    per line.
    """
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise _syntax_error(exc, text, source) from None
    return _Checker(data, _Locator(text), source).spec()


def _syntax_error(exc: tomllib.TOMLDecodeError, text: str, source: str) -> InvalidSiteFile:
    reason = str(exc)
    found = re.search(r"\s*\(at line (\d+), column (\d+)\)\s*$", reason)
    if found:
        where = f"{found[1]}:{found[2]}"
        reason = reason[: found.start()]
    else:
        where = str(text.count("\n") + 1)
        reason = re.sub(r"\s*\(at end of document\)\s*$", " at the end of the file", reason)
    return InvalidSiteFile(f"{source}:{where}: not valid TOML: {reason}")


# --- where things are in the text -------------------------------------------------------------

Path_ = tuple[str | int, ...]
"""A place in the parsed document: ("point", 2, "services") is the third [[point]]'s services."""


class _Locator:
    """The line each table and key of a valid TOML text starts on."""

    def __init__(self, text: str) -> None:
        self._where: dict[Path_, int] = {}
        self._arrays: dict[Path_, int] = {}
        self._scan(text)

    def line(self, path: Path_) -> int:
        """The line of ``path``, else of the nearest enclosing table or key that has one."""
        while path:
            if path in self._where:
                return self._where[path]
            path = path[:-1]
        return 1

    def _scan(self, text: str) -> None:
        table: Path_ = ()
        depth = 0
        in_multiline: str | None = None
        # tomllib counts lines by "\n" only, so must we.
        for number, line in enumerate(text.split("\n"), 1):
            pos = 0
            if depth == 0 and in_multiline is None:
                body = line.lstrip()
                start = len(line) - len(body)
                if body.startswith("["):
                    table = self._header(line, start, number)
                    continue
                if body and not body.startswith("#"):
                    parts, pos = _read_key(line, start)
                    self._mark(table + tuple(parts), number, keep=len(table))
                    pos += 1  # the "="
            depth, in_multiline = _skip_value(line, pos, depth, in_multiline)

    def _header(self, line: str, start: int, number: int) -> Path_:
        is_array = line.startswith("[[", start)
        parts, _ = _read_key(line, start + (2 if is_array else 1))
        if is_array:
            parent = self._resolve(parts[:-1]) + (parts[-1],)
            index = self._arrays.get(parent, 0)
            self._arrays[parent] = index + 1
            path = parent + (index,)
        else:
            path = self._resolve(parts)
        self._mark(path, number)
        return path

    def _resolve(self, parts: list[str]) -> Path_:
        # A dotted header name goes into the latest element of any array of tables on its way.
        path: Path_ = ()
        for part in parts:
            path += (part,)
            if path in self._arrays:
                path += (self._arrays[path] - 1,)
        return path

    def _mark(self, path: Path_, number: int, keep: int = 0) -> None:
        for end in range(max(keep, 0) + 1, len(path) + 1):
            self._where.setdefault(path[:end], number)


def _read_key(line: str, pos: int) -> tuple[list[str], int]:
    """The dotted key starting at ``pos`` and the position just after it."""
    parts: list[str] = []
    n = len(line)
    while True:
        while pos < n and line[pos] in " \t":
            pos += 1
        if pos < n and line[pos] in "\"'":
            quote = line[pos]
            end = pos + 1
            while end < n and line[end] != quote:
                end += 2 if quote == '"' and line[end] == "\\" else 1
            raw = line[pos : end + 1]
            parts.append(tomllib.loads(f"k = {raw}")["k"])
            pos = end + 1
        else:
            end = pos
            while end < n and (line[end].isascii() and (line[end].isalnum() or line[end] in "_-")):
                end += 1
            parts.append(line[pos:end])
            pos = end
        while pos < n and line[pos] in " \t":
            pos += 1
        if pos < n and line[pos] == ".":
            pos += 1
            continue
        return parts, pos


def _skip_value(line: str, i: int, depth: int, in_multiline: str | None) -> tuple[int, str | None]:
    """Step over a value's text, tracking open arrays, inline tables and multi-line strings."""
    n = len(line)
    while i < n:
        if in_multiline:
            if in_multiline == '"""' and line[i] == "\\":
                i += 2
            elif line.startswith(in_multiline, i):
                i += 3
                # Up to two more quotes right before the closing ones belong to the string.
                while i < n and line[i] == in_multiline[0]:
                    i += 1
                in_multiline = None
            else:
                i += 1
            continue
        c = line[i]
        if c == "#":
            break
        if line.startswith('"""', i) or line.startswith("'''", i):
            in_multiline = line[i : i + 3]
            i += 3
            continue
        if c == '"':
            i += 1
            while i < n and line[i] != '"':
                i += 2 if line[i] == "\\" else 1
        elif c == "'":
            end = line.find("'", i + 1)
            i = n if end < 0 else end
        elif c in "[{":
            depth += 1
        elif c in "]}":
            depth -= 1
        i += 1
    return depth, in_multiline


# --- checking ---------------------------------------------------------------------------------

_TABLES = ("site", "hours")
_ARRAYS = ("priority", "service", "point", "device", "user")

_WHAT_A_SITE_FILE_HAS = (
    "a site file has [site], [hours], [[priority]], [[service]], [[point]], [[device]], [[user]]"
)
_SITE_KEYS = ("name", "timezone", "language", "priority_policy", "aging_after_s", "priority_ratio")
_PRIORITY_KEYS = ("key", "name", "public")
_SERVICE_KEYS = ("key", "name", "description", "prefix", "active")
_POINT_KEYS = ("serial", "name", "services", "active")
_DEVICE_KEYS = ("id", "kind", "point", "language", "buttons")
_BUTTON_KEYS = ("service", "priority")
_USER_KEYS = ("name", "role", "points")


def _q(value: str) -> str:
    return json.dumps(value, ensure_ascii=False)


def _describe(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return f"the string {_q(value)}"
    if isinstance(value, int):
        return f"the integer {value}"
    if isinstance(value, float):
        return f"the number {value}"
    if isinstance(value, dict):
        return "a table"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, datetime):
        return f"the date-time {value.isoformat()}"
    if isinstance(value, date):
        return f"the date {value.isoformat()}"
    if isinstance(value, time):
        return f"the time {value.isoformat()}"
    return type(value).__name__


def _is_str(v: Any) -> bool:
    return isinstance(v, str)


def _is_bool(v: Any) -> bool:
    return isinstance(v, bool)


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_str_list(v: Any) -> bool:
    return isinstance(v, list) and all(isinstance(x, str) for x in v)


def _is_int_list(v: Any) -> bool:
    return isinstance(v, list) and all(_is_int(x) for x in v)


class _Table:
    """One table of the file: its keys read with type checks, problems reported at their lines."""

    def __init__(self, check: _Checker, data: dict[str, Any], path: Path_, label: str) -> None:
        self.check = check
        self.data = data
        self.path = path
        self.label = label

    def line(self, key: str | None = None) -> int:
        return self.check.locator.line(self.path + ((key,) if key else ()))

    def fail(self, key: str | None, reason: str) -> None:
        self.check.fail(self.line(key), f"{self.label}: {reason}")

    def known_keys(self, known: tuple[str, ...], hint: str = "") -> None:
        for key in self.data:
            if key not in known:
                self.fail(key, f"unknown key {_q(key)}{hint or _suggest(key, known)}")

    def get(
        self,
        key: str,
        test: Callable[[Any], bool],
        expected: str,
        *,
        default: Any = None,
        required: str | None = None,
    ) -> Any:
        """The value of ``key``, ``default`` when absent, None when wrong (and reported)."""
        if key not in self.data:
            if required is not None:
                self.fail(None, f"{key} is missing{required}")
            return default
        value = self.data[key]
        if not test(value):
            self.fail(key, f"{key} must be {expected}, not {_describe(value)}")
            return None
        return value

    def text(
        self, key: str, *, default: str | None = None, required: str | None = None, empty_ok: bool = False
    ) -> str | None:
        value = self.get(key, _is_str, "a string", default=default, required=required)
        if value is not None and not empty_ok and not value.strip():
            self.fail(key, f"{key} must not be empty")
            return None
        return value

    def matching(
        self,
        key: str,
        pattern: re.Pattern[str],
        rule: str,
        *,
        default: str | None = None,
        required: str | None = None,
    ) -> str | None:
        value = self.get(key, _is_str, "a string", default=default, required=required)
        if value is not None and not pattern.match(value):
            self.fail(key, f"{key} {_q(value)} is not {rule}")
            return None
        return value

    def choice(
        self, key: str, choices: tuple[str, ...], *, default: str | None = None, required: str | None = None
    ):
        value = self.get(key, _is_str, "a string", default=default, required=required)
        if value is not None and value not in choices:
            self.fail(key, f"{key} {_q(value)} is not one of {', '.join(map(_q, choices))}")
            return None
        return value

    def flag(self, key: str, default: bool) -> bool | None:
        return self.get(key, _is_bool, "true or false", default=default)


def _suggest(key: str, known: tuple[str, ...]) -> str:
    close = difflib.get_close_matches(key, known, n=1)
    if close:
        return f" (did you mean {_q(close[0])}?)"
    return f" (known keys: {', '.join(known)})"


class _Checker:
    def __init__(self, data: dict[str, Any], locator: _Locator, source: str) -> None:
        self.data = data
        self.locator = locator
        self.source = source
        self.problems: list[tuple[int, str]] = []

    def fail(self, line: int, reason: str) -> None:
        self.problems.append((line, reason))

    def spec(self) -> SiteSpec:
        self._top_level()
        site = self._site()
        priorities = self._priorities()
        self._check_ratio(site, len(priorities))
        hours, closed, hours_declared = self._hours()
        services = self._services()
        service_keys = {s.key for s in services}
        points = self._points(service_keys)
        serials = {p.serial for p in points}
        devices = self._devices(serials, service_keys, {p.key for p in priorities})
        users = self._users(serials)
        if self.problems:
            self.problems.sort(key=lambda p: p[0])
            lines = [f"{self.source}:{line}: {reason}" for line, reason in self.problems]
            raise InvalidSiteFile("\n".join(lines))
        return SiteSpec(
            name=site["name"],
            timezone=site["timezone"],
            language=site["language"],
            policy=PolicyKind(site["policy"]),
            aging_after_s=site["aging_after_s"],
            ratio=tuple(site["ratio"]),
            priorities=tuple(p for p in priorities if p is not None),
            services=tuple(services),
            points=tuple(points),
            devices=tuple(devices),
            users=tuple(users),
            hours=hours,
            closed_dates=frozenset(closed),
            hours_declared=hours_declared,
        )

    # Whole-file shape

    def _top_level(self) -> None:
        for key, value in self.data.items():
            line = self.locator.line((key,))
            if key in _TABLES:
                if not isinstance(value, dict):
                    self.fail(line, f"{key} must be one [{key}] table, not {_describe(value)}")
            elif key in _ARRAYS:
                if isinstance(value, dict):
                    self.fail(line, f"write [[{key}]] (one table per {key}), not [{key}]")
                elif not (isinstance(value, list) and all(isinstance(v, dict) for v in value)):
                    self.fail(line, f"{key} must be [[{key}]] tables, not {_describe(value)}")
            else:
                close = difflib.get_close_matches(key, _TABLES + _ARRAYS, n=1)
                hint = f"did you mean {_q(close[0])}?" if close else _WHAT_A_SITE_FILE_HAS
                self.fail(line, f"unknown table or key {_q(key)} ({hint})")
        if "site" not in self.data:
            self.fail(1, 'the [site] table is missing; it needs at least name = "..."')

    def _tables(self, key: str) -> list[dict[str, Any]]:
        value = self.data.get(key, [])
        if isinstance(value, list) and all(isinstance(v, dict) for v in value):
            return value
        return []

    # [site]

    def _site(self) -> dict[str, Any]:
        data = self.data.get("site")
        table = _Table(self, data if isinstance(data, dict) else {}, ("site",), "[site]")
        table.known_keys(_SITE_KEYS)
        site: dict[str, Any] = {}
        if isinstance(data, dict):
            site["name"] = table.text("name", required=' (the name people see, e.g. "Main branch")')
        timezone = table.text("timezone", default="UTC")
        if timezone is not None:
            try:
                ZoneInfo(timezone)
            except (ZoneInfoNotFoundError, ValueError):
                table.fail(
                    "timezone", f'timezone {_q(timezone)} is not an IANA time zone (e.g. "Europe/Berlin")'
                )
                timezone = None
        site["timezone"] = timezone
        site["language"] = table.matching(
            "language", LANGUAGE, 'a language code (e.g. "en", "pt-BR")', default="en"
        )
        policies = tuple(k.value for k in PolicyKind)
        site["policy"] = table.choice("priority_policy", policies, default=PolicyKind.STRICT.value)
        aging = table.get("aging_after_s", _is_int, "an integer (seconds)", default=DEFAULT_AGING_AFTER_S)
        if aging is not None and aging <= 0:
            table.fail("aging_after_s", f"aging_after_s must be more than 0 seconds, not {aging}")
        site["aging_after_s"] = aging
        ratio = table.get("priority_ratio", _is_int_list, "an array of integers", default=[])
        if ratio and any(share <= 0 for share in ratio):
            table.fail("priority_ratio", f"priority_ratio shares must all be more than 0, not {ratio}")
        site["ratio"] = ratio
        site["table"] = table
        return site

    def _check_ratio(self, site: dict[str, Any], classes: int) -> None:
        table: _Table = site["table"]
        ratio = site["ratio"]
        if ratio is None:
            return
        if site["policy"] == PolicyKind.RATIO and "priority_ratio" not in table.data:
            table.fail(
                "priority_policy",
                'priority_policy "ratio" needs priority_ratio, one share per [[priority]] in their order '
                "(e.g. [3, 1])",
            )
        elif ratio and len(ratio) != classes:
            table.fail(
                "priority_ratio",
                f"priority_ratio has {len(ratio)} share{'s' if len(ratio) != 1 else ''} but "
                f"{classes} [[priority]] class{'es are' if classes != 1 else ' is'} declared: "
                "give one share per class, in their order",
            )

    # [hours]

    def _hours(self) -> tuple[dict[int, tuple[tuple[time, time], ...]], set[date], bool]:
        data = self.data.get("hours")
        if not isinstance(data, dict):
            return {}, set(), False
        table = _Table(self, data, ("hours",), "[hours]")
        table.known_keys(
            WEEKDAYS + ("closed",), hint=f" (days are {', '.join(WEEKDAYS)}; closed dates go in closed)"
        )
        weekly: dict[int, tuple[tuple[time, time], ...]] = {}
        for day, name in enumerate(WEEKDAYS):
            intervals = table.get(name, _is_str_list, 'an array of "HH:MM-HH:MM" strings')
            if intervals is not None:
                weekly[day] = self._intervals(table, name, intervals)
        closed: set[date] = set()
        for value in (
            table.get("closed", lambda v: isinstance(v, list), "an array of dates", default=[]) or []
        ):
            day = _as_date(value)
            if day is None:
                table.fail("closed", f'closed: {_describe(value)} is not a date like "2026-12-25"')
            else:
                closed.add(day)
        return weekly, closed, True

    def _intervals(self, table: _Table, day: str, texts: list[str]) -> tuple[tuple[time, time], ...]:
        intervals: list[tuple[time, time, str]] = []
        for text in texts:
            found = _INTERVAL.match(text)
            times = _as_times(found)
            if times is None:
                table.fail(day, f'{day}: {_q(text)} is not an interval like "09:00-13:00"')
                continue
            start, end = times
            if start >= end:
                table.fail(day, f"{day}: {_q(text)} does not start before it ends")
                continue
            intervals.append((start, end, text))
        intervals.sort()
        for before, after in zip(intervals, intervals[1:], strict=False):
            if after[0] < before[1]:
                table.fail(day, f"{day}: {_q(after[2])} overlaps {_q(before[2])}")
        return tuple((start, end) for start, end, _ in intervals)

    # [[priority]]

    def _priorities(self) -> list[PrioritySpec]:
        priorities: list[PrioritySpec] = []
        first_line: dict[str, int] = {}
        for index, data in enumerate(self._tables("priority")):
            table = _Table(self, data, ("priority", index), f"[[priority]] #{index + 1}")
            key = table.matching("key", SLUG, _SLUG_RULE, required=' (e.g. "paid")')
            if key is not None:
                table.label = f"priority {_q(key)}"
                if key in first_line:
                    table.fail("key", f"priority {_q(key)} is already declared on line {first_line[key]}")
                else:
                    first_line[key] = table.line("key")
            table.known_keys(_PRIORITY_KEYS)
            name = table.text("name", required="")
            public = table.flag("public", True)
            # The rank is the place in the file even when an earlier class has a problem.
            priorities.append(PrioritySpec(key=key, name=name, rank=index, public=public))
        return priorities

    # [[service]]

    def _services(self) -> list[ServiceSpec]:
        services: list[ServiceSpec] = []
        key_line: dict[str, int] = {}
        prefix_of: dict[str, tuple[str, int]] = {}
        for index, data in enumerate(self._tables("service")):
            table = _Table(self, data, ("service", index), f"[[service]] #{index + 1}")
            key = table.matching("key", SLUG, _SLUG_RULE, required=' (e.g. "cash")')
            if key is not None:
                table.label = f"service {_q(key)}"
                if key in key_line:
                    table.fail("key", f"service {_q(key)} is already declared on line {key_line[key]}")
                    key = None
                else:
                    key_line[key] = table.line("key")
            table.known_keys(_SERVICE_KEYS)
            name = table.text("name", required="")
            description = table.text("description", default="", empty_ok=True)
            prefix = table.matching(
                "prefix", PREFIX, '1 to 3 uppercase letters (e.g. "A")', required=' (e.g. prefix = "A")'
            )
            if prefix is not None:
                if prefix in prefix_of:
                    other, line = prefix_of[prefix]
                    table.fail("prefix", f"prefix {_q(prefix)} is already used by {other} on line {line}")
                else:
                    prefix_of[prefix] = (table.label, table.line("prefix"))
            active = table.flag("active", True)
            if key is not None:
                services.append(ServiceSpec(key, name, description, prefix, active))
        return services

    # [[point]]

    def _points(self, service_keys: set[str]) -> list[PointSpec]:
        points: list[PointSpec] = []
        serial_line: dict[int, int] = {}
        for index, data in enumerate(self._tables("point")):
            table = _Table(self, data, ("point", index), f"[[point]] #{index + 1}")
            serial = table.get("serial", _is_int, "an integer", required=" (the number clients see, e.g. 1)")
            if serial is not None and serial < 1:
                table.fail("serial", f"serial must be 1 or more, not {serial}")
                serial = None
            if serial is not None:
                table.label = f"point {serial}"
                if serial in serial_line:
                    table.fail(
                        "serial",
                        f"serial {serial} is already used by the point on line {serial_line[serial]}",
                    )
                    serial = None
                else:
                    serial_line[serial] = table.line("serial")
            table.known_keys(_POINT_KEYS)
            name = table.text("name", required=' (e.g. "Window 1")')
            services = table.get("services", _is_str_list, "an array of service keys", default=[])
            seen: set[str] = set()
            for key in services or ():
                if key in seen:
                    table.fail("services", f"service {_q(key)} is listed twice")
                elif key not in service_keys:
                    table.fail("services", f"service {_q(key)} is not declared")
                seen.add(key)
            active = table.flag("active", True)
            if serial is not None:
                points.append(PointSpec(serial, name, tuple(dict.fromkeys(services or ())), active))
        return points

    # [[device]]

    def _devices(
        self, serials: set[int], service_keys: set[str], priority_keys: set[str]
    ) -> list[DeviceSpec]:
        devices: list[DeviceSpec] = []
        id_line: dict[str, int] = {}
        kinds = tuple(k.value for k in DeviceKind)
        for index, data in enumerate(self._tables("device")):
            table = _Table(self, data, ("device", index), f"[[device]] #{index + 1}")
            device_id = table.matching(
                "id",
                DEVICE_ID,
                "a device id (letters, digits, _ . -; up to 64)",
                required=' (e.g. "kiosk-1")',
            )
            if device_id is not None:
                table.label = f"device {_q(device_id)}"
                if device_id in id_line:
                    table.fail(
                        "id", f"device id {_q(device_id)} is already used on line {id_line[device_id]}"
                    )
                    device_id = None
                else:
                    id_line[device_id] = table.line("id")
            table.known_keys(_DEVICE_KEYS)
            kind = table.choice("kind", kinds, required=f" ({', '.join(map(_q, kinds))})")
            point = table.get("point", _is_int, "an integer (a point's serial)")
            if kind == DeviceKind.POINT and "point" not in data:
                table.fail(None, "point is missing: a point unit needs the serial of the point it drives")
            elif kind is not None and kind != DeviceKind.POINT and "point" in data:
                table.fail("point", f'point is only for devices of kind "point", not {_q(kind)}')
            elif point is not None and point not in serials:
                table.fail("point", f"point {point} is not declared")
            language = table.matching("language", LANGUAGE, 'a language code (e.g. "en", "pt-BR")')
            buttons = self._buttons(table, kind, service_keys, priority_keys)
            if device_id is not None and kind is not None:
                devices.append(DeviceSpec(device_id, DeviceKind(kind), point, language, buttons))
        return devices

    def _buttons(
        self, device: _Table, kind: str | None, service_keys: set[str], priority_keys: set[str]
    ) -> dict[str, KioskButton] | None:
        data = device.get("buttons", lambda v: isinstance(v, dict), "a table of button = service")
        if data is None:
            return None
        if kind is not None and kind != DeviceKind.KIOSK:
            device.fail("buttons", f'buttons are only for devices of kind "kiosk", not {_q(kind)}')
            return None
        buttons: dict[str, KioskButton] = {}
        for name, value in data.items():
            table = _Table(self, {}, device.path + ("buttons", name), f"{device.label}: button {_q(name)}")
            if not SLUG.match(name):
                table.fail(None, f"button name {_q(name)} is not {_SLUG_RULE}")
            if isinstance(value, str):
                service, priority = value, None
            elif isinstance(value, dict):
                table.data = value
                table.known_keys(_BUTTON_KEYS)
                service = table.text("service", required=" (the key of the service it issues)")
                priority = table.text("priority")
            else:
                table.fail(
                    None,
                    f"must be a service key or {{ service = ..., priority = ... }}, not {_describe(value)}",
                )
                continue
            if service is not None and service not in service_keys:
                table.fail("service", f"service {_q(service)} is not declared")
            if priority is not None and priority not in priority_keys:
                table.fail("priority", f"priority {_q(priority)} is not declared")
            buttons[name] = KioskButton(service, priority)
        return buttons

    # [[user]]

    def _users(self, serials: set[int]) -> list[UserSpec]:
        users: list[UserSpec] = []
        name_line: dict[str, int] = {}
        for index, data in enumerate(self._tables("user")):
            table = _Table(self, data, ("user", index), f"[[user]] #{index + 1}")
            name = table.matching(
                "name", USER_NAME, "a user name (letters, digits, _ . @ -; up to 64)", required=""
            )
            if name is not None:
                table.label = f"user {_q(name)}"
                if name in name_line:
                    table.fail("name", f"user {_q(name)} is already declared on line {name_line[name]}")
                    name = None
                else:
                    name_line[name] = table.line("name")
            role = table.choice("role", ROLES, required=f" ({' or '.join(map(_q, ROLES))})")
            secrets = [key for key in data if "pass" in key.lower() or "secret" in key.lower()]
            for key in secrets:
                who = name or "NAME"
                table.fail(
                    key,
                    f"a password does not belong in the site file: remove {_q(key)} and set it with "
                    f"`nextup user add {who} --role {role or 'specialist'}`",
                )
            table.data = {k: v for k, v in data.items() if k not in secrets}
            table.known_keys(_USER_KEYS)
            points = table.get("points", _is_int_list, "an array of point serials", default=[])
            for serial in points or ():
                if serial not in serials:
                    table.fail("points", f"point {serial} is not declared")
            if name is not None:
                users.append(UserSpec(name, role, tuple(dict.fromkeys(points or ()))))
        return users


_SLUG_RULE = "a key of lowercase letters, digits, _ and - (up to 32, starting with a letter or digit)"


def _as_times(found: re.Match[str] | None) -> tuple[time, time] | None:
    if found is None:
        return None
    h1, m1, h2, m2 = (int(g) for g in found.groups())
    if not (h1 < 24 and h2 < 24 and m1 < 60 and m2 < 60):
        return None
    return time(h1, m1), time(h2, m2)


def _as_date(value: Any) -> date | None:
    if isinstance(value, datetime):
        return None
    if isinstance(value, date):
        return value
    if isinstance(value, str) and _ISO_DATE.match(value):
        try:
            return date.fromisoformat(value)
        except ValueError:
            return None
    return None
