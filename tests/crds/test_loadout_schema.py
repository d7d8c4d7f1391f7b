"""Schema export of the Loadout kind: the generated files are current and the CRD is structural."""

from __future__ import annotations

import json
from pathlib import Path

from agentic_sandbox.crds import schema
from agentic_sandbox.crds.meta import API_VERSION
from agentic_sandbox.crds.yaml_reader import read_yaml_documents
from tests.crds.test_schema import walk

REPOSITORY_CRDS = Path(__file__).resolve().parents[2] / "crds"


def test_loadout_files_current() -> None:
    # Regenerate with: python -m agentic_sandbox.crds.schema crds
    json_schema = (REPOSITORY_CRDS / schema.LOADOUT_JSON_SCHEMA_FILE).read_text(encoding="utf-8")
    crd = (REPOSITORY_CRDS / schema.LOADOUT_CRD_FILE).read_text(encoding="utf-8")
    assert json_schema == schema.render_loadout_json_schema()
    assert crd == schema.render_loadout_crd()


def test_loadout_json_schema_envelope() -> None:
    document = json.loads(schema.render_loadout_json_schema())
    assert document["properties"]["apiVersion"]["const"] == API_VERSION
    assert document["properties"]["kind"]["const"] == "Loadout"
    assert "status" not in document["properties"]
    assert document["additionalProperties"] is False


def test_loadout_json_schema_fields() -> None:
    definitions = json.loads(schema.render_loadout_json_schema())["$defs"]
    spec = definitions["LoadoutSpec"]["properties"]
    assert spec["env"]["anyOf"][0]["additionalProperties"]["anyOf"] == [
        {"type": "string"},
        {"type": "null"},
    ]
    assert "pattern" in spec["extends"]["anyOf"][0]["items"]
    assert definitions["WriteFile"]["properties"]["permissions"]["pattern"] == "^[0-7]{3,4}$"
    cpus = definitions["LoadoutResources"]["properties"]["cpus"]["anyOf"]
    assert [form["type"] for form in cpus] == ["number", "string", "null"]


def test_loadout_crd_structural() -> None:
    (document,) = list(read_yaml_documents(schema.render_loadout_crd(), source="loadout.yaml"))
    assert isinstance(document.data, dict)
    assert document.data["metadata"] == {"name": "loadouts.sandbox.agentic.dev"}
    (version,) = document.data["spec"]["versions"]
    open_api = version["schema"]["openAPIV3Schema"]
    for path, node in walk(open_api):
        typed = "type" in node or node.get("x-kubernetes-int-or-string")
        assert typed or node.get("x-kubernetes-preserve-unknown-fields"), path
        for keyword in ("$ref", "const", "title", "propertyNames", "readOnly", "$defs"):
            assert keyword not in node, f"{path} has {keyword}"
        assert node.get("additionalProperties") is not False, path
        if "anyOf" in node:
            assert node.get("x-kubernetes-int-or-string") is True, path


def test_loadout_crd_has_no_defaults() -> None:
    (document,) = list(read_yaml_documents(schema.render_loadout_crd(), source="loadout.yaml"))
    assert isinstance(document.data, dict)
    (version,) = document.data["spec"]["versions"]
    spec = version["schema"]["openAPIV3Schema"]["properties"]["spec"]
    assert all("default" not in node for _, node in walk(spec))
