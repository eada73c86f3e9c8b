"""The JSON API's OpenAPI document is built from the code, and the API keeps to it under schemathesis."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import schemathesis
from flask import Flask
from hypothesis import HealthCheck, given, settings
from schemathesis.generation.modes import GenerationMode

from central.coordinator import Coordinator
from central.web import create_app

# Few examples per operation and mode, derandomized: the run stays fast and repeatable.
MAX_EXAMPLES = 25


@pytest.fixture
def app(make_store: Callable[..., Any], sqlite_url: str) -> Flask:
    # The API's own rate limit is not what this run is about.
    return create_app(Coordinator(make_store(sqlite_url)),
                      config={"TESTING": True, "TICKET_RATE_LIMIT": "100000 per minute"})


@pytest.fixture
def api_schema(app: Flask) -> Any:
    return schemathesis.openapi.from_wsgi("/api/v1/openapi.json", app)


def test_the_document_lists_every_api_route_with_its_methods(app: Flask) -> None:
    doc = app.test_client().get("/api/v1/openapi.json").get_json()
    routes = {(r.rule.replace("<token>", "{token}"), m.lower())
              for r in app.url_map.iter_rules() if r.endpoint.startswith("api.")
              for m in r.methods - {"HEAD", "OPTIONS"}}
    documented = {(path, method) for path, ops in doc["paths"].items() for method in ops}
    assert documented == routes
    assert doc["openapi"].startswith("3.1")


def test_taking_a_ticket_is_documented_with_its_body_answers_and_errors(app: Flask) -> None:
    doc = app.test_client().get("/api/v1/openapi.json").get_json()
    take = doc["paths"]["/api/v1/tickets"]["post"]
    assert take["requestBody"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/TicketRequest"}
    assert doc["components"]["schemas"]["TicketRequest"]["required"] == ["service"]
    assert take["responses"]["201"]["content"]["application/json"]["schema"]["$ref"].endswith("/TicketIssued")
    for status in ("400", "403", "404", "409", "429"):
        assert take["responses"][status]["content"]["application/json"]["schema"]["$ref"].endswith("/Error")
    follow = doc["paths"]["/api/v1/tickets/{token}"]["get"]
    assert follow["parameters"][0]["name"] == "token" and follow["parameters"][0]["in"] == "path"


def test_an_issued_ticket_and_an_error_match_their_documented_schemas(app: Flask) -> None:
    schema = schemathesis.openapi.from_wsgi("/api/v1/openapi.json", app)
    client = app.test_client()
    take = schema["/api/v1/tickets"]["POST"]
    issued = client.post("/api/v1/tickets", json={"service": "cash"})
    assert issued.status_code == 201
    take.validate_response(issued)
    for bad in ({"service": "nope"}, {"service": "cash", "priority": "paid"}, {"service": 3}):
        refused = client.post("/api/v1/tickets", json=bad)
        assert refused.status_code in (400, 403, 404)
        take.validate_response(refused)
    follow = schema["/api/v1/tickets/{token}"]["GET"]
    follow.validate_response(client.get(f"/api/v1/tickets/{issued.get_json()['token']}"))


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_the_api_keeps_to_its_document_and_never_fails_with_500(
        api_schema: Any, mode: GenerationMode,
) -> None:
    failures: dict[str, str] = {}
    operations = [result.ok() for result in api_schema.get_all_operations()]
    # schemathesis leaves out the document's own path
    labels = {o.label for o in operations}
    assert {"POST /api/v1/tickets", "GET /api/v1/tickets/{token}", "POST /api/v1/tickets/{token}/cancel",
            "GET /api/v1/services", "GET /api/v1/board", "GET /api/v1/health"} <= labels

    for operation in operations:
        if mode is GenerationMode.NEGATIVE and not (operation.body or operation.path_parameters):
            continue  # nothing to break in a call without inputs
        @settings(max_examples=MAX_EXAMPLES, deadline=None, derandomize=True, database=None,
                  suppress_health_check=list(HealthCheck))
        @given(case=operation.as_strategy(generation_mode=mode))
        def run(case: Any) -> None:
            case.call_and_validate()

        try:
            run()
        except Exception as exc:  # gather every operation's failure, then report them together
            failures[operation.label] = f"{type(exc).__name__}: {exc}"[:2000]
    assert not failures, "\n\n".join(f"{label}: {why}" for label, why in failures.items())


def test_sequences_of_calls_along_the_documented_links_keep_to_the_document(api_schema: Any) -> None:
    # Take a ticket, then follow or cancel it through the token of the answer (the OpenAPI links).
    machine = api_schema.as_state_machine()
    machine.run(settings=settings(max_examples=MAX_EXAMPLES, stateful_step_count=6, deadline=None,
                                  derandomize=True, database=None, suppress_health_check=list(HealthCheck)))


def test_taking_tickets_too_fast_through_the_api_is_a_documented_429(
    make_store: Callable[..., Any], sqlite_url: str,
) -> None:
    app = create_app(Coordinator(make_store(sqlite_url)),
                     config={"TESTING": True, "TICKET_RATE_LIMIT": "2/minute"})
    client = app.test_client()
    for _ in range(2):
        assert client.post("/api/v1/tickets", json={"service": "cash"}).status_code == 201
    refused = client.post("/api/v1/tickets", json={"service": "cash"})
    assert refused.status_code == 429
    assert refused.get_json()["error"]["code"] == "too_many_requests"
    schema = schemathesis.openapi.from_wsgi("/api/v1/openapi.json", app)
    schema["/api/v1/tickets"]["POST"].validate_response(refused)
    assert client.get("/api/v1/services").get_json()["services"][1]["waiting"] == 2
