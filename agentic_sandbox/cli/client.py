"""A synchronous client of the HTTP API, and the errors the CLI prints.

Problem documents from the server become ``ApiError`` with the server's detail and field errors;
transport failures become ``CliError`` naming the server URL. The token is sent as a bearer and
never appears in an error message.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator, Sequence
from types import TracebackType
from typing import Any

import httpx

INSTANCES_PATH = "/api/v1/instances"
# The collection route of each kind that sandboxctl apply and delete -f send.
COLLECTION_PATHS = {
    "Instance": INSTANCES_PATH,
    "Loadout": "/api/v1/loadouts",
    "GitSource": "/api/v1/gitsources",
}
LOADOUTS_PATH = "/api/v1/loadouts"
EVENTS_PATH = "/api/v1/events"
GC_SWEEP_PATH = "/api/v1/gc/sweep"
APPLY_OUTCOME_HEADER = "Apply-Outcome"
# Seconds to wait for the server to accept a connection and respond to one request.
REQUEST_TIMEOUT = 30.0


class CliError(Exception):
    """An error printed as ``error: <message>`` followed by indented ``details``."""

    def __init__(self, message: str, *, details: Sequence[str] = ()) -> None:
        super().__init__(message)
        self.message = message
        self.details = list(details)


def print_error(error: CliError) -> None:
    """Print ``error: <message>`` and its indented details on standard error."""
    print(f"error: {error.message}", file=sys.stderr)
    for detail in error.details:
        print(f"  {detail}", file=sys.stderr)


class ApiError(CliError):
    """The server responded with an error status. ``problem`` is its problem document."""

    def __init__(self, status: int, problem: dict[str, Any], *, details: Sequence[str]) -> None:
        super().__init__(str(problem.get("detail") or f"HTTP {status}"), details=details)
        self.status = status
        self.problem = problem


def _field_error_lines(problem: dict[str, Any]) -> list[str]:
    lines = []
    for error in problem.get("errors") or []:
        if not isinstance(error, dict):
            continue
        field = error.get("field") or ""
        line = error.get("line")
        where = f"line {line}: " if line is not None else ""
        lines.append(f"{where}{field + ': ' if field else ''}{error.get('message', '')}")
    return lines


def _problem(response: httpx.Response) -> dict[str, Any]:
    try:
        data = response.json()
    except ValueError:
        data = None
    if isinstance(data, dict):
        return data
    text = response.text.strip()[:200] or response.reason_phrase
    return {"detail": f"HTTP {response.status_code}: {text}"}


class ApiClient:
    """Calls the API at ``server``; every method returns decoded JSON or raises CliError."""

    def __init__(
        self,
        server: str,
        token: str | None,
        *,
        token_hint: str = "",
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.server = server.rstrip("/")
        self._token_hint = token_hint
        headers = {"Accept": "application/json"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        self._http = httpx.Client(
            base_url=self.server, headers=headers, timeout=REQUEST_TIMEOUT, transport=transport
        )

    def __enter__(self) -> ApiClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def list_instances(
        self, *, namespace: str | None, selector: str | None = None, phase: str | None = None
    ) -> dict[str, Any]:
        params = {"namespace": namespace, "labelSelector": selector, "phase": phase}
        return self._json("GET", INSTANCES_PATH, params=params)

    def get_instance(self, namespace: str, name: str) -> dict[str, Any]:
        return self._json("GET", f"{INSTANCES_PATH}/{name}", params={"namespace": namespace})

    def list_loadouts(self, *, namespace: str) -> dict[str, Any]:
        return self._json("GET", LOADOUTS_PATH, params={"namespace": namespace})

    def get_loadout(self, namespace: str, name: str) -> dict[str, Any]:
        return self._json("GET", f"{LOADOUTS_PATH}/{name}", params={"namespace": namespace})

    def apply_resource(
        self, manifest: dict[str, Any], *, takeover: bool = False, dry_run: bool = False
    ) -> tuple[dict[str, Any], str]:
        """PUT a full manifest to its kind's route; return the stored object and the outcome.

        The outcome is created, updated or unchanged.

        With ``dry_run`` the server changes nothing and returns a DryRunResult document, with
        the would-be object and the planned operations, in place of the stored object.
        """
        metadata = manifest["metadata"]
        collection = COLLECTION_PATHS.get(str(manifest.get("kind")), INSTANCES_PATH)
        path = f"{collection}/{metadata['name']}"
        params = {"namespace": metadata.get("namespace", "default")}
        if takeover:
            params["takeover"] = "true"
        if dry_run:
            params["dryRun"] = "All"
        response = self._send("PUT", path, params=params, json=manifest)
        outcome = response.headers.get(APPLY_OUTCOME_HEADER, "")
        if not outcome:
            outcome = "created" if response.status_code == 201 else "updated"
        return response.json(), outcome

    def post(self, path: str, *, params: dict[str, Any] | None = None) -> dict[str, Any]:
        return self._json("POST", path, params=params)

    def get(self, path: str, *, params: dict[str, Any] | None = None) -> dict[str, Any]:
        return self._json("GET", path, params=params)

    def post_json(
        self, path: str, body: dict[str, Any], *, params: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        """POST ``body`` as JSON; return the decoded JSON object of the response."""
        data = self._send("POST", path, params=params, json=body).json()
        if not isinstance(data, dict):
            raise CliError(
                f"the server at {self.server} returned a response that is not a JSON object"
            )
        return data

    def stream_bytes(self, path: str, *, params: dict[str, Any] | None = None) -> Iterator[bytes]:
        """GET ``path`` and yield the response body as it arrives, with no read timeout."""
        timeout = httpx.Timeout(REQUEST_TIMEOUT, read=None)
        try:
            with self._http.stream("GET", path, params=params, timeout=timeout) as response:
                if not response.is_success:
                    response.read()
                    raise self._api_error(response)
                yield from response.iter_bytes()
        except httpx.TransportError as exc:
            raise self._transport_error(exc) from exc

    def delete_instance(
        self,
        namespace: str,
        name: str,
        *,
        force: bool = False,
        takeover: bool = False,
        kind: str = "Instance",
    ) -> dict[str, Any]:
        """DELETE an object of ``kind`` (an Instance by default) through its kind's route."""
        params: dict[str, Any] = {"namespace": namespace}
        if takeover:
            params["takeover"] = "true"
        if force:
            params["force"] = "true"
        collection = COLLECTION_PATHS.get(kind, INSTANCES_PATH)
        return self._json("DELETE", f"{collection}/{name}", params=params)

    def list_events(
        self, *, instance: str | None = None, since: int | None = None, limit: int | None = None
    ) -> dict[str, Any]:
        params = {"instance": instance, "since": since, "limit": limit}
        return self._json("GET", EVENTS_PATH, params=params)

    def sweep_garbage(self, *, dry_run: bool) -> dict[str, Any]:
        """Run one garbage collection pass on the server; with ``dry_run``, remove nothing."""
        return self._json("POST", GC_SWEEP_PATH, params={"dryRun": "true" if dry_run else "false"})

    def stream_logs(
        self, namespace: str, name: str, *, tail: int | None, follow: bool
    ) -> Iterator[bytes]:
        """Yield an instance's log output as it arrives; with ``follow`` until the sandbox stops."""
        params: dict[str, Any] = {"namespace": namespace}
        if tail is not None:
            params["tail"] = tail
        if follow:
            params["follow"] = "true"
        # A followed log may stay quiet for as long as the sandbox prints nothing.
        timeout = httpx.Timeout(REQUEST_TIMEOUT, read=None if follow else REQUEST_TIMEOUT)
        path = f"{INSTANCES_PATH}/{name}/logs"
        try:
            with self._http.stream("GET", path, params=params, timeout=timeout) as response:
                if not response.is_success:
                    response.read()
                    raise self._api_error(response)
                yield from response.iter_bytes()
        except httpx.TransportError as exc:
            raise self._transport_error(exc) from exc

    def stream_exec(self, namespace: str, name: str, body: dict[str, Any]) -> Iterator[bytes]:
        """Run a command in an instance through its agent; yield the response's NDJSON lines."""
        # A command may stay quiet for as long as it likes.
        timeout = httpx.Timeout(REQUEST_TIMEOUT, read=None)
        path = f"{INSTANCES_PATH}/{name}/exec"
        params = {"namespace": namespace}
        try:
            with self._http.stream(
                "POST", path, params=params, json=body, timeout=timeout
            ) as response:
                if not response.is_success:
                    response.read()
                    raise self._api_error(response)
                for line in response.iter_lines():
                    if line:
                        yield line.encode()
        except httpx.TransportError as exc:
            raise self._transport_error(exc) from exc

    def _json(
        self, method: str, path: str, *, params: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        data = self._send(method, path, params=params).json()
        if not isinstance(data, dict):
            raise CliError(
                f"the server at {self.server} returned a response that is not a JSON object"
            )
        return data

    def _send(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, Any] | None = None,
        json: dict[str, Any] | None = None,
    ) -> httpx.Response:
        query = {key: value for key, value in (params or {}).items() if value is not None}
        try:
            response = self._http.request(method, path, params=query, json=json)
        except httpx.TransportError as exc:
            raise self._transport_error(exc) from exc
        if response.is_success:
            return response
        raise self._api_error(response)

    def _api_error(self, response: httpx.Response) -> ApiError:
        problem = _problem(response)
        details = _field_error_lines(problem)
        if response.status_code == 401 and self._token_hint:
            details.append(self._token_hint)
        return ApiError(response.status_code, problem, details=details)

    def _transport_error(self, exc: httpx.TransportError) -> CliError:
        if isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout):
            return CliError(
                f"cannot connect to the server at {self.server}: {exc}",
                details=[
                    "is the controller running? Start it with 'sandboxctl serve', or point "
                    "--server (or SANDBOXCTL_SERVER) at a running one"
                ],
            )
        if isinstance(exc, httpx.TimeoutException):
            return CliError(
                f"the server at {self.server} did not respond within {REQUEST_TIMEOUT:g} seconds"
            )
        if isinstance(exc, httpx.UnsupportedProtocol):
            return CliError(
                f"server URL {self.server!r} is invalid: {exc}",
                details=["use a URL such as http://127.0.0.1:8122"],
            )
        return CliError(f"request to the server at {self.server} failed: {exc}")
