"""The public pages: pick a service, take a ticket, follow it live (``/``, ``/t/<token>``).

The page of a ticket is reached only through its unguessable token (printed
as a QR code by the kiosk) and shows nothing about other tickets.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

from babel.dates import format_date, format_time
from flask import Blueprint, current_app, redirect, render_template, request, url_for
from flask_babel import get_locale
from flask_babel import gettext as _
from flask_wtf.csrf import CSRFError
from werkzeug.exceptions import HTTPException, NotFound, TooManyRequests

from central.coordinator import Coordinator, Message, TicketView
from central.domain import Channel
from central.domain.errors import (
    IllegalTransition,
    NextupError,
    PriorityNotAllowed,
    ServiceInactive,
    SiteClosed,
    UnknownPriority,
    UnknownService,
    UnknownTicket,
)

from . import live, positions
from .extensions import limiter

blueprint = Blueprint("customer", __name__)

# Per client address: enough for a family at one phone, too few to empty a queue by script.
TICKET_RATE_LIMIT = "10 per minute;60 per hour"
TOKEN = re.compile(r"^[A-Za-z0-9_-]{1,64}\Z")
FINISHED = frozenset({"served", "no_show", "cancelled"})


def ticket_rate_limit() -> str:
    """Flask-Limiter's limit for taking tickets (config ``TICKET_RATE_LIMIT`` overrides it)."""
    return str(current_app.config.get("TICKET_RATE_LIMIT", TICKET_RATE_LIMIT))


@blueprint.record_once
def _setup(state: Any) -> None:
    live.init_app(state.app)
    positions.init_app(state.app)


@blueprint.app_context_processor
def _page_language() -> dict[str, Any]:
    # base.html's lang attribute, for every blueprint's pages
    return {"page_lang": str(get_locale() or "en")}


@blueprint.context_processor
def _site_name() -> dict[str, Any]:
    return {"site_name": coordinator().site_state().name}


def coordinator() -> Coordinator:
    return current_app.extensions["nextup.coordinator"]


def _opening(moment: datetime | str | None) -> str | None:
    """When the site opens next, for a person: "We open again today at 08:00." in the page's language."""
    if not moment:
        return None
    if isinstance(moment, str):
        moment = datetime.fromisoformat(moment)
    locale = str(get_locale() or "en")
    time = format_time(moment, "HH:mm", tzinfo=moment.tzinfo, locale=locale)
    if moment.date() == coordinator().clock().astimezone(moment.tzinfo).date():
        return _("We open again today at %(time)s.", time=time)
    day = format_date(moment.date(), "full", locale=locale)
    return _("We open again on %(day)s at %(time)s.", day=day, time=time)


def _public_priorities() -> list[Any]:
    c = coordinator()
    with c.store.read() as s:
        return [p for p in c.rules(s).priorities if p.public]


def _index(*, problem: str | None = None, closed: SiteClosed | None = None, status: int = 200) -> Any:
    c = coordinator()
    site = c.site_state()
    when = _opening(closed.opens_at if closed is not None else site.opens_at)
    return render_template(
        "customer/index.html", site=site, priorities=_public_priorities(),
        # in the order of their prefixes, as on the board
        services=sorted(c.services(), key=lambda entry: (entry[0].prefix, entry[0].key)),
        closed=closed is not None or not site.open, opens_at=when, problem=problem,
    ), status


@blueprint.get("/")
def index() -> Any:
    """The services, how many wait for each, and one button each to take a ticket."""
    return _index()


def _refusal(exc: NextupError) -> tuple[str, int]:
    """What to tell a person whose ticket was refused, and the status to answer with."""
    if isinstance(exc, ServiceInactive):
        return _("This service is not taking tickets right now."), 409
    if isinstance(exc, UnknownService):
        return _("There is no such service."), 404
    if isinstance(exc, PriorityNotAllowed | UnknownPriority):
        return _("That kind of ticket is not given out here."), 403
    return _("Sorry, no ticket could be taken. Please try again."), 400


@blueprint.post("/tickets")
@limiter.limit(ticket_rate_limit, methods=["POST"])
def take_ticket() -> Any:
    """Take a ticket for the chosen service; on to its page."""
    service = request.form.get("service", "")
    priority = request.form.get("priority") or None
    if not service:
        return _index(problem=_("Please choose a service."), status=400)
    try:
        view = coordinator().issue_ticket(service, priority, channel=Channel.WEB, language=str(get_locale()))
    except SiteClosed as exc:
        return _index(closed=exc, status=409)
    except NextupError as exc:
        message, status = _refusal(exc)
        return _index(problem=message, status=status)
    return redirect(url_for(".ticket", token=view.token), code=303)


def _view(token: str) -> TicketView:
    if not TOKEN.match(token):
        raise NotFound()
    try:
        # A hall of phones reopens these pages and streams all day: the queue is read once per change.
        return positions.positions().ticket(token)
    except UnknownTicket:
        raise NotFound() from None


def _private(response: Any) -> Any:
    """The token is in the URL: keep it out of caches and referrers."""
    response = current_app.make_response(response)
    response.headers["Cache-Control"] = "no-store"
    response.headers["Referrer-Policy"] = "no-referrer"
    return response


def ticket_data(view: TicketView) -> dict[str, Any]:
    """What the ticket page shows and its live updates carry: this ticket only."""
    return {
        "number": view.number, "service": view.service, "service_name": view.service_name,
        "state": view.state, "ahead": view.ahead, "eta_s": view.eta_s, "point": view.point,
        "point_name": view.point_name, "called_at": view.called_at.isoformat() if view.called_at else None,
    }


@blueprint.get("/t/<token>")
def ticket(token: str) -> Any:
    """One ticket: number, people ahead, estimated wait; once called, where to go."""
    view = _view(token)
    return _private(render_template("customer/ticket.html", ticket=ticket_data(view), token=token,
                                    problem=None))


@blueprint.get("/t/<token>/events")
def ticket_events(token: str) -> Any:
    """Server-sent events: the ticket's data (event ``ticket``) whenever the queue moves."""
    current = _view(token)
    finished = current.state in FINISHED
    order = positions.positions()
    board = coordinator().topics.board  # every change of a queue republishes the board

    def render(messages: list[Message]) -> list[live.Event]:
        nonlocal current, finished
        if messages:
            try:
                # Every open page wakes on the same change: they share one read of the queue.
                current = order.ticket(token, current, positions.board_version(messages, board))
            except UnknownTicket:  # purged meanwhile
                finished = True
                return []
        finished = current.state in FINISHED
        return [live.Event("ticket", ticket_data(current))]

    return _private(live.event_stream(render, topics=board.__eq__, done=lambda: finished))


@blueprint.post("/t/<token>/cancel")
def cancel(token: str) -> Any:
    """Give up the ticket's place in the queue."""
    _view(token)
    try:
        coordinator().cancel_ticket(token)
    except IllegalTransition:
        view = _view(token)
        return _private((render_template(
            "customer/ticket.html", ticket=ticket_data(view), token=token,
            problem=_("This ticket can no longer be cancelled.")), 409))
    return redirect(url_for(".ticket", token=token), code=303)


# --- errors on these pages -------------------------------------------------------


@blueprint.errorhandler(CSRFError)
def _csrf_refused(exc: CSRFError) -> Any:
    return render_template("customer/error.html", title=_("Please try again"),
                           message=_("This form has expired. Go back, reload the page and try again.")), 400


@blueprint.errorhandler(TooManyRequests)
def _too_many(exc: TooManyRequests) -> Any:
    message = _("You have taken many tickets in a short time. Please wait a few minutes and try again.")
    return render_template("customer/error.html", title=_("Too many tickets"), message=message), 429


@blueprint.errorhandler(NotFound)
def _not_found(exc: NotFound) -> Any:
    return _private((render_template("customer/error.html", title=_("Ticket not found"),
                                     message=_("There is no ticket at this address.")), 404))


@blueprint.errorhandler(HTTPException)
def _other(exc: HTTPException) -> Any:
    message = _("This page cannot do that. Please start again from the list of services.")
    title = _("Something went wrong")
    return render_template("customer/error.html", title=title, message=message), exc.code or 500
