"""Tests of the NoCloud seed: user-data, meta-data, network-config and the seed ISO."""

from __future__ import annotations

import io
import os
import stat
import subprocess
from pathlib import Path
from typing import Any

import pycdlib
import pytest
import yaml as pyyaml  # type: ignore[import-untyped, unused-ignore]
from hypothesis import given, settings
from hypothesis import strategies as st
from ruamel.yaml import YAML

from agentic_sandbox.crds.loadout import Loadout, LoadoutSpec, NetworkMode
from agentic_sandbox.crds.loadout_merge import ResolvedLoadout, resolve
from agentic_sandbox.runtimes.cloudinit import (
    ENV_FILE_PATH,
    META_DATA,
    NETWORK_CONFIG,
    SEED_VOLUME_ID,
    USER_DATA,
    build_meta_data,
    build_network_config,
    build_seed_iso,
    build_user_data,
    render_env_file,
)

# A stand-in for the injected agent secret: the tests never handle a real one.
AGENT_ENV = {"AGENT_ID": "web", "AGENT_SECRET": "placeholder", "MANAGEMENT_SERVER": "10.0.2.2:8120"}


def loadout(name: str, spec: dict[str, Any]) -> Loadout:
    return Loadout.model_validate({"metadata": {"name": name}, "spec": spec})


def resolved(spec: dict[str, Any]) -> ResolvedLoadout:
    return ResolvedLoadout(name="vm", chain=("vm",), spec=LoadoutSpec.model_validate(spec))


def load_yaml_1_2(text: str) -> Any:
    return YAML(typ="safe", pure=True).load(text)


def load_like_cloud_init(text: str) -> Any:
    # cloud-init reads its files with PyYAML's safe_load, which follows YAML 1.1.
    return pyyaml.safe_load(text)


def env_file(user_data: dict[str, Any]) -> dict[str, Any]:
    entries = [entry for entry in user_data["write_files"] if entry["path"] == ENV_FILE_PATH]
    assert len(entries) == 1
    entry: dict[str, Any] = entries[0]
    return entry


def test_user_data_starts_with_cloud_config() -> None:
    text = build_user_data(resolved({}), env={}, agent_env={})

    assert text.splitlines()[0] == "#cloud-config"


def test_user_data_runcmd_order_after_merge() -> None:
    loadouts = {
        "base": loadout("base", {"runcmd": ["echo base-1", "echo base-2"]}),
        "tools": loadout("tools", {"runcmd": [["mkdir", "-p", "/srv"]]}),
        "vm": loadout("vm", {"extends": ["base", "tools"], "runcmd": ["echo vm", "yes"]}),
    }
    merged = resolve("vm", loadouts.__getitem__)
    expected = ["echo base-1", "echo base-2", ["mkdir", "-p", "/srv"], "echo vm", "yes"]

    text = build_user_data(merged, env={}, agent_env={})

    assert load_yaml_1_2(text)["runcmd"] == expected
    assert load_like_cloud_init(text)["runcmd"] == expected


def test_user_data_packages_in_order() -> None:
    text = build_user_data(
        resolved({"packages": ["git", "on", "curl=8.5.0-2"]}), env={}, agent_env={}
    )

    assert load_like_cloud_init(text)["packages"] == ["git", "on", "curl=8.5.0-2"]


def test_user_data_without_packages_or_runcmd() -> None:
    data = load_like_cloud_init(build_user_data(resolved({}), env={}, agent_env={}))

    assert "packages" not in data
    assert "runcmd" not in data
    assert [entry["path"] for entry in data["write_files"]] == [ENV_FILE_PATH]


def test_user_data_write_files_fields() -> None:
    spec = {
        "writeFiles": [
            {
                "path": "/usr/local/bin/setup",
                "content": "#!/bin/sh\necho no\n",
                "permissions": "0755",
                "owner": "agent:agent",
            },
            {"path": "/etc/motd", "content": "on"},
        ]
    }
    text = build_user_data(resolved(spec), env={}, agent_env={})

    for data in (load_yaml_1_2(text), load_like_cloud_init(text)):
        setup, motd, _ = data["write_files"]
        assert setup == {
            "path": "/usr/local/bin/setup",
            "content": "#!/bin/sh\necho no\n",
            "permissions": "0755",
            "owner": "agent:agent",
        }
        assert motd == {"path": "/etc/motd", "content": "on", "permissions": "0644"}


def test_user_data_env_text_unchanged() -> None:
    loadout_env = {"FLAG": "no", "MODE": "0755", "FROM_LOADOUT": "on"}
    text = build_user_data(
        resolved({"env": loadout_env}), env={"DURATION": "1:30", "FLAG": "off"}, agent_env=AGENT_ENV
    )
    entry = env_file(load_like_cloud_init(text))

    assert entry["permissions"] == "0600"
    assert entry["owner"] == "root:root"
    lines = entry["content"].splitlines()
    assert "FLAG='off'" in lines
    assert "MODE='0755'" in lines
    assert "FROM_LOADOUT='on'" in lines
    assert "DURATION='1:30'" in lines
    assert "AGENT_ID='web'" in lines


def test_user_data_agent_env_wins() -> None:
    text = build_user_data(resolved({}), env={"PATH_EXTRA": "/opt"}, agent_env={"AGENT_ID": "web"})
    content = env_file(load_yaml_1_2(text))["content"]

    assert content == "AGENT_ID='web'\nPATH_EXTRA='/opt'\n"


def test_user_data_env_special_characters() -> None:
    value = "trailing space \t\n  indented\r\nend "
    text = build_user_data(resolved({}), env={"TRICKY": value}, agent_env={})

    for data in (load_yaml_1_2(text), load_like_cloud_init(text)):
        assert env_file(data)["content"] == render_env_file({"TRICKY": value})


@settings(max_examples=200, deadline=None)
@given(value=st.text(st.characters(exclude_characters="\x00")), content=st.text())
def test_user_data_any_text_round_trips(value: str, content: str) -> None:
    spec = {"writeFiles": [{"path": "/etc/app.conf", "content": content}]}
    text = build_user_data(resolved(spec), env={"VALUE": value}, agent_env={})

    data = load_like_cloud_init(text)
    assert data["write_files"][0]["content"] == content
    assert env_file(data)["content"] == render_env_file({"VALUE": value})


def test_user_data_rejects_env_file_path() -> None:
    spec = {"writeFiles": [{"path": ENV_FILE_PATH, "content": "X=1\n"}]}

    with pytest.raises(ValueError, match="contains the sandbox env"):
        build_user_data(resolved(spec), env={}, agent_env={})


def test_env_file_reads_back_in_shell(tmp_path: Path) -> None:
    env = {
        "PLAIN": "no",
        "OCTAL": "0755",
        "QUOTE": 'it\'s "quoted"',
        "EXPANSION": "$HOME `id` $(id)",
        "LINES": "one\ntwo",
        "EMPTY": "",
    }
    path = tmp_path / "env"
    path.write_text(render_env_file(env))

    output = subprocess.run(
        ["/bin/sh", "-c", 'set -a; . "$1"; exec env -0', "sh", str(path)],
        env={},
        capture_output=True,
        check=True,
    ).stdout

    exported = dict(item.split("=", 1) for item in output.decode().split("\0") if item)
    for name, value in env.items():
        assert exported[name] == value, name


@pytest.mark.parametrize("name", ["1ABC", "A B", "A;rm", "A=B", ""])
def test_env_file_rejects_invalid_name(name: str) -> None:
    with pytest.raises(ValueError, match="env names"):
        render_env_file({name: "x"})


def test_meta_data_fields() -> None:
    data = load_like_cloud_init(build_meta_data("6f1c2f9e-0001", "web"))

    assert data == {"instance-id": "6f1c2f9e-0001", "local-hostname": "web"}


@pytest.mark.parametrize(
    ("instance_id", "hostname"), [("", "web"), ("a b", "web"), ("id", "Web_1"), ("id", "a.b")]
)
def test_meta_data_rejects_invalid(instance_id: str, hostname: str) -> None:
    with pytest.raises(ValueError):
        build_meta_data(instance_id, hostname)


@pytest.mark.parametrize("mode", [NetworkMode.USER, NetworkMode.LIBVIRT])
def test_network_config_dhcp_first_nic(mode: NetworkMode) -> None:
    data = load_like_cloud_init(build_network_config(mode))

    assert data["version"] == 2
    assert data["ethernets"] == {"primary": {"match": {"name": "e*"}, "dhcp4": True}}


def test_network_config_isolated_disabled() -> None:
    data = load_like_cloud_init(build_network_config(NetworkMode.ISOLATED))

    assert data == {"config": "disabled"}


def read_iso_file(iso: pycdlib.PyCdlib, **path: str) -> bytes:
    output = io.BytesIO()
    iso.get_file_from_iso_fp(output, **path)
    return output.getvalue()


def seed_files() -> dict[str, bytes]:
    return {
        USER_DATA: build_user_data(
            resolved({"runcmd": ["echo hi"]}), env={}, agent_env={}
        ).encode(),
        META_DATA: build_meta_data("id-1", "web").encode(),
        NETWORK_CONFIG: build_network_config(NetworkMode.USER).encode(),
    }


def test_seed_iso_contains_files(tmp_path: Path) -> None:
    path = tmp_path / "seed.iso"
    files = seed_files()

    build_seed_iso(path, files)

    iso = pycdlib.PyCdlib()
    iso.open(str(path))
    try:
        assert iso.pvd.volume_identifier.decode().rstrip() == SEED_VOLUME_ID
        assert iso.has_joliet()
        assert iso.has_rock_ridge()
        for name, content in files.items():
            assert read_iso_file(iso, joliet_path=f"/{name}") == content
            assert read_iso_file(iso, rr_path=f"/{name}") == content
    finally:
        iso.close()


def test_seed_iso_private_and_replaced(tmp_path: Path) -> None:
    path = tmp_path / "seed.iso"
    path.write_bytes(b"old")

    build_seed_iso(path, seed_files())

    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert path.read_bytes() != b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["seed.iso"]


def test_seed_iso_rejects_unknown_file(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="vendor-data"):
        build_seed_iso(tmp_path / "seed.iso", {"vendor-data": b""})

    assert list(tmp_path.iterdir()) == []
