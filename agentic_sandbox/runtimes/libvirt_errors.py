"""Translating libvirt and disk preparation failures into the project's RuntimeFailure family."""

from __future__ import annotations

import asyncio
import subprocess
from collections.abc import Callable
from typing import TypeVar

import libvirt

from agentic_sandbox.errors import (
    ImageNotFound,
    InvalidRuntimeSpec,
    RuntimeAPIError,
    RuntimeFailure,
    RuntimeTimeout,
)
from agentic_sandbox.runtimes.libvirt_conn import api_error, error_message
from agentic_sandbox.runtimes.libvirt_disk import ImageError, ImageMissing

T = TypeVar("T")

# Error codes that mean libvirt rejected the domain's configuration, which retrying cannot fix.
_SPEC_ERROR_CODES = frozenset(
    {
        libvirt.VIR_ERR_XML_ERROR,
        libvirt.VIR_ERR_XML_DETAIL,
        libvirt.VIR_ERR_XML_INVALID_SCHEMA,
        libvirt.VIR_ERR_CONFIG_UNSUPPORTED,
        libvirt.VIR_ERR_NO_SUPPORT,
    }
)


def spec_error(
    operation: str, subject: str, exc: libvirt.libvirtError
) -> InvalidRuntimeSpec | None:
    """Return InvalidRuntimeSpec when ``exc`` rejects the configuration, else None."""
    if exc.get_error_code() not in _SPEC_ERROR_CODES:
        return None
    return InvalidRuntimeSpec(
        f"libvirt rejected the configuration of domain {subject!r} at {operation}: "
        f"{error_message(exc)}"
    )


def define_error(name: str, exc: libvirt.libvirtError) -> RuntimeFailure:
    return spec_error("define", name, exc) or api_error("define", exc)


async def run_disk_job(subject: str, job: Callable[[], T], *, timeout: float) -> T:  # noqa: ASYNC109
    """Run a blocking file job on a thread with a deadline, translating its failures.

    A missing image becomes ImageNotFound, an unusable image or a loadout the seed cannot
    express InvalidRuntimeSpec, a deadline RuntimeTimeout and any other OS failure (a full
    disk, say) RuntimeAPIError, which the controller retries.
    """
    try:
        return await asyncio.wait_for(asyncio.to_thread(job), timeout)
    except (TimeoutError, subprocess.TimeoutExpired) as exc:
        raise RuntimeTimeout(f"preparing {subject} timed out after {timeout:g} s") from exc
    except ImageMissing as exc:
        raise ImageNotFound(
            f"{exc}; build or copy the image there and the create is retried"
        ) from exc
    except ImageError as exc:
        raise InvalidRuntimeSpec(str(exc)) from exc
    except ValueError as exc:
        raise InvalidRuntimeSpec(f"{subject}: {exc}") from exc
    except OSError as exc:
        raise RuntimeAPIError(f"preparing {subject} failed: {exc}") from exc
