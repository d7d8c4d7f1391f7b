"""Mission routes: dispatch a command line to a Ready agent, read mission records and output.

- ``POST /api/v1/sessions/{id}/dispatch`` takes the incumbent's snake_case body: ``mission_id``,
  ``objective`` (a command line, run as ``/bin/sh -c OBJECTIVE``), and optionally
  ``executor_filter`` (``agent_id``, ``capabilities``), ``metadata`` (a JSON object) and
  ``timeout_seconds``. Executors are the instances of the ``namespace`` query parameter
  (default ``default``). It returns 201 with the mission record. Errors: 409 ``AlreadyExists``
  for a mission id in use, 409 ``NoMatchingExecutor`` when Ready instances exist but none
  matches the filter, 409 ``NoReadyExecutor`` when none is Ready with a connected agent.
- ``GET /api/v1/missions`` lists records (``session``, ``state``, ``limit``), and
  ``GET /api/v1/missions/{mission_id}`` returns one.
- ``GET /api/v1/missions/{mission_id}/output`` returns the stored output as bytes, stdout and
  stderr interleaved in arrival order; ``follow=true`` keeps the response open until the mission
  has ended.
"""

from __future__ import annotations

import json
from collections.abc import AsyncGenerator
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from agentic_sandbox.api.bodies import read_json_object
from agentic_sandbox.api.params import bad_parameter, query_bool, query_int, query_namespace
from agentic_sandbox.api.problems import ApiProblem
from agentic_sandbox.api.routing import method_route
from agentic_sandbox.controller.mission_select import (
    ExecutorFilter,
    NoMatchingExecutor,
    NoReadyExecutor,
)
from agentic_sandbox.controller.missions import MissionDispatcher, MissionRequest
from agentic_sandbox.crds.meta import API_VERSION
from agentic_sandbox.crds.mission import MISSION_ID, MissionState
from agentic_sandbox.errors import FieldError

DISPATCH_PATH = "/api/v1/sessions/{id}/dispatch"
MISSIONS_PATH = "/api/v1/missions"
MISSION_PATH = "/api/v1/missions/{mission_id}"
OUTPUT_PATH = "/api/v1/missions/{mission_id}/output"
OUTPUT_MEDIA_TYPE = "application/octet-stream"
# Linux limits one execve argument to MAX_ARG_STRLEN, 32 pages (128 KiB with 4 KiB pages), and
# the objective is one argument.
MAX_OBJECTIVE_BYTES = 64 * 1024
MAX_METADATA_BYTES = 16 * 1024
MAX_CAPABILITIES = 32
MAX_TIMEOUT_SECONDS = 7 * 24 * 3600
DEFAULT_LIMIT = 100
MAX_LIMIT = 1000
_FIELDS = ("mission_id", "objective", "executor_filter", "metadata", "timeout_seconds")
_FILTER_FIELDS = ("agent_id", "capabilities")


def _check_id(value: Any, path: str, errors: list[FieldError]) -> str:
    if isinstance(value, str) and MISSION_ID.match(value):
        return value
    if value is None:
        errors.append(FieldError(path=path, message="missing required field"))
        return ""
    errors.append(
        FieldError(
            path=path,
            message="must be 1 to 128 letters, digits, '.', '_', ':' or '-', starting with a "
            "letter or digit",
            value=value,
        )
    )
    return ""


def _check_objective(value: Any, errors: list[FieldError]) -> str:
    if (
        isinstance(value, str)
        and value.strip()
        and "\x00" not in value
        and len(value.encode()) <= MAX_OBJECTIVE_BYTES
    ):
        return value
    if value is None:
        errors.append(FieldError(path="objective", message="missing required field"))
        return ""
    errors.append(
        FieldError(
            path="objective",
            message=f"must be a non-empty command line without NUL, at most "
            f"{MAX_OBJECTIVE_BYTES} bytes, such as 'make test'",
            value=value if not isinstance(value, str) else value[:200],
        )
    )
    return ""


def _check_filter(value: Any, errors: list[FieldError]) -> ExecutorFilter:
    if value is None:
        return ExecutorFilter()
    if not isinstance(value, dict):
        errors.append(FieldError(path="executor_filter", message="must be an object", value=value))
        return ExecutorFilter()
    for name in sorted(set(value) - set(_FILTER_FIELDS)):
        message = f"unknown field; accepted fields are {', '.join(_FILTER_FIELDS)}"
        errors.append(FieldError(path=f"executor_filter.{name}", message=message, value=name))
    agent_id = value.get("agent_id")
    if agent_id is not None and (not isinstance(agent_id, str) or not agent_id):
        errors.append(
            FieldError(
                path="executor_filter.agent_id",
                message="must be a non-empty string",
                value=agent_id,
            )
        )
        agent_id = None
    capabilities = value.get("capabilities", [])
    if (
        not isinstance(capabilities, list)
        or len(capabilities) > MAX_CAPABILITIES
        or not all(isinstance(item, str) and item for item in capabilities)
    ):
        errors.append(
            FieldError(
                path="executor_filter.capabilities",
                message=f"must be a list of at most {MAX_CAPABILITIES} non-empty strings",
                value=capabilities,
            )
        )
        capabilities = []
    return ExecutorFilter(agent_id=agent_id, capabilities=tuple(capabilities))


def _check_metadata(value: Any, errors: list[FieldError]) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict) or len(json.dumps(value)) > MAX_METADATA_BYTES:
        errors.append(
            FieldError(
                path="metadata",
                message=f"must be a JSON object of at most {MAX_METADATA_BYTES} bytes",
                value=value if not isinstance(value, dict) else "{...}",
            )
        )
        return {}
    return value


def _check_timeout(value: Any, errors: list[FieldError]) -> int:
    if value is None:
        return 0
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= MAX_TIMEOUT_SECONDS:
        return value
    errors.append(
        FieldError(
            path="timeout_seconds",
            message=f"must be an integer from 0 (no limit) to {MAX_TIMEOUT_SECONDS}",
            value=value,
        )
    )
    return 0


def parse_dispatch_body(session_id: str, namespace: str, body: dict[str, Any]) -> MissionRequest:
    """Validate a dispatch body; raise ApiProblem 422 listing every invalid field."""
    errors: list[FieldError] = []
    for name in sorted(set(body) - set(_FIELDS)):
        message = f"unknown field; accepted fields are {', '.join(_FIELDS)}"
        errors.append(FieldError(path=name, message=message, value=name))
    request = MissionRequest(
        mission_id=_check_id(body.get("mission_id"), "mission_id", errors),
        session_id=session_id,
        objective=_check_objective(body.get("objective"), errors),
        namespace=namespace,
        executor_filter=_check_filter(body.get("executor_filter"), errors),
        metadata=_check_metadata(body.get("metadata"), errors),
        timeout_seconds=_check_timeout(body.get("timeout_seconds"), errors),
    )
    if errors:
        raise ApiProblem(422, "the dispatch request is invalid", kind="Invalid", errors=errors)
    return request


def _query_states(request: Request) -> list[MissionState]:
    raw = request.query_params.get("state")
    if not raw:
        return []
    try:
        return [MissionState(item.strip()) for item in raw.split(",") if item.strip()]
    except ValueError:
        accepted = ", ".join(state.value for state in MissionState)
        raise bad_parameter("state", raw, f"expected one or more of {accepted}") from None


class MissionRoutes:
    def __init__(self, dispatcher: MissionDispatcher | None) -> None:
        self._dispatcher = dispatcher

    def routes(self) -> list[Route]:
        return [
            method_route(DISPATCH_PATH, {"POST": self._dispatch}),
            method_route(MISSIONS_PATH, {"GET": self._list}),
            method_route(MISSION_PATH, {"GET": self._get}),
            method_route(OUTPUT_PATH, {"GET": self._output}),
        ]

    def _require(self) -> MissionDispatcher:
        if self._dispatcher is None:
            raise ApiProblem(503, "this server runs no mission dispatcher", kind="NoDispatcher")
        return self._dispatcher

    async def _dispatch(self, request: Request) -> Response:
        dispatcher = self._require()
        session_errors: list[FieldError] = []
        session_id = _check_id(request.path_params["id"], "id", session_errors)
        if session_errors:
            raise ApiProblem(
                422, "the session id is invalid", kind="Invalid", errors=session_errors
            )
        body = await read_json_object(request)
        mission_request = parse_dispatch_body(session_id, query_namespace(request), body)
        try:
            mission = await dispatcher.dispatch(mission_request)
        except (NoMatchingExecutor, NoReadyExecutor) as error:
            # The fleet's state, not the server, is what refuses the mission: a client error.
            raise ApiProblem(409, str(error), kind=error.reason) from error
        return JSONResponse(
            mission.to_wire(),
            status_code=201,
            headers={"Location": f"{MISSIONS_PATH}/{mission.id}"},
        )

    async def _list(self, request: Request) -> Response:
        dispatcher = self._require()
        limit = query_int(request, "limit", default=DEFAULT_LIMIT, minimum=1, maximum=MAX_LIMIT)
        assert limit is not None
        session = request.query_params.get("session") or None
        missions = await dispatcher.missions.list(
            session_id=session, states=_query_states(request), limit=limit
        )
        return JSONResponse(
            {
                "apiVersion": API_VERSION,
                "kind": "MissionList",
                "items": [mission.to_wire() for mission in missions],
            }
        )

    async def _get(self, request: Request) -> Response:
        mission = await self._require().missions.get(request.path_params["mission_id"])
        return JSONResponse(mission.to_wire())

    async def _output(self, request: Request) -> Response:
        dispatcher = self._require()
        mission_id = request.path_params["mission_id"]
        follow = query_bool(request, "follow")
        # Raises NotFound (404) before the response starts.
        await dispatcher.missions.get(mission_id)
        body = self._follow(mission_id) if follow else self._stored(mission_id)
        return StreamingResponse(
            body, media_type=OUTPUT_MEDIA_TYPE, headers={"Cache-Control": "no-store"}
        )

    async def _stored(self, mission_id: str) -> AsyncGenerator[bytes, None]:
        assert self._dispatcher is not None
        after = 0
        while True:
            chunks = await self._dispatcher.missions.read_output(mission_id, after=after)
            if not chunks:
                return
            for chunk in chunks:
                after = chunk.seq
                yield chunk.data

    async def _follow(self, mission_id: str) -> AsyncGenerator[bytes, None]:
        assert self._dispatcher is not None
        async for chunk in self._dispatcher.missions.follow_output(mission_id):
            yield chunk.data
