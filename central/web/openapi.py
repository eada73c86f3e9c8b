"""The OpenAPI document of the JSON API, built from the app's routes.

Paths, methods and path parameters come from Flask's URL map (every endpoint
of the ``api`` blueprint); what a view takes and answers comes from the
``@operation(...)`` mark next to the view, using the schemas below.  A view
without a mark is still listed, with its docstring, so nothing is missing
from the document when a route is added.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Callable
from typing import Any

from flask import Flask
from werkzeug.routing import Rule
from werkzeug.routing.converters import IntegerConverter

TITLE = "Nextup API"
VERSION = "1"
BLUEPRINT = "api"

SLUG_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,31}$"
LANGUAGE_PATTERN = r"^[a-z]{2,3}(-[A-Za-z0-9]{2,8})?$"

# --- schemas (JSON Schema, as OpenAPI 3.1 has it) ---------------------------

ERROR: dict[str, Any] = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["code", "message"],
            "properties": {
                "code": {"type": "string", "description": "Stable machine name, e.g. unknown_service"},
                "message": {"type": "string", "description": "For a person"},
                "opens_at": {"type": "string", "format": "date-time",
                             "description": "With code closed: when the site opens next"},
            },
        }
    },
}

SERVICES: dict[str, Any] = {
    "type": "object",
    "required": ["services"],
    "properties": {
        "services": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["key", "name", "description", "prefix", "waiting"],
                "properties": {
                    "key": {"type": "string"},
                    "name": {"type": "string"},
                    "description": {"type": "string"},
                    "prefix": {"type": "string"},
                    "waiting": {"type": "integer", "minimum": 0},
                },
            },
        }
    },
}

TICKET_REQUEST: dict[str, Any] = {
    "type": "object",
    "required": ["service"],
    "properties": {
        "service": {"type": "string", "pattern": SLUG_PATTERN, "description": "A service key"},
        "priority": {"type": "string", "pattern": SLUG_PATTERN,
                     "description": "A priority class the public may take; the lowest when left out"},
        "language": {"type": "string", "pattern": LANGUAGE_PATTERN,
                     "description": "The client's language, for announcements"},
    },
}

TICKET_ISSUED: dict[str, Any] = {
    "type": "object",
    "required": ["number", "service", "ahead", "eta_s", "token", "track_url"],
    "properties": {
        "number": {"type": "string", "examples": ["A-042"]},
        "service": {"type": "string"},
        "ahead": {"type": "integer", "minimum": 0},
        "eta_s": {"type": "integer", "minimum": 0},
        "token": {"type": "string", "description": "The ticket's secret; whoever has it may cancel it"},
        "track_url": {"type": "string", "format": "uri"},
    },
}

TICKET_STATES = ["waiting", "called", "served", "no_show", "cancelled"]

TICKET: dict[str, Any] = {
    "type": "object",
    "required": ["number", "service", "service_name", "state", "ahead", "eta_s", "point", "point_name",
                 "token", "track_url", "issued_at", "called_at", "language"],
    "properties": {
        "number": {"type": "string"},
        "service": {"type": "string"},
        "service_name": {"type": "string"},
        "state": {"type": "string", "enum": TICKET_STATES},
        "ahead": {"type": "integer", "minimum": 0},
        "eta_s": {"type": "integer", "minimum": 0},
        "point": {"type": ["integer", "null"], "description": "The point's serial once called"},
        "point_name": {"type": ["string", "null"]},
        "token": {"type": "string"},
        "track_url": {"type": "string", "format": "uri"},
        "issued_at": {"type": "string", "format": "date-time"},
        "called_at": {"type": ["string", "null"], "format": "date-time"},
        "language": {"type": ["string", "null"]},
    },
}

CALL: dict[str, Any] = {
    "type": "object",
    "required": ["number", "point", "point_name", "service", "at"],
    "properties": {
        "number": {"type": "string"},
        "point": {"type": "integer", "minimum": 1},
        "point_name": {"type": "string"},
        "service": {"type": "string"},
        "at": {"type": "string", "format": "date-time"},
        "language": {"type": ["string", "null"]},
    },
}

BOARD: dict[str, Any] = {
    "type": "object",
    "required": ["calls", "waiting"],
    "properties": {
        "calls": {"type": "array", "items": CALL, "description": "Newest first"},
        "waiting": {"type": "object", "additionalProperties": {"type": "integer", "minimum": 0},
                    "description": "Waiting tickets per service key"},
        "version": {"type": "integer"},
    },
}

HEALTH: dict[str, Any] = {
    "type": "object",
    "required": ["status", "checks"],
    "properties": {
        "status": {"type": "string", "enum": ["ok", "degraded"]},
        "checks": {"type": "object", "additionalProperties": {"type": "string"}},
    },
}

TOKEN_PARAMETER: dict[str, Any] = {
    "description": "The ticket's tracking token (from the QR code or the answer to POST /tickets)",
    "schema": {"type": "string", "minLength": 1, "maxLength": 64},
}

TICKET_LINKS: dict[str, Any] = {
    "FollowTicket": {"operationId": "ticket", "parameters": {"token": "$response.body#/token"}},
    "CancelTicket": {"operationId": "cancel", "parameters": {"token": "$response.body#/token"}},
}

COMPONENTS = {
    "Error": ERROR, "Services": SERVICES, "TicketRequest": TICKET_REQUEST, "TicketIssued": TICKET_ISSUED,
    "Ticket": TICKET, "Call": CALL, "Board": BOARD, "Health": HEALTH,
}

ERROR_DESCRIPTIONS = {
    400: "Bad request: the body or a field is not valid",
    403: "Not allowed: e.g. a priority class the public may not take",
    404: "No such ticket, service or priority class",
    409: "Not now: the site is closed, the service is inactive or the ticket has moved on",
    413: "The body is too large",
    415: "The body is not JSON",
    429: "Too many requests from this client; try again later",
    503: "Degraded",
}


# --- marking views ------------------------------------------------------------


def operation(
    *,
    responses: dict[int, dict[str, Any] | None],
    errors: tuple[int, ...] = (),
    request: dict[str, Any] | None = None,
    parameters: dict[str, dict[str, Any]] | None = None,
    summary: str | None = None,
    headers: dict[int, dict[str, Any]] | None = None,
    links: dict[int, dict[str, Any]] | None = None,
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Describe an API view: its JSON ``request`` body, ``responses`` by status and ``errors`` it may answer.

    ``parameters`` describe path parameters by name (the name and type come from the route).
    """

    def mark(view: Callable[..., Any]) -> Callable[..., Any]:
        view.openapi = {  # type: ignore[attr-defined]
            "responses": responses, "errors": errors, "request": request, "parameters": parameters or {},
            "summary": summary, "headers": headers or {}, "links": links or {},
        }
        return view

    return mark


# --- building the document ----------------------------------------------------

_RULE_PARAM = re.compile(r"<(?:[^:<>]+:)?([^<>]+)>")


def _ref(schema: dict[str, Any]) -> dict[str, Any]:
    for name, known in COMPONENTS.items():
        if known is schema:
            return {"$ref": f"#/components/schemas/{name}"}
    return schema


def _json(schema: dict[str, Any] | None) -> dict[str, Any]:
    return {"content": {"application/json": {"schema": _ref(schema)}}} if schema is not None else {}


def _parameters(rule: Rule, described: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for name, converter in rule._converters.items():
        given = dict(described.get(name, {}))
        default = {"type": "integer"} if isinstance(converter, IntegerConverter) else {"type": "string"}
        schema = given.pop("schema", None) or default
        out.append({"name": name, "in": "path", "required": True, "schema": schema, **given})
    return out


def _summary(view: Callable[..., Any], meta: dict[str, Any]) -> tuple[str, str | None]:
    doc = (view.__doc__ or "").strip()
    first, _, rest = doc.partition("\n")
    return (meta.get("summary") or first or view.__name__.replace("_", " ")), (rest.strip() or None)


def _operation(rule: Rule, view: Callable[..., Any]) -> dict[str, Any]:
    meta: dict[str, Any] = getattr(view, "openapi", {"responses": {200: None}, "errors": ()})
    summary, description = _summary(view, meta)
    op: dict[str, Any] = {"operationId": rule.endpoint.split(".", 1)[-1], "summary": summary}
    if description:
        op["description"] = description
    params = _parameters(rule, meta.get("parameters", {}))
    if params:
        op["parameters"] = params
    if meta.get("request") is not None:
        op["requestBody"] = {"required": True, **_json(meta["request"])}
    responses: dict[str, Any] = {}
    for status, schema in meta["responses"].items():
        responses[str(status)] = {"description": ERROR_DESCRIPTIONS.get(status, "OK"), **_json(schema)}
        if status in meta.get("headers", {}):
            responses[str(status)]["headers"] = meta["headers"][status]
        if status in meta.get("links", {}):
            responses[str(status)]["links"] = meta["links"][status]
    for status in meta.get("errors", ()):
        responses.setdefault(str(status), {"description": ERROR_DESCRIPTIONS.get(status, "Error"),
                                           **_json(ERROR)})
    op["responses"] = responses
    return op


def _site_values(app: Flask) -> dict[str, Any]:
    """The components with this site's service keys and public priority classes filled in."""
    components = copy.deepcopy(COMPONENTS)
    coordinator = app.extensions.get("nextup.coordinator")
    if coordinator is None:
        return components
    with coordinator.store.read() as s:
        rules = coordinator.rules(s)
    services = sorted(key for key, service in rules.services.items() if service.active)
    public = [p.key for p in rules.priorities if p.public]
    request = components["TicketRequest"]["properties"]
    if services:
        request["service"]["enum"] = services
    if public:
        request["priority"]["enum"] = public
    return components


def document(app: Flask, blueprint: str = BLUEPRINT) -> dict[str, Any]:
    """The OpenAPI 3.1 document of ``blueprint``'s routes in ``app``.

    The ticket request lists the site's active services and public priority classes as they are now.
    """
    paths: dict[str, dict[str, Any]] = {}
    rules = sorted(app.url_map.iter_rules(), key=lambda r: r.rule)
    for rule in rules:
        if not rule.endpoint.startswith(f"{blueprint}."):
            continue
        view = app.view_functions[rule.endpoint]
        path = _RULE_PARAM.sub(r"{\1}", rule.rule)
        for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"}):
            paths.setdefault(path, {})[method.lower()] = _operation(rule, view)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": TITLE,
            "version": VERSION,
            "description": "Take and follow tickets, read the board and the health of one Nextup site. "
                           "Errors answer with the Error object.",
        },
        "paths": paths,
        "components": {"schemas": _site_values(app)},
    }
