"""Manifest loading: documents, files, suffixes, size and encoding limits."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from agentic_sandbox.crds import documents
from agentic_sandbox.crds.instance import Instance
from agentic_sandbox.crds.manifest import load_json_manifests, load_manifest_file, load_manifests
from agentic_sandbox.errors import InvalidResource, ManifestError
from tests.crds.support import instance_dict, instance_yaml


def load_error(text: str) -> ManifestError:
    with pytest.raises(ManifestError) as caught:
        load_manifests(text, source="web.yaml")
    return caught.value


def test_single_document() -> None:
    (document,) = load_manifests(instance_yaml(), source="web.yaml")
    assert document.source == "web.yaml"
    assert document.index == 0
    assert document.line == 1
    assert isinstance(document.resource, Instance)
    assert document.resource.key == "default/web"
    assert document.resource.spec.image == "alpine:3"


def test_env_values_keep_written_text() -> None:
    env = "  env:\n    A: no\n    B: on\n    C: 0755\n    D: 1:30\n    E: 1.10\n    F: 0x1F\n"
    (document,) = load_manifests(instance_yaml("  image: x\n" + env), source="web.yaml")
    assert isinstance(document.resource, Instance)
    assert document.resource.spec.env == {
        "A": "no",
        "B": "on",
        "C": "0755",
        "D": "1:30",
        "E": "1.10",
        "F": "0x1F",
    }


@pytest.mark.parametrize("written", ["", "~", "null"])
def test_env_null_rejected_with_hint(written: str) -> None:
    error = load_error(instance_yaml(f"  image: x\n  env:\n    EMPTY: {written}\n"))
    assert error.line == 8
    assert error.errors[0].path == "spec.env.EMPTY"
    assert 'write "" for an empty string' in str(error)


@pytest.mark.parametrize("value", ["{a: 1}", "[a, b]"])
def test_env_collection_rejected(value: str) -> None:
    error = load_error(instance_yaml(f"  image: x\n  env:\n    A: {value}\n"))
    assert error.errors[0].path == "spec.env.A"
    assert "is not a string" in error.errors[0].message


def test_multiple_documents_skip_empty_ones() -> None:
    text = (
        "# instances\n---\n"
        + instance_yaml(name="one")
        + "---\n# nothing here\n---\n---\n"
        + instance_yaml(name="two")
    )
    docs = load_manifests(text, source="all.yaml")
    assert [document.index for document in docs] == [0, 3]
    assert [document.resource.metadata.name for document in docs] == ["one", "two"]
    assert docs[1].line == 13


def test_empty_text_has_no_documents() -> None:
    assert load_manifests("", source="empty.yaml") == []
    assert load_manifests("# just a comment\n", source="empty.yaml") == []


def test_first_invalid_document_reported() -> None:
    text = instance_yaml(name="one") + "---\n" + instance_yaml("  runtime: dockr\n  image: x\n")
    error = load_error(text)
    assert error.file == "web.yaml"
    assert error.line == 13
    assert str(error) == (
        "web.yaml:13: document 2: spec.runtime: 'dockr' is invalid; expected 'docker' or 'libvirt'"
    )


def test_all_field_errors_of_document_reported() -> None:
    error = load_error(instance_yaml("  runtime: dockr\n  imagee: x\n  network: 'a b'\n"))
    assert [field.path for field in error.errors] == [
        "spec.runtime",
        "spec.network",
        "spec.imagee",
    ]
    assert [field.line for field in error.errors] == [6, 8, 7]
    assert error.line == 6


def test_document_not_a_mapping_rejected() -> None:
    error = load_error(instance_yaml() + "---\n- a\n- b\n")
    assert error.line == 8
    assert "document 2: expected a mapping" in str(error)


def test_same_object_twice_rejected() -> None:
    error = load_error(instance_yaml() + "---\n" + instance_yaml())
    assert error.line == 8
    assert "document 2: Instance default/web is already defined by document 1 at line 1" in str(
        error
    )


def test_manifest_error_is_invalid_resource() -> None:
    with pytest.raises(InvalidResource):
        load_manifests("a: [", source="web.yaml")


def test_text_size_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(documents, "MAX_MANIFEST_BYTES", 100)
    assert "larger than the limit" in str(load_error(instance_yaml() + "#" * 100))


def test_yaml_file(tmp_path: Path) -> None:
    path = tmp_path / "web.yml"
    path.write_text(instance_yaml())
    (document,) = load_manifest_file(path)
    assert document.source == str(path)
    assert document.resource.metadata.name == "web"


def test_json_file(tmp_path: Path) -> None:
    path = tmp_path / "web.json"
    path.write_text(json.dumps(instance_dict(env={"A": "no"}), indent=2))
    (document,) = load_manifest_file(path)
    assert isinstance(document.resource, Instance)
    assert document.resource.spec.env == {"A": "no"}


def test_json_file_reports_field_line(tmp_path: Path) -> None:
    path = tmp_path / "web.json"
    path.write_text(json.dumps(instance_dict(env={"PORT": 8080}), indent=2))
    with pytest.raises(ManifestError) as caught:
        load_manifest_file(path)
    assert caught.value.line == 10
    assert caught.value.errors[0].path == "spec.env.PORT"
    assert '8080 is not a string; quote it: "8080"' in str(caught.value)


def test_json_array_of_documents() -> None:
    text = json.dumps([instance_dict(), {**instance_dict(), "metadata": {"name": "two"}}])
    docs = load_json_manifests(text, source="<api>")
    assert [document.resource.metadata.name for document in docs] == ["web", "two"]


def test_file_suffix_rejected(tmp_path: Path) -> None:
    path = tmp_path / "web.txt"
    path.write_text(instance_yaml())
    with pytest.raises(ManifestError, match="is not a manifest"):
        load_manifest_file(path)


def test_file_suffix_case_ignored(tmp_path: Path) -> None:
    path = tmp_path / "web.YAML"
    path.write_text(instance_yaml())
    assert len(load_manifest_file(path)) == 1


def test_file_size_limit(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(documents, "MAX_MANIFEST_BYTES", 100)
    path = tmp_path / "web.yaml"
    path.write_text(instance_yaml() + "#" * 100)
    with pytest.raises(ManifestError, match="larger than the limit"):
        load_manifest_file(path)


def test_file_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "web.yaml"
    path.write_bytes(instance_yaml().encode() + b"# caf\xe9\n")
    with pytest.raises(ManifestError) as caught:
        load_manifest_file(path)
    assert caught.value.line == 7
    assert "is not valid UTF-8: byte" in str(caught.value)
    assert "0xe9" in str(caught.value)


def test_file_byte_order_mark_ignored(tmp_path: Path) -> None:
    for name in ("web.yaml", "web.json"):
        path = tmp_path / name
        text = instance_yaml() if name.endswith("yaml") else json.dumps(instance_dict())
        path.write_bytes(b"\xef\xbb\xbf" + text.encode())
        assert len(load_manifest_file(path)) == 1


def test_missing_file_raises_os_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        load_manifest_file(tmp_path / "gone.yaml")
