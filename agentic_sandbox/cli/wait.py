"""``sandboxctl wait --for=CONDITION NAME...``: block until instances reach a state, or time out.

Accepted ``--for`` forms:

    condition=Ready            the condition's status is True
    condition=Ready=False      the condition's status is the given value
    phase=Running              status.phase is the given phase; kubectl's form
                               jsonpath={.status.phase}=Running is accepted too
    delete                     the instance no longer exists

A condition counts only when it was computed for the current spec: a condition whose
``observedGeneration`` is older than ``metadata.generation`` is stale, so a wait started right
after an apply does not succeed on the old spec's status. The command polls the API until every
instance meets the condition or ``--timeout`` passes. Exit code 0 when all are met, 1 on a
timeout (naming what each unmet instance shows) or any other error.
"""

from __future__ import annotations

import argparse
import re
import time
from dataclasses import dataclass
from typing import Any

from agentic_sandbox.cli.client import ApiClient, ApiError, CliError

DEFAULT_TIMEOUT_SECONDS = 30.0
# Seconds between two reads of an instance that has not met the condition yet.
POLL_INTERVAL_SECONDS = 0.5
# The one JSONPath that --for accepts, as kubectl writes it.
PHASE_JSONPATH = "{.status.phase}"
_DURATION = re.compile(r"^(\d+(?:\.\d+)?)(ms|s|m|h)?$")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}


@dataclass(frozen=True)
class WaitFor:
    """The state that ``--for`` requests: ``kind`` is condition, phase or delete."""

    kind: str
    name: str = ""
    value: str = ""

    def describe(self) -> str:
        if self.kind == "delete":
            return "deletion"
        if self.kind == "phase":
            return f"phase {self.value}"
        return f"condition {self.name}={self.value}"


def parse_duration(text: str) -> float:
    """Parse ``60s``, ``5m``, ``1h``, ``500ms`` or a bare number of seconds."""
    match = _DURATION.match(text.strip())
    if match is None:
        raise argparse.ArgumentTypeError(
            f"duration {text!r} is invalid; write a number with an optional unit, such as 60s, "
            "5m or 1h"
        )
    return float(match.group(1)) * _UNIT_SECONDS[match.group(2) or "s"]


def parse_wait_for(text: str) -> WaitFor:
    if text == "delete":
        return WaitFor("delete")
    key, _, rest = text.partition("=")
    if key == "condition" and rest:
        name, _, value = rest.partition("=")
        return WaitFor("condition", name, value or "True")
    if key == "phase" and rest:
        return WaitFor("phase", value=rest)
    path, _, value = rest.partition("=")
    if key == "jsonpath" and path == PHASE_JSONPATH and value:
        return WaitFor("phase", value=value)
    raise argparse.ArgumentTypeError(
        f"--for {text!r} is invalid; use condition=NAME[=VALUE], phase=PHASE "
        f"(or jsonpath={PHASE_JSONPATH}=PHASE) or delete"
    )


def add_wait_command(
    subparsers: argparse._SubParsersAction[argparse.ArgumentParser],
    parent: argparse.ArgumentParser,
) -> None:
    wait = subparsers.add_parser(
        "wait",
        parents=[parent],
        help="wait until instances meet a condition, reach a phase or are deleted",
        description="Wait until every named instance meets the condition. Exit code 0 when "
        "all do, 1 on a timeout or an error.",
        epilog="examples:\n  sandboxctl wait --for=condition=Ready --timeout=60s web\n"
        "  sandboxctl wait --for=phase=Stopped web\n  sandboxctl wait --for=delete web",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    wait.add_argument("names", nargs="+", metavar="NAME", help="instance names")
    wait.add_argument(
        "--for",
        dest="wait_for",
        metavar="CONDITION",
        required=True,
        type=parse_wait_for,
        help="condition=NAME[=VALUE] (VALUE defaults to True), phase=PHASE or delete",
    )
    wait.add_argument(
        "--timeout",
        metavar="DURATION",
        type=parse_duration,
        default=DEFAULT_TIMEOUT_SECONDS,
        help="how long to wait in total, such as 60s, 5m or 1h "
        f"(default {DEFAULT_TIMEOUT_SECONDS:g}s)",
    )
    wait.add_argument("-n", "--namespace", default="default", help="namespace (default: default)")
    wait.set_defaults(command="wait")


def _condition(instance: dict[str, Any], name: str) -> dict[str, Any] | None:
    for condition in (instance.get("status") or {}).get("conditions") or []:
        if isinstance(condition, dict) and condition.get("type") == name:
            return condition
    return None


def check(instance: dict[str, Any], wait_for: WaitFor) -> tuple[bool, str]:
    """Return whether ``instance`` meets ``wait_for``, and what it shows instead when not."""
    status = instance.get("status") or {}
    if wait_for.kind == "phase":
        phase = status.get("phase") or "Unknown"
        return phase == wait_for.value, f"phase is {phase}"
    if wait_for.kind == "delete":
        return False, "it still exists"

    condition = _condition(instance, wait_for.name)
    if condition is None:
        return False, f"condition {wait_for.name} is not reported yet"
    generation = (instance.get("metadata") or {}).get("generation")
    observed = condition.get("observedGeneration")
    if generation is not None and observed is not None and observed < generation:
        return False, f"condition {wait_for.name} is for generation {observed}, not {generation}"
    value = str(condition.get("status"))
    actual = f"condition {wait_for.name} is {value}"
    if condition.get("reason"):
        actual += f" (reason {condition['reason']}: {condition.get('message', '')})"
    return value.lower() == wait_for.value.lower(), actual


def _read(client: ApiClient, namespace: str, name: str) -> dict[str, Any] | None:
    try:
        return client.get_instance(namespace, name)
    except ApiError as error:
        if error.status == 404:
            return None
        raise


def wait_one(
    client: ApiClient,
    *,
    namespace: str,
    name: str,
    wait_for: WaitFor,
    deadline: float,
    timeout: float,
) -> None:
    """Poll one instance until it meets ``wait_for``; raise CliError at ``deadline``.

    ``timeout`` is the whole wait in seconds, for the message.
    """
    while True:
        instance = _read(client, namespace, name)
        if instance is None:
            if wait_for.kind == "delete":
                return
            raise CliError(f"instance/{name}: not found in namespace {namespace}")
        met, actual = check(instance, wait_for)
        if met:
            return
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise CliError(
                f"timed out after {timeout:g}s waiting for {wait_for.describe()} of "
                f"instance/{name}: {actual}"
            )
        time.sleep(min(POLL_INTERVAL_SECONDS, remaining))


def _instance_name(written: str) -> str:
    """Accept kubectl's ``instance/NAME`` form besides a plain name."""
    kind, slash, name = written.partition("/")
    if slash and kind in ("instance", "instances", "inst"):
        return name
    return written


def run_wait(args: argparse.Namespace, client: ApiClient) -> int:
    deadline = time.monotonic() + args.timeout
    wait_for: WaitFor = args.wait_for
    for written in args.names:
        name = _instance_name(written)
        wait_one(
            client,
            namespace=args.namespace,
            name=name,
            wait_for=wait_for,
            deadline=deadline,
            timeout=args.timeout,
        )
        met = "deleted" if wait_for.kind == "delete" else f"{wait_for.describe()} met"
        print(f"instance/{name} {met}")
    return 0
