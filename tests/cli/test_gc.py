"""sandboxctl gc: the request it sends, its table and its exit code."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from agentic_sandbox.cli.client import ApiClient
from agentic_sandbox.cli.gc import run_gc
from agentic_sandbox.cli.options import build_parser
from tests.cli.conftest import ApiServer
from tests.cli.support import Sandboxctl

CONTAINER = {
    "type": "container",
    "id": "0123456789abcdef",
    "name": "web",
    "instance": "default/web",
    "uid": "uid-1",
    "reason": "InstanceGone",
    "message": "instance default/web (uid uid-1) is not in the store",
}
WORKSPACE = {
    "type": "workspace",
    "id": "/srv/workspaces/default/api",
    "name": "/srv/workspaces/default/api",
    "instance": "default/api",
    "uid": "uid-2",
    "reason": "InstanceGone",
    "message": "instance default/api (uid uid-2) is not in the store",
}


class FakeServer:
    """A fake API server that returns ``items`` from the sweep route and records each request."""

    def __init__(self, items: list[dict[str, Any]]) -> None:
        self.items = items
        self.requests: list[httpx.Request] = []

    def handle(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        dry_run = request.url.params.get("dryRun") == "true"
        body = {"kind": "GarbageCollection", "dryRun": dry_run, "items": self.items}
        return httpx.Response(200, json=body)

    def run(self, *argv: str) -> int:
        args = build_parser().parse_args(["gc", *argv])
        transport = httpx.MockTransport(self.handle)
        with ApiClient("http://127.0.0.1:8122", "token", transport=transport) as client:
            return run_gc(args, client)


def test_gc_dry_run_request_and_table(capsys: pytest.CaptureFixture[str]) -> None:
    server = FakeServer([{**CONTAINER, "result": "WouldRemove"}])

    code = server.run("--dry-run")

    assert code == 0
    [request] = server.requests
    assert request.method == "POST"
    assert request.url.path == "/api/v1/gc/sweep"
    assert request.url.params["dryRun"] == "true"
    out, err = capsys.readouterr()
    rows = out.splitlines()
    assert rows[0].split() == ["TYPE", "NAME", "INSTANCE", "REASON", "MESSAGE"]
    assert rows[1].split()[:4] == ["container", "web", "default/web", "InstanceGone"]
    assert rows[1].endswith(CONTAINER["message"])
    assert "Dry run: nothing was removed." in err


def test_gc_sweep_results(capsys: pytest.CaptureFixture[str]) -> None:
    server = FakeServer(
        [
            {**CONTAINER, "result": "Removed"},
            {**WORKSPACE, "result": "Kept", "error": "the owner file changed since the scan"},
        ]
    )

    code = server.run()

    assert code == 0
    assert server.requests[0].url.params["dryRun"] == "false"
    rows = capsys.readouterr().out.splitlines()
    assert rows[0].split()[:2] == ["RESULT", "TYPE"]
    assert rows[1].startswith("removed ")
    assert rows[2].startswith("kept: the owner file changed since the scan")


def test_gc_failed_removal_exit_code(capsys: pytest.CaptureFixture[str]) -> None:
    server = FakeServer([{**CONTAINER, "result": "Failed", "error": "device busy"}])

    code = server.run()

    assert code == 1
    assert "failed: device busy" in capsys.readouterr().out


def test_gc_nothing_to_collect(capsys: pytest.CaptureFixture[str]) -> None:
    code = FakeServer([]).run()

    assert code == 0
    out, err = capsys.readouterr()
    assert out == ""
    assert "Nothing to collect." in err


def test_gc_json_output(capsys: pytest.CaptureFixture[str]) -> None:
    server = FakeServer([{**CONTAINER, "result": "WouldRemove"}])

    code = server.run("--dry-run", "-o", "json")

    assert code == 0
    document = json.loads(capsys.readouterr().out)
    assert document["items"][0]["reason"] == "InstanceGone"


def test_gc_server_without_collector(client_env: ApiServer, sandboxctl: Sandboxctl) -> None:
    result = sandboxctl("gc", "--dry-run")

    assert result.code == 1
    assert "no garbage collector" in result.err
