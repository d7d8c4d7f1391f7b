"""Schema export: the generated files are current, and the CRD schema is structural."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from agentic_sandbox.crds import schema
from agentic_sandbox.crds.instance import RESERVED_ENV
from agentic_sandbox.crds.meta import API_VERSION
from agentic_sandbox.crds.yaml_reader import read_yaml_documents

REPOSITORY_CRDS = Path(__file__).resolve().parents[2] / "crds"


def test_repository_files_current() -> None:
    # Regenerate with: python -m agentic_sandbox.crds.schema crds
    json_schema = (REPOSITORY_CRDS / schema.JSON_SCHEMA_FILE).read_text(encoding="utf-8")
    crd = (REPOSITORY_CRDS / schema.CRD_FILE).read_text(encoding="utf-8")
    assert json_schema == schema.render_json_schema()
    assert crd == schema.render_crd()


def test_main_writes_all_files(tmp_path: Path) -> None:
    assert schema.main([str(tmp_path / "out")]) == 0
    assert sorted(path.name for path in (tmp_path / "out").iterdir()) == [
        "gitsource.schema.json",
        "gitsource.yaml",
        "instance.schema.json",
        "instance.yaml",
        "loadout.schema.json",
        "loadout.yaml",
    ]


def test_json_schema_envelope() -> None:
    document = json.loads(schema.render_json_schema())
    assert document["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert document["properties"]["apiVersion"]["const"] == API_VERSION
    assert document["properties"]["kind"]["const"] == "Instance"
    assert document["required"] == ["apiVersion", "kind", "metadata", "spec"]
    assert document["additionalProperties"] is False
    assert document["properties"]["status"]["readOnly"] is True


def test_json_schema_spec_forms() -> None:
    definitions = json.loads(schema.render_json_schema())["$defs"]
    spec = definitions["InstanceSpec"]["properties"]
    mount_forms = spec["mounts"]["items"]["anyOf"]
    assert mount_forms[0] == {"$ref": "#/$defs/Mount"}
    assert mount_forms[1]["type"] == "string"
    assert spec["env"]["additionalProperties"] == {"type": "string"}
    assert spec["env"]["propertyNames"]["not"]["enum"] == sorted(RESERVED_ENV)
    cpus_types = [form["type"] for form in definitions["Resources"]["properties"]["cpus"]["anyOf"]]
    assert cpus_types == ["number", "string"]
    assert definitions["ObjectMeta"]["properties"]["name"]["maxLength"] == 63


def walk(node: Any, path: str = "") -> list[tuple[str, dict[str, Any]]]:
    """List every schema node of an OpenAPI schema with its path."""
    if not isinstance(node, dict):
        return []
    found = [(path, node)]
    for name, child in node.get("properties", {}).items():
        found += walk(child, f"{path}.{name}")
    for key in ("items", "additionalProperties"):
        if isinstance(node.get(key), dict):
            found += walk(node[key], f"{path}[{key}]")
    return found


def test_crd_schema_structural() -> None:
    (document,) = list(read_yaml_documents(schema.render_crd(), source=schema.CRD_FILE))
    assert isinstance(document.data, dict)
    assert document.data["metadata"] == {"name": "instances.sandbox.agentic.dev"}
    (version,) = document.data["spec"]["versions"]
    open_api = version["schema"]["openAPIV3Schema"]
    for path, node in walk(open_api):
        assert "type" in node or node.get("x-kubernetes-int-or-string"), path
        for keyword in ("$ref", "const", "title", "propertyNames", "readOnly", "$defs"):
            assert keyword not in node, f"{path} has {keyword}"
        assert node.get("additionalProperties") is not False, path
        if "anyOf" in node:
            assert node.get("x-kubernetes-int-or-string") is True, path
    spec = open_api["properties"]["spec"]["properties"]
    assert spec["mounts"]["items"]["type"] == "object"
    assert spec["image"]["nullable"] is True
    assert spec["resources"]["properties"]["cpus"]["default"] == "1"
