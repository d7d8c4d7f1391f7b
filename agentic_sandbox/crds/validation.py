"""Validation of user-supplied resources: plain dicts in, typed resources or field errors out.

Every problem becomes an ``errors.FieldError`` whose path uses the wire (camelCase) names, such as
``spec.mounts[0].hostPath``, whose message quotes the bad value and states what is accepted, and
whose line comes from the manifest when one is known. All problems of a resource are reported
together, not only the first.

Fields are matched by their wire names only: ``host_path`` in a manifest is an unknown field,
reported with a hint to write ``hostPath``.

Like Kubernetes on create and apply, user input may carry ``status`` and the server-set metadata
fields ``uid``, ``generation``, ``creationTimestamp`` and ``deletionTimestamp`` (for example in
the output of ``sandboxctl get -o yaml`` saved as a manifest). They are dropped before validation
and never reach the store. ``metadata.resourceVersion`` is kept, because it is the precondition of
an update: the store rejects the write with a conflict when it is stale.
"""

from __future__ import annotations

import difflib
import json
from collections.abc import Mapping
from typing import Any, Union, get_args, get_origin

from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from agentic_sandbox.crds.documents import FieldPath, format_path, line_of
from agentic_sandbox.crds.meta import API_VERSION, Resource
from agentic_sandbox.crds.registry import KINDS
from agentic_sandbox.errors import FieldError, InvalidResource, ManifestError

# Metadata fields that only the store sets; user input carrying them is not an error.
SERVER_SET_METADATA = ("uid", "generation", "creationTimestamp", "deletionTimestamp")
# How many field errors the one-line summary message spells out.
_SUMMARY_ERRORS = 3


def validate_resource(
    data: object,
    *,
    source: str | None = None,
    lines: Mapping[FieldPath, int] | None = None,
) -> Resource:
    """Validate a plain dict (from YAML, JSON or an API body) into a typed resource.

    Raises InvalidResource listing every invalid field, or ManifestError (a subclass naming
    ``source`` as the file and the first error's line) when ``source`` is given.
    """
    lines = lines or {}
    if not isinstance(data, dict):
        error = FieldError(
            path="", message=f"expected a mapping, got {describe(data)}", value=data, line=None
        )
        raise _invalid([error], source=source)

    errors = _check_api_version(data, lines)
    resource_class = _resource_class(data, lines, errors)
    resource: Resource | None = None
    if resource_class is not None:
        try:
            resource = resource_class.model_validate(
                _without_server_fields(data), by_alias=True, by_name=False
            )
        except ValidationError as error:
            errors.extend(
                _field_error(details, resource_class, lines)
                for details in error.errors(include_url=False)
            )
    if errors or resource is None:
        raise _invalid(errors, source=source)
    return resource


def summarize(errors: list[FieldError]) -> str:
    """Render field errors as one line: the first few in full, then a count of the rest."""
    summary = "; ".join(error.render() for error in errors[:_SUMMARY_ERRORS])
    hidden = len(errors) - _SUMMARY_ERRORS
    if hidden > 0:
        summary += f" (and {hidden} more error{'s' if hidden > 1 else ''})"
    return summary


def describe(value: object) -> str:
    """Show a bad value in a message: scalars as written, collections by their kind."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return repr(value if len(value) <= 60 else value[:57] + "...")
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    return f"a value of type {type(value).__name__}"


def _invalid(errors: list[FieldError], *, source: str | None) -> InvalidResource:
    message = summarize(errors)
    if source is None:
        return InvalidResource(message, errors)
    line = next((error.line for error in errors if error.line is not None), None)
    return ManifestError(message, file=source, line=line, errors=errors)


def _check_api_version(data: dict[Any, Any], lines: Mapping[FieldPath, int]) -> list[FieldError]:
    value = data.get("apiVersion")
    if value == API_VERSION:
        return []
    if value is None:
        message = f"missing required field; set apiVersion: {API_VERSION}"
    else:
        message = f"{describe(value)} is not served here; expected '{API_VERSION}'"
    return [FieldError("apiVersion", message, value, lines.get(("apiVersion",)))]


def _resource_class(
    data: dict[Any, Any], lines: Mapping[FieldPath, int], errors: list[FieldError]
) -> type[Resource] | None:
    kind = data.get("kind")
    if isinstance(kind, str) and kind in KINDS:
        return KINDS[kind]
    expected = " or ".join(repr(name) for name in sorted(KINDS))
    if kind is None:
        message = f"missing required field; expected {expected}"
    else:
        message = f"{describe(kind)} is not a kind served here; expected {expected}"
    errors.append(FieldError("kind", message, kind, lines.get(("kind",))))
    return None


def _without_server_fields(data: dict[Any, Any]) -> dict[Any, Any]:
    """Return a copy of ``data`` without status and server-set metadata. The input is kept."""
    cleaned = {key: value for key, value in data.items() if key != "status"}
    metadata = cleaned.get("metadata")
    if isinstance(metadata, dict):
        cleaned["metadata"] = {
            key: value for key, value in metadata.items() if key not in SERVER_SET_METADATA
        }
    return cleaned


def _field_error(
    details: ErrorDetails, model: type[BaseModel], lines: Mapping[FieldPath, int]
) -> FieldError:
    # Pydantic marks an invalid dict key with a trailing "[key]"; the path of the key is enough.
    path: FieldPath = tuple(part for part in details["loc"] if part != "[key]")
    value = None if details["type"] == "missing" else details.get("input")
    return FieldError(
        path=format_path(path),
        message=_message(details, path, model),
        value=value,
        line=line_of(lines, path),
    )


def _message(details: ErrorDetails, path: FieldPath, model: type[BaseModel]) -> str:
    kind = details["type"]
    value = details.get("input")
    context = details.get("ctx") or {}
    value_text = describe(value)
    if kind == "missing":
        return "missing required field"
    if kind == "extra_forbidden":
        return _unknown_field_message(path, model)
    if kind in ("value_error", "assertion_error") and "error" in context:
        return str(context["error"])
    if kind in ("literal_error", "enum"):
        return f"{value_text} is invalid; expected {context['expected']}"
    if kind == "string_type":
        return _not_a_string_message(value)
    if kind in ("int_type", "int_parsing", "int_from_float"):
        return f"{value_text} is not an integer"
    if kind in ("float_type", "float_parsing"):
        return f"{value_text} is not a number"
    if kind in ("bool_type", "bool_parsing"):
        return f"{value_text} is not a boolean; write true or false"
    if kind == "list_type":
        return f"expected a list, got {value_text}"
    if kind in ("dict_type", "model_type", "model_attributes_type"):
        return f"expected a mapping, got {value_text}"
    if kind in ("greater_than_equal", "greater_than"):
        return f"{value_text} is too small; the minimum is {context.get('ge', context.get('gt'))}"
    if kind in ("less_than_equal", "less_than"):
        return f"{value_text} is too large; the maximum is {context.get('le', context.get('lt'))}"
    return f"{value_text} is invalid: {details['msg']}"


def _not_a_string_message(value: object) -> str:
    if value is None:
        return 'null is not a string; write "" for an empty string'
    if isinstance(value, bool | int | float):
        return f"{describe(value)} is not a string; quote it: {json.dumps(json.dumps(value))}"
    return f"{describe(value)} is not a string"


def _unknown_field_message(path: FieldPath, model: type[BaseModel]) -> str:
    name = str(path[-1])
    message = f"unknown field {name!r}"
    known = _field_names_at(model, path[:-1])
    suggestion = _closest(name, known)
    if suggestion is not None:
        return f"{message}; did you mean {suggestion!r}?"
    if known:
        return f"{message}; known fields are {', '.join(known)}"
    return message


def _closest(name: str, known: list[str]) -> str | None:
    folded = name.replace("_", "").replace("-", "").lower()
    for candidate in known:
        if candidate.lower() == folded:
            return candidate
    matches = difflib.get_close_matches(name, known, n=1, cutoff=0.6)
    return matches[0] if matches else None


def _field_names_at(model: type[BaseModel], path: FieldPath) -> list[str]:
    """List the wire names of the fields of the model found at ``path`` below ``model``."""
    annotation: Any = model
    for part in path:
        annotation = _without_none(annotation)
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            field = _field_by_wire_name(annotation, str(part))
            if field is None:
                return []
            annotation = field
        elif get_origin(annotation) in (list, dict):
            annotation = get_args(annotation)[-1]
        else:
            return []
    annotation = _without_none(annotation)
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [info.alias or name for name, info in annotation.model_fields.items()]
    return []


def _field_by_wire_name(model: type[BaseModel], wire_name: str) -> Any:
    for name, info in model.model_fields.items():
        if (info.alias or name) == wire_name:
            return info.annotation
    return None


def _without_none(annotation: Any) -> Any:
    """Turn ``X | None`` into ``X``; leave every other annotation as it is."""
    if get_origin(annotation) in (Union, type(int | None)):
        members = [member for member in get_args(annotation) if member is not type(None)]
        if len(members) == 1:
            return members[0]
    return annotation
