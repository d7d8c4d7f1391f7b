"""Schemathesis against a live ``sandboxctl serve``: no server errors, no off-schema responses.

The server runs on loopback with its own state directory and controller id; the schema is the
one it serves at ``/openapi.json``. Each operation gets a bounded number of generated requests,
valid ones and invalid ones, and valid ones about two objects created for the test (a Docker
Instance running the demo image and a halted VM Instance), so that item routes also answer with
real objects and not only 404. Streaming requests (``follow=true``) would never end, so the test
turns follow off; the streams have their own tests. Instances the requests create may start
real containers, which the controller's cleanup removes by controller id.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    allow_header_conformance,
    content_type_conformance,
    ignored_auth,
    missing_required_header,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
    unsupported_method,
)

from agentic_sandbox.api.openapi import OPENAPI_PATH, build_openapi
from agentic_sandbox.crds.meta import API_VERSION
from tests.e2e.controller_process import ControllerProcess

pytestmark = [pytest.mark.docker, pytest.mark.slow]

# Generated requests per operation; about 30 operations in all.
MAX_EXAMPLES = 15
REQUEST_TIMEOUT_SECONDS = 10
# Not positive_data_acceptance or negative_data_rejection: the document describes the shapes
# of requests, not every rule the server checks (label key syntax, mount roots, an image or a
# loadout), and the server reads an empty query value as an absent one.
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    ignored_auth,
    missing_required_header,
    unsupported_method,
    allow_header_conformance,
]
OPERATIONS = sorted(
    (path, method.upper())
    for path, item in build_openapi()["paths"].items()
    for method in item
    if method != "parameters"
)


@pytest.fixture(scope="module")
def controller(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ControllerProcess]:
    process = ControllerProcess(Path(tmp_path_factory.mktemp("schemathesis")))
    process.start()
    try:
        yield process
    finally:
        process.cleanup()


@pytest.fixture(scope="module")
def auth(controller: ControllerProcess) -> dict[str, str]:
    token = (controller.state_dir / "api-token").read_text().strip()
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture(scope="module")
def live_schema(controller: ControllerProcess, auth: dict[str, str]) -> Any:
    url = f"http://127.0.0.1:{controller.port}{OPENAPI_PATH}"
    return schemathesis.openapi.from_url(url, headers=auth, timeout=REQUEST_TIMEOUT_SECONDS)


class Seeds:
    """The two objects that item routes are tested on, made again once a request deletes them."""

    def __init__(self, controller: ControllerProcess, image: str) -> None:
        self._controller = controller
        self._image = image
        self.names: dict[str, str] = {}

    def ensure(self) -> dict[str, str]:
        """Return the names by runtime, creating the objects that are gone or being deleted."""
        if not self._usable(self.names.get("docker")):
            self.names["docker"] = f"seed-{uuid.uuid4().hex[:8]}"
            instance = {
                "apiVersion": API_VERSION,
                "kind": "Instance",
                "metadata": {"name": self.names["docker"]},
                "spec": {"image": self._image},
            }
            self._controller.client.post("/api/v1/instances", json=instance).raise_for_status()
        if not self._usable(self.names.get("libvirt")):
            self.names["libvirt"] = f"seed-vm-{uuid.uuid4().hex[:8]}"
            vm = {"name": self.names["libvirt"], "start": False}
            self._controller.client.post("/api/v1/vms", json=vm).raise_for_status()
        return self.names

    def _usable(self, name: str | None) -> bool:
        found = self._controller.instance(name) if name else None
        return found is not None and "deletionTimestamp" not in found["metadata"]


@pytest.fixture(scope="module")
def seeds(controller: ControllerProcess, demo_image: str) -> Seeds:
    return Seeds(controller, demo_image)


def _cases(operation: Any, path: str, seeded: dict[str, str]) -> Any:
    """Build the generated cases: valid, invalid, and valid about a seeded object."""
    strategies = [
        operation.as_strategy(generation_mode=schemathesis.GenerationMode.POSITIVE),
        operation.as_strategy(generation_mode=schemathesis.GenerationMode.NEGATIVE),
    ]
    if "{name}" in path:
        name = seeded["libvirt" if path.startswith("/api/v1/vms") else "docker"]
        strategies.append(operation.as_strategy(path_parameters={"name": name}))
    return st.one_of(*strategies)


def _no_follow(case: Any) -> None:
    if case.query and "follow" in case.query:
        case.query["follow"] = "false"


@pytest.mark.parametrize(("path", "method"), OPERATIONS, ids=[f"{m} {p}" for p, m in OPERATIONS])
def test_schemathesis_operation(
    controller: ControllerProcess,
    auth: dict[str, str],
    live_schema: Any,
    seeds: Seeds,
    path: str,
    method: str,
) -> None:
    cases = _cases(live_schema[path][method], path, seeds.ensure())
    base_url = f"http://127.0.0.1:{controller.port}"

    @settings(
        max_examples=MAX_EXAMPLES,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(case=cases)
    def run(case: Any) -> None:
        _no_follow(case)
        case.call_and_validate(
            base_url=base_url, headers=auth, checks=CHECKS, timeout=REQUEST_TIMEOUT_SECONDS
        )

    run()
