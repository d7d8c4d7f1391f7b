"""Full syncs driven directly (no watcher): startup pruning, invalid files and store failures."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from agentic_sandbox.crds.manifest import load_manifests
from agentic_sandbox.crds.meta import Resource
from agentic_sandbox.errors import StoreUnavailable
from agentic_sandbox.sources.directory import DirectorySource
from agentic_sandbox.sources.status import SOURCE_SYNCED
from agentic_sandbox.store.apply import apply
from agentic_sandbox.store.sqlite import SqliteStore
from tests.sources.support import eventually, get_or_none, instance_doc, manifest, source_of


def resource(name: str, mode: str = "one") -> Resource:
    return load_manifests(instance_doc(name, mode=mode), source="<test>")[0].resource


async def names(store: SqliteStore) -> list[str]:
    listing = await store.list("Instance")
    return sorted(item.metadata.name for item in listing.items)


async def test_startup_prunes_removed_files(tmp_path: Path, root: Path, store: SqliteStore) -> None:
    keep = root / "keep.yaml"
    keep.write_text(manifest(instance_doc("web"), instance_doc("api")))
    for name in ["web", "api", "dropped"]:
        await apply(store, resource(name), source=f"file:{keep}")
    await apply(store, resource("gone"), source=f"file:{root / 'gone.yaml'}")
    await apply(store, resource("elsewhere"), source=f"file:{tmp_path / 'other' / 'x.yaml'}")
    await apply(store, resource("from-api"), source="api")
    await apply(store, resource("no-source"))
    web_before = await get_or_none(store, "web")

    source = DirectorySource(root, store=store, event_log=store.events)
    await source.sync_all()
    await source.close()

    assert await names(store) == ["api", "elsewhere", "from-api", "no-source", "web"]
    web_after = await get_or_none(store, "web")
    assert web_before is not None and web_after is not None
    assert web_after.metadata.resource_version == web_before.metadata.resource_version
    pruned = await store.events.list(name_prefix="source.pruned")
    assert sorted(event.instance or "" for event in pruned) == ["default/dropped", "default/gone"]


async def test_startup_invalid_file_keeps_instances(root: Path, store: SqliteStore) -> None:
    path = root / "web.yaml"
    path.write_text("kind: Instance\nmetadata: {name: web\n")
    await apply(store, resource("web"), source=f"file:{path}")

    source = DirectorySource(root, store=store, event_log=store.events)
    await source.sync_all()
    await source.close()

    web = await get_or_none(store, "web")
    assert web is not None
    condition = web.status.condition(SOURCE_SYNCED)
    assert condition is not None
    assert condition.status == "False"
    assert condition.message.startswith(f"{path}:")


async def test_startup_missing_root_prunes_nothing(tmp_path: Path, store: SqliteStore) -> None:
    root = tmp_path / "unmounted"
    await apply(store, resource("web"), source=f"file:{root / 'web.yaml'}")

    source = DirectorySource(root, store=store, event_log=store.events)
    await source.sync_all()
    await source.close()

    assert await names(store) == ["web"]


async def test_sync_all_unchanged_writes_nothing(root: Path, store: SqliteStore) -> None:
    (root / "web.yaml").write_text(instance_doc("web"))
    source = DirectorySource(root, store=store, event_log=store.events)
    await source.sync_all()
    version = await store.current_resource_version()

    (root / "web.yaml").write_text(instance_doc("web"))  # same content, new mtime
    await source.sync_all()
    await source.close()

    assert await store.current_resource_version() == version
    assert source.counters.objects_created == 1
    assert source.counters.objects_updated == 0


async def test_sync_all_two_new_files_first_wins(root: Path, store: SqliteStore) -> None:
    (root / "a.yaml").write_text(instance_doc("web", mode="a"))
    (root / "b.yaml").write_text(instance_doc("web", mode="b"))
    source = DirectorySource(root, store=store, event_log=store.events)

    await source.sync_all()
    await source.close()

    web = await get_or_none(store, "web")
    assert source_of(web) == f"file:{root / 'a.yaml'}"
    (event,) = await store.events.list(name_prefix="source.invalid")
    assert event.details["file"] == str(root / "b.yaml")
    assert event.details["field"] == "metadata.name"


async def test_rejected_file_turned_invalid_settles(root: Path, store: SqliteStore) -> None:
    (root / "a.yaml").write_text(instance_doc("web"))
    (root / "b.yaml").write_text(instance_doc("web", mode="b"))
    source = DirectorySource(root, store=store, event_log=store.events)
    await source.sync_all()

    (root / "b.yaml").write_text("kind: [unclosed\n")
    (root / "a.yaml").write_text("# web is gone\n")
    await source.sync_all()

    assert await names(store) == []
    assert source.pending_timers == 0
    await source.close()


class FlakyStore:
    """A store whose first ``failures`` creates fail as if the database were unavailable."""

    def __init__(self, store: SqliteStore, failures: int) -> None:
        self._store = store
        self.failures = failures

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)

    async def create(self, obj: Resource) -> Resource:
        if self.failures:
            self.failures -= 1
            raise StoreUnavailable("database is locked")
        return await self._store.create(obj)


async def test_store_failure_retried(root: Path, store: SqliteStore) -> None:
    (root / "web.yaml").write_text(manifest(instance_doc("web"), instance_doc("api")))
    (root / "other.yaml").write_text(instance_doc("other"))
    flaky = FlakyStore(store, failures=1)
    source = DirectorySource(root, store=flaky, event_log=store.events)  # type: ignore[arg-type]

    await source.sync_all()

    # other.yaml sorts first and takes the failure; web.yaml still applies.
    assert source.counters.store_errors == 1
    assert source.pending_timers == 1
    assert await names(store) == ["api", "web"]

    async def applied() -> bool:
        return await names(store) == ["api", "other", "web"]

    await eventually(applied, what="the retry")
    await source.close()
