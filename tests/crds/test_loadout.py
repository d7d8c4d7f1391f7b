"""The Loadout model: field validation, written text of env values, and the as-written form."""

from __future__ import annotations

from typing import Any

import pytest

from agentic_sandbox.crds.loadout import Loadout, NetworkMode
from agentic_sandbox.crds.manifest import load_manifests
from agentic_sandbox.crds.meta import API_VERSION
from agentic_sandbox.crds.registry import resource_from_wire
from agentic_sandbox.crds.validation import validate_resource
from agentic_sandbox.errors import InvalidResource, ManifestError


def loadout_yaml(spec: str, *, name: str = "base") -> str:
    """Return a Loadout manifest; ``spec`` contains the lines under ``spec:``, indented by two."""
    return f"apiVersion: {API_VERSION}\nkind: Loadout\nmetadata:\n  name: {name}\nspec:\n{spec}"


def loadout_dict(**spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": API_VERSION,
        "kind": "Loadout",
        "metadata": {"name": "base"},
        "spec": spec,
    }


def parse(spec: str) -> Loadout:
    (document,) = load_manifests(loadout_yaml(spec), source="loadout.yaml")
    assert isinstance(document.resource, Loadout)
    return document.resource


def field_errors(**spec: Any) -> dict[str, str]:
    with pytest.raises(InvalidResource) as caught:
        validate_resource(loadout_dict(**spec))
    return {error.path: error.message for error in caught.value.errors}


def test_manifest_full_spec() -> None:
    loadout = parse(
        "  baseImage: /images/debian.qcow2\n"
        "  kernel: /boot/vmlinuz\n"
        "  initrd: /boot/initrd.img\n"
        "  cmdline: console=ttyS0\n"
        "  resources: {cpus: 500m, memory: 2Gi, disk: 20Gi}\n"
        "  packages: [git]\n"
        "  writeFiles:\n"
        "    - {path: /etc/motd, content: hi, permissions: '0600', owner: 'root:root'}\n"
        "  runcmd: ['echo one', [echo, two]]\n"
        "  network: {mode: isolated}\n"
        "  readiness: {timeoutSeconds: 60}\n"
        "  extends: [parent]\n"
    )
    spec = loadout.spec
    assert spec.resources is not None
    assert spec.resources.cpus == 0.5
    assert spec.resources.disk == "20Gi"
    assert spec.write_files is not None
    assert spec.write_files[0].permissions == "0600"
    assert spec.runcmd == ["echo one", ["echo", "two"]]
    assert spec.network is not None
    assert spec.network.mode is NetworkMode.ISOLATED
    assert spec.readiness is not None
    assert spec.readiness.timeout_seconds == 60
    assert spec.extends == ["parent"]


def test_env_keeps_written_text() -> None:
    loadout = parse("  env:\n    DEBUG: no\n    MODE: 0755\n    RATIO: 1.10\n")
    assert loadout.spec.env == {"DEBUG": "no", "MODE": "0755", "RATIO": "1.10"}


def test_env_null_kept_as_unset() -> None:
    loadout = parse("  env:\n    DEBUG: null\n")
    assert loadout.spec.env == {"DEBUG": None}
    assert loadout.spec.written() == {"env": {"DEBUG": None}}


def test_env_reserved_name_rejected() -> None:
    errors = field_errors(env={"AGENT_SECRET": "x"})
    assert "set by the controller" in errors["spec.env.AGENT_SECRET"]


@pytest.mark.parametrize("permissions", ["644x", "0648", "12345", "rw-r--r--", ""])
def test_permissions_not_octal_rejected(permissions: str) -> None:
    errors = field_errors(writeFiles=[{"path": "/etc/motd", "permissions": permissions}])
    assert "not an octal file mode" in errors["spec.writeFiles[0].permissions"]


def test_permissions_number_rejected() -> None:
    with pytest.raises(ManifestError) as caught:
        parse("  writeFiles:\n    - path: /etc/motd\n      permissions: 0644\n")
    assert "write the octal mode as a string" in str(caught.value)


def test_write_file_relative_path_rejected() -> None:
    errors = field_errors(writeFiles=[{"path": "etc/motd"}])
    assert "not absolute" in errors["spec.writeFiles[0].path"]


def test_write_file_defaults() -> None:
    loadout = parse("  writeFiles:\n    - path: /etc//motd\n")
    assert loadout.spec.write_files is not None
    (write_file,) = loadout.spec.write_files
    assert write_file.path == "/etc/motd"
    assert write_file.permissions == "0644"
    assert write_file.content == ""


def test_runcmd_empty_list_rejected() -> None:
    errors = field_errors(runcmd=["ok", []])
    assert "empty list" in errors["spec.runcmd[1]"]


@pytest.mark.parametrize("item", [5, ["echo", 5], {"cmd": "ls"}])
def test_runcmd_wrong_item_rejected(item: object) -> None:
    errors = field_errors(runcmd=[item])
    assert list(errors) == ["spec.runcmd[0]"]
    assert "neither a string nor a list of strings" in errors["spec.runcmd[0]"]


def test_unknown_field_rejected() -> None:
    errors = field_errors(baseimage="/images/a.qcow2")
    assert "spec.baseimage" in errors


def test_network_mode_invalid() -> None:
    errors = field_errors(network={"mode": "bridge"})
    assert "spec.network.mode" in errors


def test_extends_duplicate_rejected() -> None:
    errors = field_errors(extends=["a", "a"])
    assert "more than once" in errors["spec.extends"]


def test_extends_invalid_name_rejected() -> None:
    errors = field_errors(extends=["Not_A_Name"])
    assert "spec.extends[0]" in errors


def test_readiness_timeout_out_of_range() -> None:
    errors = field_errors(readiness={"timeoutSeconds": 0})
    assert "spec.readiness.timeoutSeconds" in errors


def test_written_keeps_only_set_fields() -> None:
    loadout = parse("  resources:\n    memory: 2Gi\n    cpus: null\n  baseImage: null\n")
    assert loadout.spec.written() == {
        "resources": {"memory": "2Gi", "cpus": None},
        "baseImage": None,
    }


def test_wire_round_trip_keeps_nulls() -> None:
    loadout = parse("  env:\n    DEBUG: null\n  packages: null\n")
    wire = loadout.to_wire()
    assert wire["spec"] == {"env": {"DEBUG": None}, "packages": None}
    restored = resource_from_wire(wire)
    assert isinstance(restored, Loadout)
    assert restored.spec.written() == loadout.spec.written()


def test_registry_serves_loadout() -> None:
    resource = validate_resource(loadout_dict(baseImage="/images/a.qcow2"))
    assert isinstance(resource, Loadout)
    assert resource.key == "default/base"
