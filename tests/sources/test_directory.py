"""The directory source end to end: real files, real watchfiles, real SQLite store."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from agentic_sandbox.sources.status import SOURCE_SYNCED
from agentic_sandbox.store.sqlite import SqliteStore
from tests.sources.support import (
    Probe,
    StartSource,
    eventually,
    get_or_none,
    instance_doc,
    manifest,
    source_of,
)


async def test_create_file_applies(root: Path, start_source: StartSource, probe: Probe) -> None:
    await start_source()

    (root / "web.yaml").write_text(instance_doc("web"))

    web = await probe.mode("web", "one")
    assert source_of(web) == f"file:{root / 'web.yaml'}"


async def test_edit_file_updates_in_place(
    root: Path, start_source: StartSource, probe: Probe
) -> None:
    (root / "web.yaml").write_text(instance_doc("web"))
    await start_source()
    before = await probe.mode("web", "one")

    (root / "web.yaml").write_text(instance_doc("web", mode="two"))

    after = await probe.mode("web", "two")
    assert before is not None and after is not None
    assert after.metadata.uid == before.metadata.uid


async def test_delete_file_deletes_instances(
    root: Path, start_source: StartSource, probe: Probe
) -> None:
    (root / "web.yaml").write_text(manifest(instance_doc("web"), instance_doc("api")))
    (root / "other.yaml").write_text(instance_doc("other"))
    await start_source()
    await probe.mode("api", "one")

    (root / "web.yaml").unlink()

    await probe.mode("web", None)
    await probe.mode("api", None)
    assert await get_or_none(probe.store, "other") is not None


async def test_remove_document_deletes_only_it(
    root: Path, start_source: StartSource, probe: Probe
) -> None:
    (root / "web.yaml").write_text(manifest(instance_doc("web"), instance_doc("api")))
    await start_source()
    kept = await probe.mode("web", "one")
    await probe.mode("api", "one")

    (root / "web.yaml").write_text(instance_doc("web"))

    await probe.mode("api", None)
    web = await get_or_none(probe.store, "web")
    assert web is not None and kept is not None
    assert web.metadata.uid == kept.metadata.uid
    assert probe.deletions("web") == []


async def test_syntax_error_keeps_state(
    root: Path, start_source: StartSource, probe: Probe, store: SqliteStore
) -> None:
    (root / "web.yaml").write_text(instance_doc("web"))
    source = await start_source()
    await probe.mode("web", "one")

    (root / "web.yaml").write_text("apiVersion: [unclosed\n" + instance_doc("gone"))
    (root / "other.yaml").write_text(instance_doc("other"))

    await probe.mode("other", "one")
    await eventually(lambda: _true(source.counters.invalid_files == 1), what="the error")
    assert await get_or_none(store, "web") is not None
    assert await get_or_none(store, "gone") is None
    events = await store.events.list(name_prefix="source.invalid")
    assert len(events) == 1
    assert events[0].details["file"] == str(root / "web.yaml")
    # The bracket opened on line 1 is never closed; the error points at where it opens.
    assert events[0].details["line"] == "1"
    assert str(root / "web.yaml") in events[0].message


async def test_invalid_field_reported_once(
    root: Path, start_source: StartSource, probe: Probe, store: SqliteStore, caplog
) -> None:
    source = await start_source()
    bad = instance_doc("web").replace("  image:", "  imagee:")
    (root / "web.yaml").write_text(bad)
    await eventually(lambda: _true(source.counters.invalid_files == 1), what="the error")

    # The same content again, a touch, and unrelated changes: none is a new error.
    (root / "web.yaml").write_text(bad)
    os.utime(root / "web.yaml")
    (root / "barrier.yaml").write_text(instance_doc("barrier"))
    await probe.mode("barrier", "one")
    await source.sync_all()

    assert source.counters.invalid_files == 1
    events = await store.events.list(name_prefix="source.invalid")
    assert len(events) == 1
    assert events[0].details["field"] == "spec.imagee"
    assert events[0].details["line"] == "7"
    logged = [r for r in caplog.records if r.getMessage().startswith("manifest file invalid")]
    assert len(logged) == 1


async def test_invalid_sets_and_clears_condition(
    root: Path, start_source: StartSource, probe: Probe, store: SqliteStore
) -> None:
    (root / "web.yaml").write_text(instance_doc("web"))
    await start_source()
    await probe.mode("web", "one")

    (root / "web.yaml").write_text(instance_doc("web", mode="two") + "  bogus: 1\n")

    async def condition_is(status: str) -> bool:
        web = await get_or_none(store, "web")
        condition = web.status.condition(SOURCE_SYNCED) if web is not None else None
        return condition is not None and condition.status == status

    await eventually(lambda: condition_is("False"), what="SourceSynced False")
    web = await get_or_none(store, "web")
    assert web is not None
    condition = web.status.condition(SOURCE_SYNCED)
    assert condition is not None
    assert condition.reason == "InvalidManifest"
    assert "bogus" in condition.message
    assert str(root / "web.yaml") in condition.message

    (root / "web.yaml").write_text(instance_doc("web", mode="three"))

    await probe.mode("web", "three")
    await eventually(lambda: condition_is("True"), what="SourceSynced True")
    applied = await store.events.list(name_prefix="source.applied")
    assert any("valid again" in event.message for event in applied)


async def test_atomic_rename_save(root: Path, start_source: StartSource, probe: Probe) -> None:
    (root / "web.yaml").write_text(instance_doc("web"))
    await start_source()
    before = await probe.mode("web", "one")

    for round_ in range(5):
        temporary = root / f".web.yaml.{round_}.tmp"
        temporary.write_text(instance_doc("web", mode=f"save-{round_}"))
        os.replace(temporary, root / "web.yaml")

    after = await probe.mode("web", "save-4")
    assert before is not None and after is not None
    assert after.metadata.uid == before.metadata.uid
    assert probe.deletions("web") == []


async def test_vim_style_save(root: Path, start_source: StartSource, probe: Probe) -> None:
    (root / "web.yaml").write_text(instance_doc("web"))
    (root / ".web.yaml.swp").write_bytes(b"b0VIM 9.0")
    await start_source()
    before = await probe.mode("web", "one")

    _vim_save(root / "web.yaml", instance_doc("web", mode="two"))

    after = await probe.mode("web", "two")
    assert before is not None and after is not None
    assert after.metadata.uid == before.metadata.uid
    assert probe.deletions("web") == []


async def test_missing_file_waits_for_new_one(
    root: Path, start_source: StartSource, probe: Probe
) -> None:
    (root / "web.yaml").write_text(instance_doc("web"))
    source = await start_source()
    before = await probe.mode("web", "one")

    # The slow half of a vim-style save: the file is gone for a while, then comes back.
    os.rename(root / "web.yaml", root / "web.yaml~")
    await eventually(lambda: _true(source.counters.deferrals == 1), what="the deferral")
    (root / "web.yaml").write_text(instance_doc("web", mode="two"))
    (root / "web.yaml~").unlink()

    after = await probe.mode("web", "two")
    await eventually(lambda: _true(source.pending_timers == 0), what="the settle recheck")
    assert before is not None and after is not None
    assert after.metadata.uid == before.metadata.uid
    assert probe.deletions("web") == []


async def test_empty_then_full_write_keeps_instance(
    root: Path, start_source: StartSource, probe: Probe
) -> None:
    (root / "web.yaml").write_text(instance_doc("web"))
    source = await start_source()
    before = await probe.mode("web", "one")

    (root / "web.yaml").write_text("")
    await eventually(lambda: _true(source.counters.deferrals == 1), what="the deferral")
    (root / "web.yaml").write_text(instance_doc("web", mode="two"))

    after = await probe.mode("web", "two")
    await eventually(lambda: _true(source.pending_timers == 0), what="the settle recheck")
    assert await get_or_none(probe.store, "web") is not None
    assert before is not None and after is not None
    assert after.metadata.uid == before.metadata.uid
    assert probe.deletions("web") == []


async def test_empty_file_deletes_after_settle(
    root: Path, start_source: StartSource, probe: Probe
) -> None:
    (root / "web.yaml").write_text(instance_doc("web"))
    source = await start_source()
    await probe.mode("web", "one")

    (root / "web.yaml").write_text("")

    await probe.mode("web", None)
    assert source.counters.deferrals == 1


async def test_comment_only_file_deletes_at_once(
    root: Path, start_source: StartSource, probe: Probe
) -> None:
    (root / "web.yaml").write_text(instance_doc("web"))
    source = await start_source()
    await probe.mode("web", "one")

    (root / "web.yaml").write_text("# nothing here any more\n")

    await probe.mode("web", None)
    assert source.counters.deferrals == 0


async def test_configmap_data_swap(
    root: Path, start_source: StartSource, probe: Probe, store: SqliteStore
) -> None:
    _configmap_write(root, "..2026_12_04_10_00_00.1", {"web.yaml": instance_doc("web")})
    os.symlink("..data/web.yaml", root / "web.yaml")
    await start_source()
    before = await probe.mode("web", "one")
    assert source_of(before) == f"file:{root / 'web.yaml'}"

    # An update of the ConfigMap that changes web.yaml and adds api.yaml.
    _configmap_write(
        root,
        "..2026_12_04_10_05_00.2",
        {"web.yaml": instance_doc("web", mode="two"), "api.yaml": instance_doc("api")},
    )
    os.symlink("..data/api.yaml", root / "api.yaml")

    after = await probe.mode("web", "two")
    api = await probe.mode("api", "one")
    assert before is not None and after is not None
    assert after.metadata.uid == before.metadata.uid
    assert source_of(after) == f"file:{root / 'web.yaml'}"
    assert source_of(api) == f"file:{root / 'api.yaml'}"

    # An update that removes web.yaml: kubelet removes its visible symlink.
    _configmap_write(root, "..2026_12_04_10_10_00.3", {"api.yaml": instance_doc("api")})
    (root / "web.yaml").unlink()

    await probe.mode("web", None)
    assert probe.deletions("api") == []


async def test_configmap_content_only_swap_no_write(
    root: Path, start_source: StartSource, probe: Probe, store: SqliteStore
) -> None:
    _configmap_write(root, "..2026_12_04_10_00_00.1", {"web.yaml": instance_doc("web")})
    os.symlink("..data/web.yaml", root / "web.yaml")
    source = await start_source()
    before = await probe.mode("web", "one")
    rescans = source.counters.rescans

    # The same content in a new timestamped directory: a rescan, and no store write.
    _configmap_write(root, "..2026_12_04_10_05_00.2", {"web.yaml": instance_doc("web")})

    await eventually(lambda: _true(source.counters.rescans > rescans), what="a rescan")
    after = await get_or_none(store, "web")
    assert before is not None and after is not None
    assert after.metadata.resource_version == before.metadata.resource_version


async def test_symlinked_directory(
    tmp_path: Path, root: Path, start_source: StartSource, probe: Probe
) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "web.yaml").write_text(instance_doc("web"))
    os.symlink(outside, root / "team")
    await start_source()

    web = await probe.mode("web", "one")
    assert source_of(web) == f"file:{root / 'team' / 'web.yaml'}"

    (outside / "api.yaml").write_text(instance_doc("api"))
    (outside / "web.yaml").write_text(instance_doc("web", mode="two"))

    api = await probe.mode("api", "one")
    await probe.mode("web", "two")
    assert source_of(api) == f"file:{root / 'team' / 'api.yaml'}"


async def test_symlinked_directory_added_later(
    tmp_path: Path, root: Path, start_source: StartSource, probe: Probe
) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "web.yaml").write_text(instance_doc("web"))
    await start_source()

    os.symlink(outside, root / "team")
    await probe.mode("web", "one")
    (outside / "api.yaml").write_text(instance_doc("api"))

    api = await probe.mode("api", "one")
    assert source_of(api) == f"file:{root / 'team' / 'api.yaml'}"

    (root / "team").unlink()

    await probe.mode("web", None)
    await probe.mode("api", None)


async def test_subdirectory_added_and_removed(
    tmp_path: Path, root: Path, start_source: StartSource, probe: Probe
) -> None:
    await start_source()
    staging = tmp_path / "staging"
    staging.mkdir()
    (staging / "web.yaml").write_text(instance_doc("web"))

    os.rename(staging, root / "team")
    await probe.mode("web", "one")
    shutil.rmtree(root / "team")

    await probe.mode("web", None)


async def test_root_removed_then_recreated(
    root: Path, start_source: StartSource, probe: Probe, store: SqliteStore
) -> None:
    (root / "web.yaml").write_text(instance_doc("web"))
    source = await start_source()
    await probe.mode("web", "one")

    shutil.rmtree(root)

    await eventually(lambda: _true(not source.root_readable), what="the unreadable root")
    assert await get_or_none(store, "web") is not None

    os.mkdir(root)
    (root / "api.yaml").write_text(instance_doc("api"))

    await probe.mode("api", "one")
    await probe.mode("web", None)
    assert source.root_readable


async def test_duplicate_object_across_files(
    root: Path, start_source: StartSource, probe: Probe, store: SqliteStore
) -> None:
    (root / "a.yaml").write_text(instance_doc("web"))
    await start_source()
    first = await probe.mode("web", "one")

    (root / "b.yaml").write_text(manifest(instance_doc("api"), instance_doc("web", mode="two")))

    async def reported() -> bool:
        return bool(await store.events.list(name_prefix="source.invalid"))

    await eventually(reported, what="the duplicate error")
    (event,) = await store.events.list(name_prefix="source.invalid")
    assert str(root / "a.yaml") in event.message
    assert str(root / "b.yaml") in event.message
    web = await get_or_none(store, "web")
    assert source_of(web) == f"file:{root / 'a.yaml'}"
    assert web is not None and web.spec.env["MODE"] == "one"
    assert await get_or_none(store, "api") is None

    # Once a.yaml lets go of web, b.yaml takes it over without a delete.
    (root / "a.yaml").write_text("# moved to b.yaml\n")

    after = await probe.mode("web", "two")
    assert source_of(after) == f"file:{root / 'b.yaml'}"
    assert first is not None and after is not None
    assert after.metadata.uid == first.metadata.uid
    assert probe.deletions("web") == []
    await probe.mode("api", "one")


async def test_move_object_between_files(
    root: Path, start_source: StartSource, probe: Probe
) -> None:
    (root / "a.yaml").write_text(manifest(instance_doc("web"), instance_doc("api")))
    (root / "b.yaml").write_text(instance_doc("other"))
    await start_source()
    before = await probe.mode("web", "one")

    # One atomic step on each file, in the order that first adds then removes.
    staged = root / ".b.yaml.new"
    staged.write_text(manifest(instance_doc("other"), instance_doc("web")))
    staged_a = root / ".a.yaml.new"
    staged_a.write_text(instance_doc("api"))
    os.replace(staged, root / "b.yaml")
    os.replace(staged_a, root / "a.yaml")

    async def moved() -> bool:
        return source_of(await get_or_none(probe.store, "web")) == f"file:{root / 'b.yaml'}"

    await eventually(moved, what="web owned by b.yaml")
    after = await get_or_none(probe.store, "web")
    assert before is not None and after is not None
    assert after.metadata.uid == before.metadata.uid
    assert probe.deletions("web") == []


async def test_edit_reads_only_changed_file(
    root: Path, start_source: StartSource, probe: Probe
) -> None:
    for index in range(40):
        (root / f"app-{index}.yaml").write_text(instance_doc(f"app-{index}"))
    source = await start_source()
    await probe.mode("app-39", "one")
    await eventually(lambda: _true(source.pending_timers == 0), what="the catch-up rescan")
    reads, rescans = source.counters.files_read, source.counters.rescans

    staged = root / ".app-7.yaml.tmp"
    staged.write_text(instance_doc("app-7", mode="two"))
    os.replace(staged, root / "app-7.yaml")

    await probe.mode("app-7", "two")
    assert source.counters.files_read == reads + 1
    assert source.counters.rescans == rescans


async def test_deleted_instance_applied_again(
    root: Path, start_source: StartSource, probe: Probe, store: SqliteStore
) -> None:
    (root / "web.yaml").write_text(instance_doc("web"))
    await start_source()
    before = await probe.mode("web", "one")
    assert before is not None

    await store.delete("Instance", "default", "web")

    async def recreated() -> bool:
        web = await get_or_none(store, "web")
        return web is not None and web.metadata.uid != before.metadata.uid

    await eventually(recreated, what="web created again from its file")
    assert source_of(await get_or_none(store, "web")) == f"file:{root / 'web.yaml'}"


async def test_temporary_files_ignored(
    root: Path, start_source: StartSource, probe: Probe, store: SqliteStore
) -> None:
    source = await start_source()
    names = [
        "web.yaml~",
        ".web.yaml.swp",
        ".#web.yaml",
        "#web.yaml#",
        "4913",
        "web.yaml.tmp",
        "web.yaml.part",
        "web.yaml.bak",
        ".hidden.yaml",
        "notes.txt",
    ]
    for index, name in enumerate(names):
        (root / name).write_text(instance_doc(f"temp-{index}"))
    (root / ".hidden").mkdir()
    (root / ".hidden" / "web.yaml").write_text(instance_doc("hidden"))
    (root / "barrier.yaml").write_text(instance_doc("barrier"))

    await probe.mode("barrier", "one")
    await source.sync_all()

    listing = await store.list("Instance")
    assert [item.metadata.name for item in listing.items] == ["barrier"]


def _vim_save(path: Path, content: str) -> None:
    """Save the way vim does with 'backupcopy' off: probe that the directory is writable,
    rename the original to the backup name, write the new file (created empty, then filled),
    remove the backup."""
    probe = path.parent / "4913"
    probe.write_text("")
    probe.unlink()
    backup = path.with_name(path.name + "~")
    os.rename(path, backup)
    with open(path, "w") as new:
        new.flush()
        os.fsync(new.fileno())
        new.write(content)
    backup.unlink()


async def _true(value: bool) -> bool:
    return value


def _configmap_write(root: Path, timestamp: str, files: dict[str, str]) -> None:
    """Publish ``files`` the way kubelet updates a ConfigMap volume: a new timestamped
    directory, a new ``..data_tmp`` symlink renamed over ``..data``, the old directory removed."""
    directory = root / timestamp
    directory.mkdir()
    for name, content in files.items():
        (directory / name).write_text(content)
    old = os.readlink(root / "..data") if (root / "..data").is_symlink() else None
    os.symlink(timestamp, root / "..data_tmp")
    os.rename(root / "..data_tmp", root / "..data")
    if old is not None:
        shutil.rmtree(root / old)
