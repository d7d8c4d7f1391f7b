"""The GitSource kind: interval, ref, URL and path validation, and its generated schema files."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from agentic_sandbox.crds import schema
from agentic_sandbox.crds.gitsource import GitRef, check_url, parse_interval, redact_url
from agentic_sandbox.crds.validation import validate_resource
from agentic_sandbox.errors import InvalidResource

REPOSITORY_CRDS = Path(__file__).resolve().parents[2] / "crds"


@pytest.mark.parametrize(
    ("written", "seconds"),
    [(30, 30), ("45", 45), ("90s", 90), ("5m", 300), ("1h30m", 5400), ("24h", 86400)],
)
def test_interval_forms(written: int | str, seconds: int) -> None:
    assert parse_interval(written) == seconds


@pytest.mark.parametrize("written", [0, "0s", "25h", "2d", "5 m", "", "m", True])
def test_interval_rejected(written: Any) -> None:
    with pytest.raises(ValueError, match="interval"):
        parse_interval(written)


def test_ref_exactly_one() -> None:
    assert GitRef(tag="v1.2").describe() == "tag v1.2"
    with pytest.raises(ValueError, match="exactly one"):
        GitRef()
    with pytest.raises(ValueError, match="exactly one"):
        GitRef(branch="main", commit="a" * 40)


@pytest.mark.parametrize("name", ["-upload-pack=x", "a..b", "a b", "topic.lock", "x@{1}"])
def test_ref_name_rejected(name: str) -> None:
    with pytest.raises(ValueError, match="not a valid git ref name"):
        GitRef(branch=name)


@pytest.mark.parametrize(
    "url",
    [
        "https://example.invalid/r.git",
        "ssh://git@example.invalid/r.git",
        "git@example.invalid:team/r.git",
        "file:///srv/r.git",
        "/srv/r.git",
    ],
)
def test_url_accepted(url: str) -> None:
    assert check_url(url) == url


@pytest.mark.parametrize(
    "url", ["ext::sh -c x", "-oProxyCommand=x", "ftp://example.invalid/r", "r.git", ""]
)
def test_url_rejected(url: str) -> None:
    with pytest.raises(ValueError, match="url"):
        check_url(url)


def test_manifest_defaults() -> None:
    source = validate_resource(
        {
            "apiVersion": "sandbox.agentic.dev/v1alpha1",
            "kind": "GitSource",
            "metadata": {"name": "fleet"},
            "spec": {"url": "/srv/r.git", "path": "./apps/"},
        }
    )
    assert source.spec.path == "apps"
    assert source.spec.ref.branch == "main"
    assert source.spec.interval_seconds == 300
    assert source.spec.prune is True
    assert source.spec.allow_empty is False


def test_unknown_field_rejected() -> None:
    with pytest.raises(InvalidResource):
        validate_resource(
            {
                "apiVersion": "sandbox.agentic.dev/v1alpha1",
                "kind": "GitSource",
                "metadata": {"name": "fleet"},
                "spec": {"url": "/srv/r.git", "branch": "main"},
            }
        )


def test_repository_files_current(tmp_path: Path) -> None:
    # Regenerate with: python -m agentic_sandbox.crds.schema crds
    schema.write_schemas(tmp_path)
    for name in (schema.GITSOURCE_JSON_SCHEMA_FILE, schema.GITSOURCE_CRD_FILE):
        written = (REPOSITORY_CRDS / name).read_text(encoding="utf-8")
        assert written == (tmp_path / name).read_text(encoding="utf-8"), name


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("https://user:s3cret@127.0.0.1/repo.git", "https://***@127.0.0.1/repo.git"),
        ("https://127.0.0.1/repo.git", "https://127.0.0.1/repo.git"),
        ("/srv/git/repo.git", "/srv/git/repo.git"),
    ],
)
def test_redact_url_hides_credentials(url: str, shown: str) -> None:
    assert redact_url(url) == shown
