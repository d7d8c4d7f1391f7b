"""Fixtures shared by the whole suite: the Docker Engine check and the sandbox images.

Tests that need a real component call ``require_docker()`` (or use a fixture built on it). With
CI=true a missing component fails the test; elsewhere it skips with the reason, so that a
developer without Docker can still run the unit tests.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Mapping
from pathlib import Path

import docker
import docker.errors
import pytest
import requests.exceptions

REPO_ROOT = Path(__file__).resolve().parent.parent
BUILD_SCRIPT = REPO_ROOT / "images" / "build.sh"
DEMO_IMAGE = "agentic/demo:dev"
BASE_IMAGE = "agentic/base:dev"
# A cold build takes about two seconds; the limit covers a slow disk or a busy Docker Engine.
BUILD_TIMEOUT_SECONDS = 300


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in ("1", "true", "yes")


def missing_component(reason: str) -> None:
    """Fail the test in CI and skip it elsewhere, with ``reason`` as the message."""
    if in_ci():
        pytest.fail(f"{reason} (CI=true: a missing component is a failure)", pytrace=False)
    pytest.skip(reason)


def docker_unavailable_reason() -> str | None:
    """Ping the Docker Engine named by the environment; return why it is unusable, or None."""
    try:
        client = docker.from_env(timeout=10)
    except docker.errors.DockerException as error:
        return f"Docker Engine is not reachable: {error}"
    try:
        client.ping()
    except (docker.errors.DockerException, requests.exceptions.RequestException) as error:
        return f"Docker Engine is not reachable: {error}"
    finally:
        client.close()
    return None


def require_docker() -> None:
    """Fail (CI) or skip (elsewhere) the calling test when the Docker Engine does not respond."""
    reason = docker_unavailable_reason()
    if reason is not None:
        missing_component(f"{reason}; start it with scripts/setup")


def build_images(
    *extra_args: str, env: Mapping[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run images/build.sh with ``extra_args``, and ``env`` over this process's environment."""
    return subprocess.run(
        ["bash", str(BUILD_SCRIPT), *extra_args],
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=BUILD_TIMEOUT_SECONDS,
        stdin=subprocess.DEVNULL,
        check=False,
    )


@pytest.fixture(scope="session")
def demo_image() -> str:
    """Build the sandbox images once per session when needed; return the demo image reference."""
    require_docker()
    result = build_images()
    if result.returncode != 0:
        pytest.fail(
            f"images/build.sh exited with {result.returncode}:\n{result.stdout}{result.stderr}",
            pytrace=False,
        )
    return DEMO_IMAGE
