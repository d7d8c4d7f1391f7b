"""Resolution of loadout ``extends``: order, merge rules, nulls, cycles and the example files."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agentic_sandbox.crds.loadout import Loadout, NetworkMode
from agentic_sandbox.crds.loadout_merge import (
    ResolvedLoadout,
    load_loadout_dir,
    merge_layer,
    resolve,
)
from agentic_sandbox.crds.meta import API_VERSION
from agentic_sandbox.errors import InvalidResource, ManifestError

EXAMPLES = Path(__file__).resolve().parents[2] / "images" / "vm" / "loadouts"


def make_loadout(name: str, **spec: Any) -> Loadout:
    return Loadout.model_validate(
        {"apiVersion": API_VERSION, "kind": "Loadout", "metadata": {"name": name}, "spec": spec}
    )


def resolve_in(loadouts: list[Loadout], name: str) -> ResolvedLoadout:
    by_name = {loadout.metadata.name: loadout for loadout in loadouts}
    return resolve(name, by_name.__getitem__)


def test_resolve_without_extends() -> None:
    resolved = resolve_in([make_loadout("a", baseImage="/a.qcow2")], "a")
    assert resolved.chain == ("a",)
    assert resolved.spec.base_image == "/a.qcow2"
    assert resolved.cpus == 1.0
    assert resolved.memory_bytes == 2**30
    assert resolved.network_mode is NetworkMode.USER
    assert resolved.readiness_timeout_seconds == 300


def test_order_depth_first_left_to_right() -> None:
    loadouts = [
        make_loadout("root"),
        make_loadout("left", extends=["root"]),
        make_loadout("right"),
        make_loadout("child", extends=["left", "right"]),
    ]
    assert resolve_in(loadouts, "child").chain == ("root", "left", "right", "child")


def test_scalar_last_wins() -> None:
    loadouts = [
        make_loadout("a", baseImage="/a.qcow2", kernel="/a-vmlinuz"),
        make_loadout("b", baseImage="/b.qcow2"),
        make_loadout("c", extends=["a", "b"]),
    ]
    spec = resolve_in(loadouts, "c").spec
    assert spec.base_image == "/b.qcow2"
    assert spec.kernel == "/a-vmlinuz"


def test_maps_deep_merge() -> None:
    loadouts = [
        make_loadout("a", resources={"cpus": 2, "disk": "10Gi"}, env={"A": "1", "B": "1"}),
        make_loadout("b", extends=["a"], resources={"memory": "4Gi"}, env={"B": "2"}),
    ]
    resolved = resolve_in(loadouts, "b")
    assert resolved.cpus == 2.0
    assert resolved.memory_bytes == 4 * 2**30
    assert resolved.spec.resources is not None
    assert resolved.spec.resources.disk == "10Gi"
    assert resolved.spec.env == {"A": "1", "B": "2"}


def test_runcmd_order_kept() -> None:
    loadouts = [
        make_loadout("a", runcmd=["step 1", "step 2", "step 1"]),
        make_loadout("b", extends=["a"], runcmd=[["step", "3"], "step 2"]),
    ]
    runcmd = resolve_in(loadouts, "b").spec.runcmd
    assert runcmd == ["step 1", "step 2", "step 1", ["step", "3"], "step 2"]


def test_packages_deduplicated_first_kept() -> None:
    loadouts = [
        make_loadout("a", packages=["curl", "git", "curl"]),
        make_loadout("b", extends=["a"], packages=["vim", "git", "jq"]),
    ]
    assert resolve_in(loadouts, "b").spec.packages == ["curl", "git", "vim", "jq"]


def test_write_files_concatenated() -> None:
    loadouts = [
        make_loadout("a", writeFiles=[{"path": "/etc/a"}]),
        make_loadout("b", extends=["a"], writeFiles=[{"path": "/etc/b", "permissions": "0600"}]),
    ]
    write_files = resolve_in(loadouts, "b").spec.write_files
    assert write_files is not None
    assert [(item.path, item.permissions) for item in write_files] == [
        ("/etc/a", "0644"),
        ("/etc/b", "0600"),
    ]


def test_null_unsets_scalar() -> None:
    loadouts = [
        make_loadout("a", kernel="/vmlinuz", initrd="/initrd.img"),
        make_loadout("b", extends=["a"], kernel=None, initrd=None),
    ]
    spec = resolve_in(loadouts, "b").spec
    assert spec.kernel is None
    assert spec.initrd is None


def test_null_unsets_env_key() -> None:
    loadouts = [
        make_loadout("a", env={"DEBUG": "no", "LANG": "C.UTF-8"}),
        make_loadout("b", extends=["a"], env={"DEBUG": None}),
    ]
    assert resolve_in(loadouts, "b").spec.env == {"LANG": "C.UTF-8"}


def test_null_restores_default() -> None:
    loadouts = [
        make_loadout("a", resources={"cpus": 4}, network={"mode": "isolated"}),
        make_loadout("b", extends=["a"], resources={"cpus": None}, network=None),
    ]
    resolved = resolve_in(loadouts, "b")
    assert resolved.cpus == 1.0
    assert resolved.network_mode is NetworkMode.USER


def test_null_list_starts_empty() -> None:
    loadouts = [
        make_loadout("a", runcmd=["inherited"]),
        make_loadout("b", extends=["a"], runcmd=None),
        make_loadout("c", extends=["b"], runcmd=["own"]),
    ]
    assert resolve_in(loadouts, "b").spec.runcmd is None
    assert resolve_in(loadouts, "c").spec.runcmd == ["own"]


def test_unset_differs_from_null() -> None:
    loadouts = [
        make_loadout("a", kernel="/vmlinuz"),
        make_loadout("b", extends=["a"], cmdline="console=ttyS0"),
    ]
    assert resolve_in(loadouts, "b").spec.kernel == "/vmlinuz"


def test_extends_not_inherited() -> None:
    loadouts = [
        make_loadout("a"),
        make_loadout("b", extends=["a"]),
        make_loadout("c", extends=["b"]),
    ]
    assert resolve_in(loadouts, "c").spec.extends is None


def test_cycle_names_chain() -> None:
    loadouts = [
        make_loadout("a", extends=["b"]),
        make_loadout("b", extends=["a"]),
    ]
    with pytest.raises(InvalidResource) as caught:
        resolve_in(loadouts, "a")
    assert "a -> b -> a" in str(caught.value)


def test_cycle_below_root_names_chain() -> None:
    loadouts = [
        make_loadout("top", extends=["b"]),
        make_loadout("b", extends=["c"]),
        make_loadout("c", extends=["b"]),
    ]
    with pytest.raises(InvalidResource) as caught:
        resolve_in(loadouts, "top")
    assert "b -> c -> b" in str(caught.value)


def test_self_extension_is_cycle() -> None:
    with pytest.raises(InvalidResource) as caught:
        resolve_in([make_loadout("a", extends=["a"])], "a")
    assert "a -> a" in str(caught.value)


def test_missing_parent_named() -> None:
    with pytest.raises(InvalidResource) as caught:
        resolve_in([make_loadout("child", extends=["ghost"])], "child")
    message = str(caught.value)
    assert "'child' extends 'ghost'" in message
    assert "not found" in message


def test_missing_root_named() -> None:
    with pytest.raises(InvalidResource) as caught:
        resolve_in([], "ghost")
    assert str(caught.value) == "loadout 'ghost' not found"


def test_diamond_applies_ancestor_once() -> None:
    loadouts = [
        make_loadout("base", runcmd=["base"], packages=["curl"], kernel="/base-vmlinuz"),
        make_loadout("left", extends=["base"], runcmd=["left"]),
        make_loadout("right", extends=["base"], runcmd=["right"], kernel="/right-vmlinuz"),
        make_loadout("top", extends=["left", "right"], runcmd=["top"]),
    ]
    resolved = resolve_in(loadouts, "top")
    assert resolved.chain == ("base", "left", "right", "top")
    assert resolved.spec.runcmd == ["base", "left", "right", "top"]
    assert resolved.spec.packages == ["curl"]
    # base is not applied again after left, so right's kernel is not overwritten.
    assert resolved.spec.kernel == "/right-vmlinuz"


def test_merge_layer_leaves_inputs_unchanged() -> None:
    base = {"env": {"A": "1"}, "runcmd": ["one"]}
    layer = {"env": {"B": "2"}, "runcmd": ["two"]}
    merge_layer(base, layer)
    assert base == {"env": {"A": "1"}, "runcmd": ["one"]}
    assert layer == {"env": {"B": "2"}, "runcmd": ["two"]}


def test_env_text_preserved_through_merge(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text(
        f"apiVersion: {API_VERSION}\nkind: Loadout\nmetadata:\n  name: a\n"
        "spec:\n  env:\n    DEBUG: no\n    MODE: 0755\n",
        encoding="utf-8",
    )
    loadouts = load_loadout_dir(tmp_path)
    resolved = resolve("a", loadouts.__getitem__)
    assert resolved.spec.env == {"DEBUG": "no", "MODE": "0755"}


def test_examples_resolve() -> None:
    loadouts = load_loadout_dir(EXAMPLES)
    assert len(loadouts) >= 2
    for name in loadouts:
        resolved = resolve(name, loadouts.__getitem__)
        assert resolved.spec.base_image, name


def test_example_two_parents() -> None:
    loadouts = load_loadout_dir(EXAMPLES)
    resolved = resolve("agent-python", loadouts.__getitem__)
    assert resolved.chain == ("debian-base", "python-dev", "agent-python")
    assert resolved.spec.env is not None
    assert "DEBUG" not in resolved.spec.env
    assert loadouts["debian-base"].spec.env == {"LANG": "C.UTF-8", "DEBUG": "no"}
    assert resolved.spec.runcmd is not None
    assert resolved.spec.runcmd[0] == "mkdir -p /workspace"


def test_dir_rejects_other_kind(tmp_path: Path) -> None:
    (tmp_path / "web.yaml").write_text(
        f"apiVersion: {API_VERSION}\nkind: Instance\nmetadata:\n  name: web\n"
        "spec:\n  image: alpine:3\n",
        encoding="utf-8",
    )
    with pytest.raises(ManifestError) as caught:
        load_loadout_dir(tmp_path)
    assert "only Loadout documents" in str(caught.value)


def test_dir_rejects_duplicate_name(tmp_path: Path) -> None:
    text = f"apiVersion: {API_VERSION}\nkind: Loadout\nmetadata:\n  name: a\nspec: {{}}\n"
    (tmp_path / "one.yaml").write_text(text, encoding="utf-8")
    (tmp_path / "two.yml").write_text(text, encoding="utf-8")
    with pytest.raises(ManifestError) as caught:
        load_loadout_dir(tmp_path)
    assert "already defined in" in str(caught.value)


def test_dir_skips_other_files(tmp_path: Path) -> None:
    (tmp_path / "README.md").write_text("not a manifest\n", encoding="utf-8")
    assert load_loadout_dir(tmp_path) == {}


commands = st.lists(st.sampled_from(["a", "b", "c", "d"]), max_size=5)


@given(st.lists(commands, min_size=1, max_size=5))
def test_chain_never_reorders_lists(layers: list[list[str]]) -> None:
    # Layer i extends layer i-1, and every layer writes its items tagged with its own index.
    loadouts = [
        make_loadout(
            f"l{index}",
            extends=[f"l{index - 1}"] if index else [],
            runcmd=[f"{index}:{item}" for item in items],
            packages=[f"{index}-{item}" for item in items],
        )
        for index, items in enumerate(layers)
    ]
    spec = resolve_in(loadouts, f"l{len(layers) - 1}").spec
    runcmd = spec.runcmd or []
    packages = spec.packages or []
    for index, items in enumerate(layers):
        own_commands = [item for item in runcmd if str(item).startswith(f"{index}:")]
        assert own_commands == [f"{index}:{item}" for item in items]
        own_packages = [item for item in packages if item.startswith(f"{index}-")]
        assert own_packages == list(dict.fromkeys(f"{index}-{item}" for item in items))
    assert runcmd == [f"{index}:{item}" for index, items in enumerate(layers) for item in items]
