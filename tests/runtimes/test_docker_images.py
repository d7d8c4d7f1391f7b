"""Image presence: the Docker driver's read-only image listing and reference normalization."""

from __future__ import annotations

import pytest

from agentic_sandbox.runtimes.docker import DockerRuntime, normalize_image_reference
from agentic_sandbox.runtimes.fake import FakeRuntime
from tests.runtimes.support import RUN_ID


@pytest.mark.parametrize(
    ("reference", "normalized"),
    [
        ("busybox", "busybox:latest"),
        ("docker.io/library/busybox:1.36", "busybox:1.36"),
        ("library/busybox", "busybox:latest"),
        ("docker.io/agentic/demo", "agentic/demo:latest"),
        ("agentic/demo:dev", "agentic/demo:dev"),
        ("localhost:5000/demo", "localhost:5000/demo:latest"),
        ("localhost:5000/demo:dev", "localhost:5000/demo:dev"),
        ("busybox:1.36@sha256:abc", "busybox@sha256:abc"),
    ],
)
def test_normalize_image_reference(reference: str, normalized: str) -> None:
    assert normalize_image_reference(reference) == normalized


@pytest.mark.docker
async def test_image_present_on_docker(runtime: DockerRuntime, busybox_image: str) -> None:
    missing = f"agentic-test/absent:{RUN_ID}"
    hub_form = f"docker.io/{busybox_image}"

    present = await runtime.image_present([busybox_image, hub_form, missing])

    assert present == {busybox_image: True, hub_form: True, missing: False}


async def test_fake_image_present() -> None:
    limited = FakeRuntime(images=["agentic/demo:dev"])
    unlimited = FakeRuntime()

    assert await limited.image_present(["agentic/demo:dev", "x:1"]) == {
        "agentic/demo:dev": True,
        "x:1": False,
    }
    assert await unlimited.image_present(["x:1"]) == {"x:1": True}
