"""The exec route: ``POST /api/v1/instances/{name}/exec`` runs a command through the agent.

The body is a JSON object: ``command`` (a list of strings, run without a shell), and optionally
``env`` (string to string), ``workingDir`` and ``timeoutSeconds`` (0: no limit). The response
streams newline-delimited JSON (``application/x-ndjson``), one object per line:

    {"stream": "stdout", "data": "<base64>"}
    {"stream": "stderr", "data": "<base64>"}
    {"exitCode": 0, "signal": 0, "timedOut": false, "error": "", "durationMs": 12}

The last line is always the exit object, unless the connection breaks first. A client that
disconnects before the end abandons the command, which then gets SIGTERM. Errors before the
first line are problem documents: 404 for an unknown instance, 409 when its agent is not
connected, 422 for an invalid body.
"""

from __future__ import annotations

import base64
import json
import logging
from collections.abc import AsyncGenerator
from typing import Any

from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from agentic_sandbox.api.bodies import read_json_object
from agentic_sandbox.api.params import query_namespace
from agentic_sandbox.api.problems import ApiProblem
from agentic_sandbox.api.routing import method_route
from agentic_sandbox.controller.agent_commands import (
    CommandExit,
    CommandRunner,
    CommandSession,
    CommandSpec,
)
from agentic_sandbox.crds.meta import Resource
from agentic_sandbox.errors import AgentNotConnected, FieldError
from agentic_sandbox.store.base import Store

logger = logging.getLogger(__name__)

EXEC_PATH = "/api/v1/instances/{name}/exec"
NDJSON_MEDIA_TYPE = "application/x-ndjson"
MAX_ARGUMENTS = 4096
MAX_TIMEOUT_SECONDS = 7 * 24 * 3600
_FIELDS = {"command", "env", "workingDir", "timeoutSeconds"}


def parse_exec_body(body: dict[str, Any]) -> CommandSpec:
    """Validate an exec body; raise ApiProblem 422 listing every invalid field."""
    errors: list[FieldError] = []
    for name in sorted(set(body) - _FIELDS):
        errors.append(FieldError(path=name, message="unknown field", value=body[name]))
    command = body.get("command")
    if (
        not isinstance(command, list)
        or not command
        or len(command) > MAX_ARGUMENTS
        or not all(isinstance(arg, str) and "\x00" not in arg for arg in command)
    ):
        errors.append(
            FieldError(
                path="command",
                message='must be a non-empty list of strings without NUL, such as ["uname", "-a"]',
                value=command,
            )
        )
    env = body.get("env", {})
    if not isinstance(env, dict) or not all(
        isinstance(key, str) and key and "=" not in key and isinstance(value, str)
        for key, value in env.items()
    ):
        errors.append(FieldError(path="env", message="must map names to strings", value=env))
    working_dir = body.get("workingDir", "")
    if not isinstance(working_dir, str) or (working_dir and not working_dir.startswith("/")):
        errors.append(
            FieldError(path="workingDir", message="must be an absolute path", value=working_dir)
        )
    timeout = body.get("timeoutSeconds", 0)
    if not isinstance(timeout, int) or isinstance(timeout, bool):
        timeout = -1
    if not 0 <= timeout <= MAX_TIMEOUT_SECONDS:
        errors.append(
            FieldError(
                path="timeoutSeconds",
                message=f"must be an integer from 0 (no limit) to {MAX_TIMEOUT_SECONDS}",
                value=body.get("timeoutSeconds"),
            )
        )
    if errors:
        raise ApiProblem(422, "the exec request is invalid", kind="Invalid", errors=errors)
    return CommandSpec(
        argv=list(command or []),
        env=dict(env),
        working_dir=working_dir,
        timeout_seconds=timeout,
    )


def _line(payload: dict[str, Any]) -> bytes:
    return json.dumps(payload, separators=(",", ":")).encode() + b"\n"


class ExecRoutes:
    def __init__(self, store: Store, commands: CommandRunner | None) -> None:
        self._store = store
        self._commands = commands

    def routes(self) -> list[Route]:
        return [method_route(EXEC_PATH, {"POST": self._exec})]

    async def _exec(self, request: Request) -> Response:
        namespace = query_namespace(request)
        name = request.path_params["name"]
        spec = parse_exec_body(await read_json_object(request))
        # Raises NotFound (404) for an unknown instance.
        instance = await self._store.get("Instance", namespace, name)
        if self._commands is None:
            raise ApiProblem(503, "this server runs no agent server", kind="AgentNotConnected")
        try:
            session = await self._commands.start(instance.key, spec)
        except AgentNotConnected as error:
            raise ApiProblem(409, _not_connected(instance, error), kind=error.reason) from error
        return StreamingResponse(
            self._stream(session),
            media_type=NDJSON_MEDIA_TYPE,
            headers={"Cache-Control": "no-store"},
        )

    async def _stream(self, session: CommandSession) -> AsyncGenerator[bytes, None]:
        try:
            async for event in session.events():
                if isinstance(event, CommandExit):
                    yield _line(
                        {
                            "exitCode": event.exit_code,
                            "signal": event.signal,
                            "timedOut": event.timed_out,
                            "error": event.error,
                            "durationMs": event.duration_ms,
                        }
                    )
                    return
                data = base64.b64encode(event.data).decode()
                yield _line({"stream": event.stream, "data": data})
        finally:
            await session.abandon()


def _not_connected(instance: Resource, error: AgentNotConnected) -> str:
    """Say why no agent takes the command, from the instance's own conditions when they know."""
    status = getattr(instance, "status", None)
    agent = status.condition("AgentConnected") if status is not None else None
    if agent is not None and agent.reason == "NoAgentInImage":
        return (
            f"instance {instance.key} runs an image without the agent ({agent.message}); exec "
            "needs an image labelled dev.agentic.agent=true, such as agentic/agent:dev"
        )
    phase = getattr(status, "phase", None)
    if phase is not None and phase.value in ("Stopped", "Succeeded", "Failed"):
        return f"instance {instance.key} is {phase.value}; start it first: sandboxctl start"
    return str(error)
