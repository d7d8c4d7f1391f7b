"""Shared parts of the routes compatible with the incumbent agentic-sandbox management server.

``/api/v1/containers`` and ``/api/v1/vms`` are views over Instances: reads render stored
Instances in the incumbent's shapes, and writes go through the same functions as the resource
API (``store.create``, ``store.delete`` and ``controller.verbs.request_verb``). Nothing here
calls a runtime, so the controller carries out every change. A name with no Instance of the
route's runtime is 404, which keeps containers and VMs that the controller did not create out
of reach.

Bodies use the incumbent's snake_case field names, and validation errors name those fields
(``env[1]``, ``mounts[0]``), with the Instance field in the message.
"""

from __future__ import annotations

import dataclasses
import difflib
from collections.abc import Collection, Mapping, Sequence
from typing import Any

from starlette.requests import Request

from agentic_sandbox.api.instances import API_SOURCE, KIND, check_api_may_write
from agentic_sandbox.api.problems import ApiProblem
from agentic_sandbox.controller.recorder import EventRecorder
from agentic_sandbox.controller.verbs import Verb, request_verb
from agentic_sandbox.crds.instance import Instance
from agentic_sandbox.crds.meta import API_VERSION, SOURCE_ANNOTATION
from agentic_sandbox.crds.validation import describe, summarize, validate_resource
from agentic_sandbox.errors import AlreadyExists, FieldError, InvalidResource, NotFound
from agentic_sandbox.store.base import Store

# A translation from an Instance field path prefix (``spec.env.FOO``) to the body field that
# supplied it (``env[1]``).
PathMap = Sequence[tuple[str, str]]


@dataclasses.dataclass
class CreateRequest:
    """A create body translated to Instance parts, with the problems found in the body."""

    name: str
    labels: Any
    spec: dict[str, Any]
    paths: list[tuple[str, str]] = dataclasses.field(default_factory=list)
    errors: list[FieldError] = dataclasses.field(default_factory=list)


def invalid_body(errors: Sequence[FieldError]) -> ApiProblem:
    return ApiProblem(422, summarize(list(errors)), kind="Invalid", errors=errors)


def check_known_fields(body: Mapping[str, Any], known: Collection[str]) -> list[FieldError]:
    """Return an error for each body field outside ``known``, with a hint for a near miss."""
    errors = []
    for field in body:
        if field in known:
            continue
        message = f"unknown field; accepted fields are {', '.join(sorted(known))}"
        close = difflib.get_close_matches(field, known, n=1)
        if close:
            message = f"unknown field; did you mean {close[0]!r}?"
        errors.append(FieldError(path=field, message=message, value=field))
    return errors


def required_string(body: Mapping[str, Any], field: str, errors: list[FieldError]) -> str | None:
    value = body.get(field)
    if isinstance(value, str) and value:
        return value
    message = (
        "missing required field" if value is None else f"expected a string, got {describe(value)}"
    )
    errors.append(FieldError(path=field, message=message, value=value))
    return None


def optional_string(body: Mapping[str, Any], field: str, errors: list[FieldError]) -> str | None:
    value = body.get(field)
    if value is None or isinstance(value, str):
        return value
    errors.append(
        FieldError(path=field, message=f"expected a string, got {describe(value)}", value=value)
    )
    return None


def value_or(body: Mapping[str, Any], key: str, default: Any) -> Any:
    """Return the body's value for ``key``, or ``default`` when it is missing or null."""
    value = body.get(key)
    return default if value is None else value


def body_path(internal: str, paths: PathMap) -> str:
    """Translate an Instance field path to the body field it came from, by longest prefix."""
    best: tuple[str, str] | None = None
    for prefix, field in paths:
        matches = internal == prefix or internal.startswith((prefix + ".", prefix + "["))
        if matches and (best is None or len(prefix) > len(best[0])):
            best = (prefix, field)
    if best is None:
        return ""
    return best[1] + internal[len(best[0]) :]


def translate_invalid(error: InvalidResource, paths: PathMap) -> list[FieldError]:
    """Rename the field errors of an Instance validation to the body fields they came from."""
    errors = []
    for field_error in error.errors:
        field = body_path(field_error.path, paths)
        message = field_error.message
        if field_error.path and field != field_error.path:
            message = f"{message} (Instance field {field_error.path})"
        errors.append(FieldError(field, message, field_error.value))
    return errors


def _merge_errors(
    body_errors: Sequence[FieldError], instance_errors: Sequence[FieldError]
) -> list[FieldError]:
    """Join both lists, leaving out Instance errors about a field the body check already named.

    An Instance error with no body field (such as two mounts on one path) is left out too when
    the body has errors, because a field the body check removed can cause it.
    """
    named = {error.path for error in body_errors}
    extra = [
        error
        for error in instance_errors
        if error.path not in named and (error.path or not body_errors)
    ]
    return [*body_errors, *extra]


async def create_instance(
    store: Store, request: CreateRequest, *, namespace: str, noun: str
) -> Instance:
    """Validate and create an Instance written by the API, as ``POST /api/v1/instances`` does.

    The problems already found in the body are reported together with the Instance's own
    validation errors. Raises ApiProblem 422 naming the body fields, or 409 when the name is
    taken.
    """
    name = request.name
    manifest = {
        "apiVersion": API_VERSION,
        "kind": KIND,
        "metadata": {"name": name, "namespace": namespace, "labels": request.labels},
        "spec": request.spec,
    }
    try:
        resource = validate_resource(manifest)
    except InvalidResource as error:
        paths = [("metadata.name", "name"), *request.paths]
        instance_errors = translate_invalid(error, paths)
        raise invalid_body(_merge_errors(request.errors, instance_errors)) from None
    if request.errors:
        raise invalid_body(request.errors)
    resource.metadata.annotations[SOURCE_ANNOTATION] = API_SOURCE
    try:
        created = await store.create(resource)
    except AlreadyExists:
        raise ApiProblem(
            409,
            f"{noun} {name!r} already exists in namespace {namespace!r}; delete it first or "
            "choose another name",
            kind="AlreadyExists",
        ) from None
    assert isinstance(created, Instance)
    return created


async def find_instance(
    store: Store, *, namespace: str, name: str, runtime: str, noun: str
) -> Instance:
    """Return the Instance behind a container or VM name; 404 unless it runs on ``runtime``."""
    try:
        found = await store.get(KIND, namespace, name)
    except NotFound:
        found = None
    if not isinstance(found, Instance) or found.spec.runtime != runtime:
        raise ApiProblem(
            404,
            f"{noun} {name!r} not found in namespace {namespace!r}; these routes serve only "
            f"{noun}s that this controller manages as Instances with runtime {runtime!r}",
            kind="NotFound",
        )
    return found


async def request_lifecycle(
    store: Store,
    recorder: EventRecorder,
    *,
    namespace: str,
    name: str,
    runtime: str,
    noun: str,
    verb: Verb,
    grace_seconds: int | None = None,
) -> Instance:
    """Record a start or stop verb on a managed Instance, as the instance verb routes do."""
    await find_instance(store, namespace=namespace, name=name, runtime=runtime, noun=noun)
    return await request_verb(
        store,
        recorder,
        namespace=namespace,
        name=name,
        verb=verb,
        grace_seconds=grace_seconds,
        requested_by="api",
    )


async def delete_instance(
    store: Store, request: Request, *, namespace: str, name: str, runtime: str, noun: str
) -> Instance | None:
    """Delete a managed Instance; return it marked for deletion, or None once it is gone.

    The runtime finalizer keeps the record until the controller has removed the container or
    VM. A file-owned Instance is 409, as on the resource API.
    """
    await find_instance(store, namespace=namespace, name=name, runtime=runtime, noun=noun)
    await check_api_may_write(store, request, namespace=namespace, name=name, deleting=True)
    try:
        marked = await store.delete(KIND, namespace, name)
    except NotFound:
        return None
    assert marked is None or isinstance(marked, Instance)
    return marked
