"""The web board (``/board``): the hall display's board for any TV with a browser.

The page draws the latest calls (ticket -> point, the newest highlighted),
how many wait per service, the site's name and a clock, and follows the
queue through server-sent events (``/board/events``), or by polling
``/board.json`` where those do not get through.  It chimes and, when asked,
speaks each new call.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, current_app, jsonify, render_template

from central.coordinator import Coordinator

from . import live

blueprint = Blueprint("display", __name__)

EARLIER_CALLS = 5  # shown under the newest call: as many as a 16:9 screen holds readably


@blueprint.record_once
def _setup(state: Any) -> None:
    live.init_app(state.app)


def coordinator() -> Coordinator:
    return current_app.extensions["nextup.coordinator"]


def board_data(c: Coordinator) -> dict[str, Any]:
    """The board with the names a hall reads: site, services and points."""
    site = c.site_state()
    board = c.board()
    with c.store.read() as s:
        timezone = c.rules(s).tz.key
    services = sorted(site.services, key=lambda v: (v.prefix, v.key))
    names = {v.key: v.name for v in services}
    return {
        "site": site.name,
        "open": site.open,
        "timezone": timezone,
        "calls": [{"number": call.number, "point": call.point, "point_name": call.point_name,
                   "service": call.service, "service_name": names.get(call.service, call.service),
                   "at": call.at} for call in board.calls],
        "waiting": [{"key": v.key, "name": v.name, "prefix": v.prefix, "count": board.waiting[v.key]}
                    for v in services if v.key in board.waiting],
    }


@blueprint.get("/board")
def board() -> Any:
    """The full-screen board."""
    return render_template("board.html", board=board_data(coordinator()), history=EARLIER_CALLS)


@blueprint.get("/board.json")
def board_json() -> Any:
    """The board's data, for polling where server-sent events do not get through."""
    response = jsonify(board_data(coordinator()))
    response.headers["Cache-Control"] = "no-store"
    return response


@blueprint.get("/board/events")
def board_events() -> Any:
    """Server-sent events: the board's data (event ``board``) whenever it changes."""
    c = coordinator()
    topics = {c.topics.board, c.topics.site_state}
    return live.event_stream(lambda _messages: [live.Event("board", board_data(c))],
                             topics=topics.__contains__)
