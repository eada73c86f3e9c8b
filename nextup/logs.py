"""Logs of every Nextup program: one line per event, JSON when stderr is not a terminal.

Code logs with ``extra={"ticket": ..., "command_id": ..., "request_id": ...}``;
those fields become keys of the JSON object, so one press can be followed
through the point unit (which sends the command id), the broker (device id and
topic) and central (which logs the same command id with the ticket it called)::

    journalctl -u 'nextup-*' -o cat | jq 'select(.command_id == "4be1...")'

On a terminal the same fields follow the message as ``key=value``.
"""

from __future__ import annotations

import json
import logging
import sys
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import IO, Any


class RateLimitedLog:
    """Logs at most ``per_minute`` lines a minute for each key, then one line saying how many were left
    out, so a flood (bad device messages, requests while the database is away) cannot fill the disk."""

    def __init__(self, logger: logging.Logger, per_minute: int = 20,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.logger = logger
        self.per_minute = per_minute
        self.clock = clock
        self._windows: dict[str, tuple[float, int, int]] = {}  # key: (start, logged, left out)
        self._lock = threading.Lock()

    def log(self, key: str, level: int, message: str, *args: Any, **extra: Any) -> None:
        """Log ``message % args`` with ``extra`` at ``level``, unless ``key`` has had its minute's lines."""
        now = self.clock()
        with self._lock:
            start, logged, left_out = self._windows.get(key, (now, 0, 0))
            if now - start >= 60:
                if left_out:
                    self.logger.log(level, "%d more lines (%s) were not logged", left_out, key)
                start, logged, left_out = now, 0, 0
            if logged < self.per_minute:
                self.logger.log(level, message, *args, extra=extra)
                logged += 1
            else:
                left_out += 1
            self._windows[key] = (start, logged, left_out)


# Every attribute a LogRecord has of itself; the rest came from ``extra=``.
_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {"message", "asctime", "taskName"}


def _extras(record: logging.LogRecord) -> dict[str, Any]:
    return {k: v for k, v in vars(record).items() if k not in _STANDARD and not k.startswith("_")}


def _plain(value: Any) -> Any:
    if isinstance(value, str | int | float | bool) or value is None:
        return value
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    return str(value)


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time (UTC, ISO 8601), level, logger, message, the program, the extras."""

    def __init__(self, program: str | None = None) -> None:
        super().__init__()
        self.program = program

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        if self.program:
            out["program"] = self.program
        for key, value in _extras(record).items():
            out.setdefault(key, _plain(value))
        if record.exc_info:
            out["exception"] = self.formatException(record.exc_info)
        if record.stack_info:
            out["stack"] = self.formatStack(record.stack_info)
        # A message with a line break would otherwise split the event; json.dumps escapes it.
        return json.dumps(out, ensure_ascii=False, separators=(",", ":"))


class TextFormatter(logging.Formatter):
    """For people at a terminal: the usual line, with the extras as ``key=value``."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        extras = _extras(record)
        if extras:
            line += "  " + " ".join(f"{k}={v}" for k, v in extras.items())
        return line


def setup(program: str | None = None, *, level: int = logging.INFO, stream: IO[str] | None = None,
          json_lines: bool | None = None) -> logging.Handler:
    """Send the root logger's records to ``stream`` (stderr) as JSON lines, or as text on a terminal.

    Replaces the handlers a previous call installed; returns the new handler.
    """
    stream = sys.stderr if stream is None else stream
    if json_lines is None:
        json_lines = not (hasattr(stream, "isatty") and stream.isatty())
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter(program) if json_lines else TextFormatter())
    handler._nextup = True  # type: ignore[attr-defined]
    root = logging.getLogger()
    for old in [h for h in root.handlers if getattr(h, "_nextup", False)]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    return handler
