"""LoadoutCatalog over a real SqliteStore and a real loadout directory."""

from __future__ import annotations

import json
import os
import textwrap
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from agentic_sandbox.controller import loadouts as loadouts_module
from agentic_sandbox.controller.loadouts import STORE_SOURCE, LoadoutCatalog
from agentic_sandbox.crds.loadout import Loadout
from agentic_sandbox.crds.manifest import load_manifest_file
from agentic_sandbox.crds.meta import API_VERSION
from agentic_sandbox.errors import InvalidRuntimeSpec, NotFound
from agentic_sandbox.store.sqlite import SqliteStore

REPO_LOADOUTS = Path(__file__).resolve().parents[2] / "images" / "vm" / "loadouts"


def loadout_manifest(name: str, namespace: str = "default", **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": API_VERSION,
        "kind": "Loadout",
        "metadata": {"name": name, "namespace": namespace},
        "spec": spec,
    }


def write_loadout(directory: Path, name: str, **spec: Any) -> Path:
    """Write a loadout file; JSON text is valid YAML, so the file is named .yaml."""
    path = directory / f"{name}.yaml"
    path.write_text(json.dumps(loadout_manifest(name, **spec), indent=2) + "\n")
    return path


async def store_loadout(store: SqliteStore, name: str, **spec: Any) -> None:
    await store.create(Loadout.model_validate(loadout_manifest(name, **spec)))


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SqliteStore]:
    async with SqliteStore(tmp_path / "state.db") as opened:
        yield opened


@pytest.fixture
def directory(tmp_path: Path) -> Path:
    path = tmp_path / "loadouts"
    path.mkdir()
    return path


@pytest.fixture
def catalog(store: SqliteStore, directory: Path) -> LoadoutCatalog:
    return LoadoutCatalog(store, directory)


async def test_agent_python_resolves_in_order(store: SqliteStore) -> None:
    catalog = LoadoutCatalog(store, REPO_LOADOUTS)

    resolved = await catalog.resolve("agent-python")

    assert resolved.chain == ("debian-base", "python-dev", "agent-python")
    assert resolved.spec.runcmd == [
        "mkdir -p /workspace",
        ["chown", "10001:10001", "/workspace"],
        "python3 -m venv /opt/agent-venv",
        ["/opt/agent-venv/bin/pip", "install", "--upgrade", "pip"],
    ]
    env = resolved.spec.env or {}
    assert "DEBUG" not in env
    assert env == {
        "LANG": "C.UTF-8",
        "PYTHONDONTWRITEBYTECODE": "1",
        "AGENT_WORKDIR": "/workspace",
    }
    assert resolved.spec.packages == [
        "ca-certificates",
        "curl",
        "git",
        "python3",
        "python3-venv",
        "ripgrep",
    ]
    assert resolved.cpus == 2
    assert resolved.spec.resources is not None
    assert resolved.spec.resources.memory == "2Gi"
    assert resolved.readiness_timeout_seconds == 600


async def test_agent_python_origins(store: SqliteStore) -> None:
    catalog = LoadoutCatalog(store, REPO_LOADOUTS)

    entry = await catalog.get("agent-python")

    assert entry.origins is not None
    set_by = entry.origins.set_by
    assert set_by["resources"] == {
        "cpus": "agent-python",
        "memory": "python-dev",
        "disk": "debian-base",
    }
    assert set_by["runcmd"] == ["debian-base", "debian-base", "python-dev", "agent-python"]
    assert set_by["packages"][2] == "python-dev"  # git: its first occurrence
    assert set_by["packages"][5] == "agent-python"
    assert entry.origins.unset_by == {"env.DEBUG": "agent-python"}


async def test_list_files_and_store(
    catalog: LoadoutCatalog, store: SqliteStore, directory: Path
) -> None:
    path = write_loadout(directory, "base", baseImage="/images/base.qcow2")
    await store_loadout(store, "dev", extends=["base"], packages=["git"])

    entries = await catalog.list()

    assert [(entry.name, entry.source) for entry in entries] == [
        ("base", str(path)),
        ("dev", STORE_SOURCE),
    ]
    assert entries[0].line == 1
    assert entries[1].resolved is not None
    assert entries[1].resolved.spec.base_image == "/images/base.qcow2"
    assert all(entry.error is None for entry in entries)


async def test_store_overrides_file(
    catalog: LoadoutCatalog, store: SqliteStore, directory: Path
) -> None:
    path = write_loadout(directory, "base", baseImage="/images/from-file.qcow2")
    write_loadout(directory, "dev", extends=["base"])
    await store_loadout(store, "base", baseImage="/images/from-store.qcow2")

    resolved = await catalog.resolve("dev")
    entries = await catalog.list()

    assert resolved.spec.base_image == "/images/from-store.qcow2"
    base = [entry for entry in entries if entry.name == "base"]
    assert len(base) == 1
    assert base[0].source == STORE_SOURCE
    assert base[0].overrides == str(path)


async def test_parent_from_either_place(
    catalog: LoadoutCatalog, store: SqliteStore, directory: Path
) -> None:
    write_loadout(directory, "root", env={"A": "file"})
    await store_loadout(store, "middle", extends=["root"], env={"B": "store"})
    write_loadout(directory, "leaf", extends=["middle"], env={"C": "file"})

    resolved = await catalog.resolve("leaf")

    assert resolved.chain == ("root", "middle", "leaf")
    assert resolved.spec.env == {"A": "file", "B": "store", "C": "file"}


async def test_store_loadout_of_other_namespace_hidden(
    catalog: LoadoutCatalog, store: SqliteStore
) -> None:
    await store.create(Loadout.model_validate(loadout_manifest("team-only", namespace="team")))

    assert (await catalog.resolve("team-only", namespace="team")).chain == ("team-only",)
    with pytest.raises(InvalidRuntimeSpec):
        await catalog.resolve("team-only")


async def test_missing_loadout_names_sources(catalog: LoadoutCatalog, directory: Path) -> None:
    with pytest.raises(InvalidRuntimeSpec) as caught:
        await catalog.resolve("ghost")

    message = str(caught.value)
    assert caught.value.field == "spec.loadout"
    assert caught.value.value == "ghost"
    assert "loadout 'ghost' not found" in message
    assert "Loadout resources in namespace default" in message
    assert str(directory) in message
    assert "Apply a Loadout named 'ghost'" in message


async def test_missing_parent_names_chain(
    catalog: LoadoutCatalog, store: SqliteStore, directory: Path
) -> None:
    write_loadout(directory, "top", extends=["middle"])
    await store_loadout(store, "middle", extends=["ghost"])

    with pytest.raises(InvalidRuntimeSpec) as caught:
        await catalog.resolve("top")

    message = str(caught.value)
    assert caught.value.field == "spec.loadout"
    assert "top -> middle -> ghost" in message
    assert "remove it from the extends of 'middle'" in message
    assert str(directory) in message


async def test_cycle_names_chain(catalog: LoadoutCatalog, directory: Path) -> None:
    write_loadout(directory, "entry", extends=["a"])
    write_loadout(directory, "a", extends=["b"])
    write_loadout(directory, "b", extends=["a"])

    with pytest.raises(InvalidRuntimeSpec) as caught:
        await catalog.resolve("entry")
    with pytest.raises(InvalidRuntimeSpec) as direct:
        await catalog.resolve("a")

    assert "a -> b -> a, reached by entry -> a -> b -> a" in str(caught.value)
    assert caught.value.field == "spec.loadout"
    assert "cycle: a -> b -> a;" in str(direct.value)


async def test_unresolvable_listed_with_error(catalog: LoadoutCatalog, directory: Path) -> None:
    write_loadout(directory, "orphan", extends=["ghost"])
    write_loadout(directory, "fine")

    entries = {entry.name: entry for entry in await catalog.list()}

    assert entries["orphan"].resolved is None
    assert entries["orphan"].error is not None
    assert "'ghost', which is not found" in entries["orphan"].error
    assert entries["fine"].error is None


async def test_bad_file_listed_not_hiding_others(catalog: LoadoutCatalog, directory: Path) -> None:
    write_loadout(directory, "good", packages=["git"])
    bad = directory / "broken.yaml"
    bad.write_text(
        textwrap.dedent(
            """\
            apiVersion: sandbox.agentic.dev/v1alpha1
            kind: Loadout
            metadata:
              name: broken
            spec:
              resources:
                cpus: lots
            """
        )
    )

    entries = {entry.name: entry for entry in await catalog.list()}
    resolved = await catalog.resolve("good")

    assert set(entries) == {"good", "broken"}
    assert entries["broken"].source == str(bad)
    assert entries["broken"].loadout is None
    assert entries["broken"].error is not None
    assert entries["broken"].error.startswith(f"{bad}:7: ")
    assert "cpus" in entries["broken"].error
    assert resolved.spec.packages == ["git"]


async def test_bad_file_quoted_when_not_found(catalog: LoadoutCatalog, directory: Path) -> None:
    (directory / "broken.yaml").write_text("kind: [unclosed\n")

    with pytest.raises(InvalidRuntimeSpec) as caught:
        await catalog.resolve("broken")

    assert "invalid files skipped" in str(caught.value)
    assert str(directory / "broken.yaml") in str(caught.value)


async def test_file_of_other_kind_invalid(catalog: LoadoutCatalog, directory: Path) -> None:
    other = directory / "instance.yaml"
    other.write_text(
        "apiVersion: sandbox.agentic.dev/v1alpha1\nkind: Instance\n"
        "metadata:\n  name: web\nspec:\n  image: agentic/demo:dev\n"
    )

    entries = await catalog.list()

    assert [entry.name for entry in entries] == ["instance"]
    assert entries[0].error is not None
    assert "contains only Loadout documents" in entries[0].error


async def test_duplicate_name_in_two_files(catalog: LoadoutCatalog, directory: Path) -> None:
    first = write_loadout(directory, "a-first", baseImage="/images/one.qcow2")
    first.write_text(first.read_text().replace('"a-first"', '"same"'))
    second = write_loadout(directory, "b-second", baseImage="/images/two.qcow2")
    second.write_text(second.read_text().replace('"b-second"', '"same"'))

    entries = await catalog.list()
    resolved = await catalog.resolve("same")

    assert [(entry.source, entry.error is None) for entry in entries] == [
        (str(first), True),
        (str(second), False),
    ]
    assert f"already defined in {first}:1" in (entries[1].error or "")
    assert resolved.spec.base_image == "/images/one.qcow2"


async def test_file_named_after_loadout_keeps_it(catalog: LoadoutCatalog, directory: Path) -> None:
    owner = write_loadout(directory, "same", baseImage="/images/one.qcow2")
    newcomer = write_loadout(directory, "a-newcomer", baseImage="/images/two.qcow2")
    newcomer.write_text(newcomer.read_text().replace('"a-newcomer"', '"same"'))

    entries = await catalog.list()
    resolved = await catalog.resolve("same")

    assert resolved.spec.base_image == "/images/one.qcow2"
    broken = [entry for entry in entries if entry.error is not None]
    assert [entry.source for entry in broken] == [str(newcomer)]
    assert f"already defined in {owner}:1" in (broken[0].error or "")


async def test_files_reread_after_change(
    catalog: LoadoutCatalog, directory: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    reads: list[Path] = []

    def counting_load(path: Path) -> Any:
        reads.append(path)
        return load_manifest_file(path)

    monkeypatch.setattr(loadouts_module, "load_manifest_file", counting_load)
    path = write_loadout(directory, "base", baseImage="/images/old.qcow2")

    first = await catalog.resolve("base")
    await catalog.list()
    unchanged_reads = len(reads)
    write_loadout(directory, "base", baseImage="/images/newer.qcow2")
    # A distinct modification time, whatever the file system's timestamp granularity.
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    second = await catalog.resolve("base")

    assert first.spec.base_image == "/images/old.qcow2"
    assert unchanged_reads == 1
    assert second.spec.base_image == "/images/newer.qcow2"
    assert len(reads) == 2


async def test_removed_file_forgotten(catalog: LoadoutCatalog, directory: Path) -> None:
    path = write_loadout(directory, "base")
    assert (await catalog.resolve("base")).chain == ("base",)

    path.unlink()

    with pytest.raises(InvalidRuntimeSpec):
        await catalog.resolve("base")


async def test_missing_directory_serves_store(store: SqliteStore, tmp_path: Path) -> None:
    absent = tmp_path / "absent"
    catalog = LoadoutCatalog(store, absent)
    await store_loadout(store, "only-store")

    entries = await catalog.list()
    with pytest.raises(InvalidRuntimeSpec) as caught:
        await catalog.resolve("ghost")

    assert [entry.name for entry in entries] == ["only-store"]
    assert f"{absent} (which does not exist)" in str(caught.value)


async def test_no_directory_configured(store: SqliteStore) -> None:
    catalog = LoadoutCatalog(store, None)

    with pytest.raises(InvalidRuntimeSpec) as caught:
        await catalog.resolve("ghost")

    assert "no loadout directory is configured" in str(caught.value)


async def test_get_unknown_not_found(catalog: LoadoutCatalog) -> None:
    with pytest.raises(NotFound) as caught:
        await catalog.get("ghost")

    assert "loadout 'ghost' not found" in str(caught.value)
