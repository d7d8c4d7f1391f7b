"""The logs route: ``GET /api/v1/instances/{name}/logs`` streams a sandbox's output.

``tail=N`` starts with the last N lines (default: all of it) and ``follow=true`` keeps the
response open for new output until the sandbox stops or the client disconnects. The body is
``text/plain``: stdout and stderr interleaved, as the runtime returns them, and not re-encoded.

The sandbox is the one the reconciler would keep: a running one first, else the newest. Errors
that happen before the first byte are problem documents: 404 when the instance or its sandbox
does not exist, 503 with Retry-After when the runtime is unavailable, 429 when too many log
streams are open. A failure mid-stream ends the body early, because the status is already sent.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncGenerator

from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from agentic_sandbox.api.params import query_bool, query_int, query_namespace
from agentic_sandbox.api.problems import ApiProblem
from agentic_sandbox.api.routing import method_route
from agentic_sandbox.controller.plan import pick_current
from agentic_sandbox.crds.instance import Instance
from agentic_sandbox.errors import RuntimeFailure, RuntimeObjectNotFound, RuntimeUnavailable
from agentic_sandbox.runtimes.base import LABEL_CONTROLLER, LABEL_UID, Runtime, SandboxState
from agentic_sandbox.store.base import Store

logger = logging.getLogger(__name__)

LOGS_PATH = "/api/v1/instances/{name}/logs"
LOG_MEDIA_TYPE = "text/plain; charset=utf-8"
# Seconds a client should wait before retrying when the runtime is unavailable.
RETRY_AFTER_SECONDS = 5
# Log streams open at once. Each keeps a runtime connection open and, for Docker, a thread.
MAX_LOG_STREAMS = 64
# Largest tail a request may ask for, in lines.
MAX_TAIL_LINES = 100_000


def _runtime_unavailable(detail: str) -> ApiProblem:
    return ApiProblem(
        503,
        detail,
        kind="RuntimeUnavailable",
        headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
    )


def _no_sandbox(instance: Instance) -> ApiProblem:
    return ApiProblem(
        404,
        f"instance {instance.key} has no sandbox, so it has no logs; check its status with "
        f"'sandboxctl describe instance {instance.metadata.name}'",
        kind="NoSandbox",
    )


class LogRoutes:
    """Handler of the logs route over one store and, when given, one runtime."""

    def __init__(
        self, store: Store, runtime: Runtime | None, *, controller_id: str | None = None
    ) -> None:
        self._store = store
        self._runtime = runtime
        self._controller_id = controller_id
        self._open_streams = 0

    def routes(self) -> list[Route]:
        return [method_route(LOGS_PATH, {"GET": self.logs})]

    async def logs(self, request: Request) -> Response:
        tail = query_int(request, "tail", default=None, minimum=0, maximum=MAX_TAIL_LINES)
        follow = query_bool(request, "follow")
        found = await self._store.get(
            Instance.KIND, query_namespace(request), request.path_params["name"]
        )
        assert isinstance(found, Instance)
        if self._runtime is None:
            raise _runtime_unavailable("this server has no runtime access, so it serves no logs")
        if self._open_streams >= MAX_LOG_STREAMS:
            raise ApiProblem(
                429,
                f"{MAX_LOG_STREAMS} log streams are open, the maximum; close one and retry",
                kind="TooManyLogStreams",
                headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
            )

        sandbox = await self._current_sandbox(self._runtime, found)
        if sandbox is None:
            raise _no_sandbox(found)
        stream = self._runtime.logs(sandbox.id, tail=tail, follow=follow)
        try:
            await anext(stream)  # the empty chunk that signals an open stream
        except RuntimeObjectNotFound:
            await stream.aclose()
            raise _no_sandbox(found) from None
        except RuntimeUnavailable as error:
            await stream.aclose()
            raise _runtime_unavailable(f"the runtime cannot stream logs: {error}") from None

        headers = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
        return StreamingResponse(
            self._body(stream, instance=found.key),
            media_type=LOG_MEDIA_TYPE,
            headers=headers,
        )

    async def _current_sandbox(self, runtime: Runtime, instance: Instance) -> SandboxState | None:
        selector = {LABEL_UID: str(instance.metadata.uid)}
        if self._controller_id is not None:
            selector[LABEL_CONTROLLER] = self._controller_id
        try:
            sandboxes = await runtime.list_owned(selector, detailed=False)
        except RuntimeUnavailable as error:
            raise _runtime_unavailable(f"the runtime cannot list sandboxes: {error}") from None
        return pick_current(sandboxes)[0]

    async def _body(
        self, stream: AsyncGenerator[bytes, None], *, instance: str
    ) -> AsyncGenerator[bytes, None]:
        # Counted from the first iteration: a body that never starts (the client left first)
        # has no finally to run, and the event loop closes its runtime stream on collection.
        self._open_streams += 1
        try:
            async for chunk in stream:
                if chunk:
                    yield chunk
        except RuntimeFailure as error:
            logger.warning(
                "log stream ended by a runtime failure instance=%s error=%s", instance, error
            )
        finally:
            self._open_streams -= 1
            await stream.aclose()
