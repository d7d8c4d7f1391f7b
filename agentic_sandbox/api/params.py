"""Query parameters: parsing and checking, with 400 problem documents naming the parameter."""

from __future__ import annotations

from starlette.requests import Request

from agentic_sandbox.api.problems import ApiProblem
from agentic_sandbox.crds.meta import check_dns1123_label, check_label_key
from agentic_sandbox.errors import FieldError

DEFAULT_NAMESPACE = "default"


def bad_parameter(name: str, value: object, message: str) -> ApiProblem:
    return ApiProblem(
        400,
        f"query parameter {name}={value!r} is invalid: {message}",
        kind="InvalidParameter",
        errors=[FieldError(path=name, message=message, value=value)],
    )


def _checked_namespace(value: str) -> str:
    try:
        return check_dns1123_label(value, "namespace")
    except ValueError as exc:
        raise bad_parameter("namespace", value, str(exc)) from None


def query_namespace(request: Request) -> str:
    """Return the ``namespace`` parameter of a request about one object; ``default`` if absent."""
    return _checked_namespace(request.query_params.get("namespace") or DEFAULT_NAMESPACE)


def query_namespace_filter(request: Request) -> str | None:
    """Return the ``namespace`` parameter of a list request; None (every namespace) if absent."""
    value = request.query_params.get("namespace")
    return _checked_namespace(value) if value else None


def query_int(
    request: Request, name: str, *, default: int | None, minimum: int, maximum: int | None = None
) -> int | None:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise bad_parameter(name, raw, "expected a whole number") from None
    if value < minimum or (maximum is not None and value > maximum):
        accepted = f"at least {minimum}" if maximum is None else f"{minimum} to {maximum}"
        raise bad_parameter(name, raw, f"expected {accepted}")
    return value


def query_bool(request: Request, name: str, *, default: bool = False) -> bool:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return default
    value = raw.strip().lower()
    if value in ("true", "1", "yes"):
        return True
    if value in ("false", "0", "no"):
        return False
    raise bad_parameter(name, raw, "expected true or false")


def parse_label_selector(selector: str) -> dict[str, str]:
    """Parse an equality selector ``k=v,k2=v2`` (``==`` also accepted) into a mapping.

    Raises ValueError naming the term that is not of that form.
    """
    labels: dict[str, str] = {}
    for term in selector.split(","):
        term = term.strip()
        if not term:
            continue
        key, operator, value = term.partition("==")
        if not operator:
            key, operator, value = term.partition("=")
        key, value = key.strip(), value.strip()
        if not operator or not key or "!" in key or "=" in value:
            raise ValueError(
                f"term {term!r} is not of the form key=value; only equality terms such as "
                "'app=web,tier=agents' are supported"
            )
        check_label_key(key)
        labels[key] = value
    return labels


def query_label_selector(request: Request) -> dict[str, str] | None:
    raw = request.query_params.get("labelSelector")
    if not raw:
        return None
    try:
        return parse_label_selector(raw) or None
    except ValueError as exc:
        raise bad_parameter("labelSelector", raw, str(exc)) from None
