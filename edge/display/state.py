"""What the hall display knows, fed by MQTT messages, free of I/O.

``DisplayState`` takes the raw payloads of ``site``, ``board`` and ``call``
and turns them into a ``View``: everything a frame
shows.  A bad payload is logged and changes nothing; the last good board
stays on screen while the broker is away.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from dataclasses import dataclass, field, replace
from datetime import datetime

from central.domain.errors import BadPayload
from nextup.contract import Board, CallInfo, SiteState

log = logging.getLogger(__name__)

MAX_CALLS_KEPT = 12
_SEEN_CALLS = 64


@dataclass(frozen=True)
class View:
    """Everything one frame shows; ``render`` is a pure function of it."""

    board: Board | None = None
    site: SiteState | None = None
    now: datetime = field(default_factory=datetime.now)
    online: bool = False

    def clock_key(self) -> tuple[object, ...]:
        """What decides whether the screen must be redrawn (the clock to the minute)."""
        return (self.board, self.site, self.now.strftime("%Y-%m-%d %H:%M"), self.online)


class DisplayState:
    """The display's state machine; thread-safe so MQTT callbacks may feed it."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._board: Board | None = None
        self._board_version = -1
        self._site: SiteState | None = None
        self._online = False
        self._seen_calls: deque[tuple[str, int, str]] = deque(maxlen=_SEEN_CALLS)

    # --- inputs ----------------------------------------------------------

    def on_site(self, payload: bytes | str) -> bool:
        """A retained ``site`` payload; True when it was taken."""
        site = _parse(SiteState, payload, "site")
        if site is None:
            return False
        with self._lock:
            self._site = site
        return True

    def on_board(self, payload: bytes | str) -> bool:
        """A retained ``board`` payload; an older version than the last one seen is ignored."""
        board = _parse(Board, payload, "board")
        if board is None:
            return False
        with self._lock:
            if board.version < self._board_version:
                log.info("board version %d ignored: %d already shown", board.version, self._board_version)
                return False
            self._board_version = board.version
            self._board = board
        return True

    def on_call(self, payload: bytes | str) -> CallInfo | None:
        """A ``call``: the call to announce, or None when it is bad or a repeat delivery.

        The call goes on top of the shown board at once, so the screen changes
        with the chime; the board central publishes next replaces it.
        """
        call = _parse(CallInfo, payload, "call")
        if call is None:
            return None
        key = (call.number, call.point, call.at)
        with self._lock:
            # QoS 1 may deliver a call twice; a recall has a new ``at``.
            if key in self._seen_calls:
                return None
            self._seen_calls.append(key)
            board = self._board or Board(calls=[], waiting={}, version=max(self._board_version, 0))
            others = [c for c in board.calls if (c.number, c.point) != (call.number, call.point)]
            self._board = replace(board, calls=[call, *others][:MAX_CALLS_KEPT])
        return call

    def set_online(self, online: bool) -> None:
        with self._lock:
            self._online = online

    # --- outputs ---------------------------------------------------------

    def view(self, now: datetime | None = None) -> View:
        with self._lock:
            return View(board=self._board, site=self._site, now=now or datetime.now(), online=self._online)


def _parse(model, payload: bytes | str, what: str):  # type: ignore[no-untyped-def]
    try:
        return model.parse(payload)
    except (BadPayload, TypeError, AttributeError) as exc:
        # The contract's parsers raise BadPayload; the others guard against a shape they did not foresee.
        log.warning("%s payload rejected: %s", what, exc)
        return None
