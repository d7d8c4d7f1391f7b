"""The canonical spec hash: stable where a recreate is not needed, different where it is."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agentic_sandbox.crds.instance import InstanceSpec, Mount, Resources
from agentic_sandbox.crds.manifest import load_manifests
from agentic_sandbox.crds.spechash import (
    HASH_SCHEMA_VERSION,
    HASH_VERSIONS,
    NOT_HASHED_FIELDS,
    canonical_spec,
    spec_hash,
)
from tests.crds.support import instance_yaml


def spec(**fields: Any) -> InstanceSpec:
    return InstanceSpec.model_validate({"image": "alpine:3", **fields})


def hash_of_yaml(spec_lines: str, *, metadata: str = "") -> str:
    text = instance_yaml(spec_lines).replace("  name: web\n", f"  name: web\n{metadata}")
    (document,) = load_manifests(text, source="web.yaml")
    assert isinstance(document.resource.spec, InstanceSpec)
    return spec_hash(document.resource.spec)


def test_hash_is_16_hex_digits() -> None:
    value = spec_hash(spec())
    assert len(value) == 16
    assert int(value, 16) >= 0


def test_hash_of_v1_pinned() -> None:
    # A released hash schema never changes; this value guards version 1 against edits.
    example = spec(command=["sleep", "60"], env={"A": "1"}, mounts=["/srv:/srv:ro"])
    assert canonical_spec(example, schema_version=1) == (
        '{"agentshare":false,"command":["sleep","60"],"env":{"A":"1"},"image":"alpine:3",'
        '"loadout":null,"mounts":[{"hostPath":"/srv","path":"/srv","readOnly":true}],'
        '"network":"bridge","resources":{"cpus":1.0,"diskBytes":null,"memoryBytes":1073741824,'
        '"pids":512},"runtime":"docker"}'
    )
    assert spec_hash(example, schema_version=1) == "e76381a5c71d5c61"


def test_key_order_does_not_matter() -> None:
    first = hash_of_yaml("  image: x\n  env:\n    A: '1'\n    B: '2'\n  network: none\n")
    second = hash_of_yaml("  network: none\n  env:\n    B: '2'\n    A: '1'\n  image: x\n")
    assert first == second


def test_explicit_defaults_do_not_matter() -> None:
    implicit = hash_of_yaml("  image: x\n")
    explicit = hash_of_yaml(
        "  image: x\n  runtime: docker\n  network: bridge\n  env: {}\n  mounts: []\n"
        "  agentshare: false\n  resources:\n    cpus: 1\n    memory: 1Gi\n    pids: 512\n"
    )
    assert implicit == explicit


def test_equivalent_quantities_do_not_matter() -> None:
    assert spec_hash(spec(resources={"memory": "1Gi"})) == spec_hash(
        spec(resources={"memory": "1024Mi"})
    )
    assert spec_hash(spec(resources={"cpus": "500m"})) == spec_hash(spec(resources={"cpus": 0.5}))


def test_mount_order_and_form_do_not_matter() -> None:
    first = spec(mounts=["/a:/a", {"hostPath": "/b", "path": "/b", "readOnly": True}])
    second = spec(mounts=["/b:/b:ro", "/a:/a:rw"])
    assert spec_hash(first) == spec_hash(second)


env_names = st.from_regex(r"[A-Z_][A-Z0-9_]{0,8}", fullmatch=True).filter(
    lambda name: not name.startswith(("AGENT_", "MANAGEMENT_"))
)
env_values = st.text(st.characters(exclude_characters="\x00"), max_size=8)


@given(env=st.dictionaries(env_names, env_values, max_size=8), data=st.data())
def test_env_order_does_not_matter(env: dict[str, str], data: st.DataObject) -> None:
    shuffled_names = data.draw(st.permutations(list(env)))
    shuffled = {name: env[name] for name in shuffled_names}
    assert spec_hash(spec(env=env)) == spec_hash(spec(env=shuffled))


def test_env_change_changes_hash() -> None:
    assert hash_of_yaml("  image: x\n  env:\n    A: '1'\n") != hash_of_yaml(
        "  image: x\n  env:\n    A: '2'\n"
    )


def test_env_written_text_changes_hash() -> None:
    assert hash_of_yaml("  image: x\n  env:\n    MODE: 0755\n") != hash_of_yaml(
        "  image: x\n  env:\n    MODE: 755\n"
    )


@pytest.mark.parametrize(
    "change",
    [
        {"image": "alpine:4"},
        {"command": ["sh"]},
        {"command": []},
        {"network": "none"},
        {"mounts": ["/a:/a:ro"]},
        {"resources": {"pids": 1024}},
        {"resources": {"memory": "2Gi"}},
        {"resources": {"disk": "10Gi"}},
        {"agentshare": True},
        {"loadout": "python"},
        {"runtime": "libvirt"},
    ],
)
def test_recreate_fields_change_hash(change: dict[str, Any]) -> None:
    assert spec_hash(spec(**change)) != spec_hash(spec())


def test_labels_and_annotations_do_not_matter() -> None:
    plain = hash_of_yaml("  image: x\n")
    labelled = hash_of_yaml(
        "  image: x\n", metadata="  labels:\n    team: a\n  annotations:\n    note: b\n"
    )
    assert plain == labelled


def test_run_strategy_and_grace_period_do_not_matter() -> None:
    changed = spec(runStrategy="Halted", terminationGracePeriodSeconds=60)
    assert spec_hash(changed) == spec_hash(spec())


def test_unknown_schema_version_rejected() -> None:
    with pytest.raises(ValueError, match="hash schema version 99 is unknown; known versions: 1"):
        spec_hash(spec(), schema_version=99)


def test_current_version_registered() -> None:
    assert HASH_SCHEMA_VERSION in HASH_VERSIONS
    assert spec_hash(spec()) == spec_hash(spec(), schema_version=HASH_SCHEMA_VERSION)


def wire_names(model: type[InstanceSpec] | type[Mount] | type[Resources]) -> set[str]:
    return {info.alias or name for name, info in model.model_fields.items()}


def test_every_spec_field_is_covered() -> None:
    # Fails when a spec model gains a field: decide whether it needs a recreate, and if it does,
    # add a new hash schema version (see the spechash module docstring).
    canonical = json.loads(canonical_spec(spec(mounts=["/a:/a"])))
    assert set(canonical) | NOT_HASHED_FIELDS == wire_names(InstanceSpec)
    assert set(canonical["mounts"][0]) == wire_names(Mount)
    assert set(canonical["resources"]) == {"cpus", "memoryBytes", "diskBytes", "pids"}
    assert wire_names(Resources) == {"cpus", "memory", "disk", "pids"}
