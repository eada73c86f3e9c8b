"""The JSON API (``/api/v1``): the same queue as the kiosks, for apps and scripts."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, current_app, jsonify, request
from sqlalchemy import text
from werkzeug.exceptions import HTTPException

from central.coordinator import Coordinator
from central.domain import Channel
from central.domain.errors import (
    BadPayload,
    IllegalTransition,
    NextupError,
    NotPermitted,
    PriorityNotAllowed,
    ServiceInactive,
    SiteClosed,
    StoreUnavailable,
)
from nextup.contract import LANGUAGE, SLUG

from . import openapi, positions
from .customer import ticket_rate_limit
from .extensions import limiter
from .openapi import operation

blueprint = Blueprint("api", __name__)

STATUS_OF_ERROR: list[tuple[type[NextupError], int]] = [
    (BadPayload, 400),
    (PriorityNotAllowed, 403),
    (NotPermitted, 403),
    (SiteClosed, 409),
    (ServiceInactive, 409),
    (IllegalTransition, 409),
    (StoreUnavailable, 503),
]


def coordinator() -> Coordinator:
    return current_app.extensions["nextup.coordinator"]


def error(status: int, code: str, message: str, **extra: Any) -> Any:
    body = {"error": {"code": code, "message": message, **extra}}
    return jsonify(body), status


@blueprint.errorhandler(NextupError)
def _nextup_error(exc: NextupError) -> Any:
    status = next((s for kind, s in STATUS_OF_ERROR if isinstance(exc, kind)), None)
    if status is None:
        status = 404 if isinstance(exc, LookupError) else 400
    extra = {}
    if isinstance(exc, SiteClosed) and exc.opens_at is not None:
        extra["opens_at"] = exc.opens_at.isoformat()
    return error(status, exc.code, exc.message, **extra)


@blueprint.errorhandler(HTTPException)
def http_error(exc: HTTPException) -> Any:
    return error(exc.code or 500, (exc.name or "error").lower().replace(" ", "_"), exc.description or "")


def _body() -> dict[str, Any]:
    data = request.get_json(silent=True)
    if not isinstance(data, dict):
        raise BadPayload("the request body must be a JSON object")
    return data


def _field(data: dict[str, Any], name: str, pattern: Any, *, required: bool) -> str | None:
    value = data.get(name)
    if value is None:
        if required:
            raise BadPayload(f"field {name!r} is missing")
        return None
    if not isinstance(value, str) or not pattern.match(value):
        raise BadPayload(f"field {name!r} is not valid")
    return value


@blueprint.get("/services")
@operation(responses={200: openapi.SERVICES})
def services() -> Any:
    """Active services with how many wait."""
    return jsonify(
        services=[
            {"key": s.key, "name": s.name, "description": s.description, "prefix": s.prefix, "waiting": n}
            for s, n in coordinator().services()
        ]
    )


@blueprint.post("/tickets")
@limiter.limit(ticket_rate_limit)  # the same limit as the public page: the API is no way around it
@operation(
    request=openapi.TICKET_REQUEST,
    responses={201: openapi.TICKET_ISSUED},
    errors=(400, 403, 404, 409, 413, 429),
    headers={201: {"Location": {"schema": {"type": "string"}, "description": "The ticket's URL"}}},
    links={201: openapi.TICKET_LINKS},
)
def take_ticket() -> Any:
    """Take a ticket: ``{"service", "priority"?, "language"?}``."""
    data = _body()
    service = _field(data, "service", SLUG, required=True)
    priority = _field(data, "priority", SLUG, required=False)
    language = _field(data, "language", LANGUAGE, required=False)
    assert service is not None
    view = coordinator().issue_ticket(service, priority, channel=Channel.API, language=language)
    body = {
        "number": view.number,
        "service": view.service,
        "ahead": view.ahead,
        "eta_s": view.eta_s,
        "token": view.token,
        "track_url": view.track_url,
    }
    return jsonify(body), 201, {"Location": f"/api/v1/tickets/{view.token}"}


@blueprint.get("/tickets/<token>")
@operation(responses={200: openapi.TICKET}, errors=(404,), parameters={"token": openapi.TOKEN_PARAMETER})
def ticket(token: str) -> Any:
    """A ticket's state, people ahead and, once called, its point."""
    # Pages that cannot stream poll here: the queue order is shared, as with the streams.
    view = positions.positions().ticket(token)
    return jsonify(
        {k: v for k, v in view.to_dict().items() if k != "track_url"} | {"track_url": view.track_url}
    )


@blueprint.post("/tickets/<token>/cancel")
@operation(responses={200: openapi.TICKET}, errors=(404, 409), parameters={"token": openapi.TOKEN_PARAMETER})
def cancel(token: str) -> Any:
    """The client gives up their place."""
    return jsonify(coordinator().cancel_ticket(token).to_dict())


@blueprint.get("/board")
@operation(responses={200: openapi.BOARD})
def board() -> Any:
    """The latest calls and waiting counts, as the hall display shows them."""
    return jsonify(coordinator().board().to_dict())


@blueprint.get("/health")
@operation(responses={200: openapi.HEALTH, 503: openapi.HEALTH})
def health() -> Any:
    """Database and broker connection."""
    checks: dict[str, str] = {}
    try:
        with coordinator().store.read() as s:
            s.execute(text("SELECT 1"))
        checks["database"] = "ok"
    except Exception as exc:  # health reports any failure, whatever its kind
        checks["database"] = f"error: {type(exc).__name__}"
    bridge = current_app.extensions.get("nextup.bridge")
    if bridge is not None:
        checks["broker"] = "ok" if bridge.connected.is_set() else "disconnected"
    ok = all(v == "ok" for v in checks.values())
    return jsonify(status="ok" if ok else "degraded", checks=checks), 200 if ok else 503


@blueprint.get("/openapi.json")
@operation(responses={200: {"type": "object"}})
def openapi_document() -> Any:
    """This API's OpenAPI document, built from its routes."""
    return jsonify(openapi.document(current_app))
