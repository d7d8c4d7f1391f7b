"""The OpenAPI document: it describes every route, loads in schemathesis, and matches responses."""

from __future__ import annotations

from typing import Any

import httpx
import jsonschema_rs
import schemathesis
from starlette.applications import Starlette
from starlette.routing import Route

from agentic_sandbox.api.openapi import OPENAPI_PATH, build_openapi
from tests.api.support import assert_problem, manifest

HTTP_METHODS = ("get", "put", "post", "delete", "patch")


def _app_operations(app: Starlette) -> set[tuple[str, str]]:
    operations = set()
    for route in app.routes:
        assert isinstance(route, Route), f"route {route!r} is not a plain Route"
        for method in route.methods or ():
            if method != "HEAD":
                operations.add((route.path, method.lower()))
    return operations


def _documented_operations(document: dict[str, Any]) -> set[tuple[str, str]]:
    return {
        (path, method)
        for path, item in document["paths"].items()
        for method in item
        if method in HTTP_METHODS
    }


def _validator(document: dict[str, Any], component: str) -> jsonschema_rs.Draft202012Validator:
    root = {"$ref": f"#/components/schemas/{component}", "components": document["components"]}
    return jsonschema_rs.Draft202012Validator(root)


def test_openapi_describes_every_route(app: Starlette) -> None:
    served = _app_operations(app)
    documented = _documented_operations(build_openapi())
    assert served - documented == set(), "describe these routes in api/openapi.py"
    assert documented - served == set(), "these documented operations have no route"


def test_openapi_loads_in_schemathesis() -> None:
    schema = schemathesis.openapi.from_dict(build_openapi())
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) == len(_documented_operations(build_openapi()))


async def test_openapi_needs_token(anonymous: httpx.AsyncClient) -> None:
    assert_problem(await anonymous.get(OPENAPI_PATH), 401)


async def test_openapi_served(client: httpx.AsyncClient) -> None:
    response = await client.get(OPENAPI_PATH)
    assert response.status_code == 200
    assert response.json() == build_openapi()


async def test_openapi_instance_matches_wire(client: httpx.AsyncClient) -> None:
    document = build_openapi()
    created = await client.post("/api/v1/instances", json=manifest("web"))
    assert created.status_code == 201
    listed = await client.get("/api/v1/instances")

    _validator(document, "Instance").validate(created.json())
    _validator(document, "InstanceList").validate(listed.json())


async def test_openapi_event_list_matches_wire(client: httpx.AsyncClient) -> None:
    document = build_openapi()
    await client.post("/api/v1/instances", json=manifest("web"))
    await client.post("/api/v1/instances/web/stop")
    events = await client.get("/api/v1/events")

    assert events.json()["items"], "expected the verb to record an event"
    _validator(document, "EventList").validate(events.json())


async def test_openapi_problem_matches_wire(client: httpx.AsyncClient) -> None:
    document = build_openapi()
    invalid = await client.post("/api/v1/instances", json=manifest("web", runtime="dockr"))
    missing = await client.get("/api/v1/instances/absent")

    _validator(document, "Problem").validate(assert_problem(invalid, 422))
    _validator(document, "Problem").validate(assert_problem(missing, 404))


async def test_openapi_dry_run_matches_wire(client: httpx.AsyncClient) -> None:
    document = build_openapi()
    response = await client.post("/api/v1/instances?dryRun=All", json=manifest("web"))

    assert response.status_code == 201
    _validator(document, "DryRunResult").validate(response.json())
