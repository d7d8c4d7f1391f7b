"""The OpenAPI paths and component schemas of the mission routes (see ``api/missions.py``).

``api/openapi.py`` merges these into the document. The ``Mission`` schema is pydantic's
serialization schema of the record; the dispatch body is written here because it has no model.
"""

from __future__ import annotations

from typing import Any

from agentic_sandbox.api.missions import (
    DEFAULT_LIMIT,
    MAX_CAPABILITIES,
    MAX_LIMIT,
    MAX_OBJECTIVE_BYTES,
    MAX_TIMEOUT_SECONDS,
    OUTPUT_MEDIA_TYPE,
)
from agentic_sandbox.api.openapi_schemas import Schema, ref
from agentic_sandbox.api.problems import PROBLEM_MEDIA_TYPE
from agentic_sandbox.crds.meta import DNS1123_LABEL, DNS1123_LABEL_MAX
from agentic_sandbox.crds.mission import MISSION_ID, Mission, MissionState

JSON = "application/json"
_COMPONENTS = "#/components/schemas/{model}"
_ID: Schema = {"type": "string", "pattern": MISSION_ID.pattern}


def _dispatch_body() -> Schema:
    executor_filter = {
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "agent_id": {"type": "string", "minLength": 1},
            "capabilities": {
                "type": "array",
                "items": {"type": "string", "minLength": 1},
                "maxItems": MAX_CAPABILITIES,
            },
        },
    }
    return {
        "type": "object",
        "additionalProperties": False,
        "required": ["mission_id", "objective"],
        "properties": {
            "mission_id": _ID,
            "objective": {
                "type": "string",
                "minLength": 1,
                "maxLength": MAX_OBJECTIVE_BYTES,
                "description": "A command line, run as /bin/sh -c OBJECTIVE.",
            },
            "executor_filter": executor_filter,
            "metadata": {"type": "object"},
            "timeout_seconds": {"type": "integer", "minimum": 0, "maximum": MAX_TIMEOUT_SECONDS},
        },
    }


def mission_schemas() -> dict[str, Schema]:
    """Return the component schemas the mission operations refer to."""
    schema = Mission.model_json_schema(
        by_alias=True, mode="serialization", ref_template=_COMPONENTS
    )
    components: dict[str, Schema] = dict(schema.pop("$defs", {}))
    components["Mission"] = schema
    components["MissionList"] = {
        "type": "object",
        "required": ["apiVersion", "kind", "items"],
        "properties": {
            "apiVersion": {"type": "string"},
            "kind": {"const": "MissionList"},
            "items": {"type": "array", "items": ref("Mission")},
        },
    }
    components["MissionDispatch"] = _dispatch_body()
    return components


def _param(name: str, schema: Schema, description: str, *, where: str = "query") -> Schema:
    parameter: Schema = {"name": name, "in": where, "description": description, "schema": schema}
    if where == "path":
        parameter["required"] = True
    return parameter


def _operation(
    operation_id: str,
    summary: str,
    responses: dict[str, Any],
    *,
    parameters: list[Schema],
    body: Schema | None = None,
) -> dict[str, Any]:
    problem = {
        "description": "A problem document.",
        "content": {PROBLEM_MEDIA_TYPE: {"schema": ref("Problem")}},
    }
    operation: dict[str, Any] = {
        "operationId": operation_id,
        "summary": summary,
        "parameters": parameters,
        "responses": {**responses, "default": problem},
    }
    if body is not None:
        operation["requestBody"] = {"required": True, "content": {JSON: {"schema": body}}}
    return operation


def _json(schema_name: str, description: str) -> dict[str, Any]:
    return {"description": description, "content": {JSON: {"schema": ref(schema_name)}}}


def mission_paths() -> dict[str, Any]:
    """Return the path items of the dispatch, mission and mission output routes."""
    mission_id = _param("mission_id", _ID, "The mission id.", where="path")
    namespace = _param(
        "namespace",
        {"type": "string", "pattern": DNS1123_LABEL.pattern, "maxLength": DNS1123_LABEL_MAX},
        "Namespace of the instances that may run the mission; default 'default'.",
    )
    created = _json("Mission", "The mission, Running (or Failed when its agent just left).")
    created["headers"] = {
        "Location": {
            "description": "The path of the mission record.",
            "required": True,
            "schema": {"type": "string"},
        }
    }
    states = ", ".join(state.value for state in MissionState)
    return {
        "/api/v1/sessions/{id}/dispatch": {
            "post": _operation(
                "dispatchMission",
                "Run a command line on the least busy Ready instance that matches the filter.",
                {"201": created},
                parameters=[_param("id", _ID, "The session id.", where="path"), namespace],
                body=ref("MissionDispatch"),
            )
        },
        "/api/v1/missions": {
            "get": _operation(
                "listMissions",
                "List missions, oldest first.",
                {"200": _json("MissionList", "The newest missions that match.")},
                parameters=[
                    _param("session", {"type": "string"}, "Only missions of this session."),
                    _param("state", {"type": "string"}, f"Comma-separated states: {states}."),
                    _param(
                        "limit",
                        {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT},
                        f"At most this many; default {DEFAULT_LIMIT}.",
                    ),
                ],
            )
        },
        "/api/v1/missions/{mission_id}": {
            "get": _operation(
                "getMission",
                "Read a mission record.",
                {"200": _json("Mission", "The mission.")},
                parameters=[mission_id],
            )
        },
        "/api/v1/missions/{mission_id}/output": {
            "get": _operation(
                "missionOutput",
                "Read or follow a mission's stored output.",
                {
                    "200": {
                        "description": "stdout and stderr interleaved, as bytes.",
                        "content": {OUTPUT_MEDIA_TYPE: {"schema": {"type": "string"}}},
                    }
                },
                parameters=[
                    mission_id,
                    _param(
                        "follow",
                        {"type": "boolean"},
                        "Keep streaming new output until the mission ends.",
                    ),
                ],
            )
        },
    }
