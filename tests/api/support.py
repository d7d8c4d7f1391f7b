"""Helpers shared by the API tests."""

from __future__ import annotations

from typing import Any

import httpx

from agentic_sandbox.crds.meta import API_VERSION

TOKEN = "test-token-0123456789"
BASE_URL = "http://testserver"


def manifest(name: str = "web", **spec: Any) -> dict[str, Any]:
    """A minimal valid Instance manifest; keyword arguments override spec fields."""
    return {
        "apiVersion": API_VERSION,
        "kind": "Instance",
        "metadata": {"name": name, "labels": {"app": name}},
        "spec": {"image": "agentic/demo:dev", **spec},
    }


def assert_problem(response: httpx.Response, status: int) -> dict[str, Any]:
    """Check the RFC 7807 shape of an error response and return its body."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    assert set(body) == {"type", "code", "title", "status", "detail", "errors"}
    assert body["status"] == status
    assert isinstance(body["code"], str) and body["code"]
    assert isinstance(body["detail"], str) and body["detail"]
    assert isinstance(body["errors"], list)
    return dict(body)
