"""GitSource syncs against real local repositories: commits that add, edit and remove
instances, force-pushes, broken manifests, unreachable remotes, empty paths, ownership."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import pytest

from agentic_sandbox.crds.gitsource import GitSource
from agentic_sandbox.crds.validation import validate_resource
from agentic_sandbox.sources.git_plan import git_source_id
from agentic_sandbox.sources.git_sources import GitSources
from agentic_sandbox.sources.status import SOURCE_SYNCED
from agentic_sandbox.store.apply import apply
from agentic_sandbox.store.sqlite import SqliteStore
from tests.sources.git_support import GitDaemon, Repository, free_port, gitsource_doc
from tests.sources.support import (
    StartSource,
    eventually,
    get_or_none,
    instance_doc,
    manifest,
    source_of,
)
from tests.sources.test_sync import resource


@pytest.fixture
def repo(tmp_path: Path) -> Repository:
    return Repository(tmp_path / "git")


@pytest.fixture
async def sources(store: SqliteStore, tmp_path: Path) -> AsyncIterator[GitSources]:
    running = GitSources(
        store=store, event_log=store.events, cache_root=tmp_path / "cache", retry_initial=0.2
    )
    task = asyncio.create_task(running.run())
    await asyncio.wait_for(running.started.wait(), 10)
    yield running
    await running.stop(5)
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


@pytest.fixture
def daemon(repo: Repository) -> Iterator[GitDaemon]:
    served = GitDaemon(repo.root)
    served.start()
    yield served
    served.stop()


async def create_source(store: SqliteStore, url: str, name: str = "fleet", **spec: object) -> None:
    source = validate_resource(gitsource_doc(name, url, **spec))
    await store.create(source)


async def read_source(store: SqliteStore, name: str = "fleet") -> GitSource:
    source = await store.get("GitSource", "default", name)
    assert isinstance(source, GitSource)
    return source


async def wait_source(
    store: SqliteStore, check: Callable[[GitSource], bool], *, what: str, name: str = "fleet"
) -> GitSource:
    found: list[GitSource] = []

    async def matches() -> bool:
        source = await read_source(store, name)
        found[:] = [source]
        return check(source)

    await eventually(matches, what=what)
    return found[0]


def ready_reason(source: GitSource) -> str:
    condition = source.status.condition("Ready")
    return condition.reason if condition else ""


async def wait_applied(store: SqliteStore, commit: str, name: str = "fleet") -> GitSource:
    return await wait_source(
        store,
        lambda source: source.status.last_applied_commit == commit,
        what=f"commit {commit[:12]} applied",
        name=name,
    )


async def instance_names(store: SqliteStore) -> list[str]:
    listing = await store.list("Instance")
    return sorted(item.metadata.name for item in listing.items)


async def test_commits_add_edit_remove(
    store: SqliteStore, repo: Repository, sources: GitSources
) -> None:
    repo.write("apps/web.yaml", instance_doc("web"))
    repo.write("apps/api.yaml", instance_doc("api"))
    first = repo.commit("add web and api")
    await create_source(store, repo.url)

    source = await wait_applied(store, first)
    assert await instance_names(store) == ["api", "web"]
    assert ready_reason(source) == "Synced"
    assert [entry.name for entry in source.status.inventory] == ["api", "web"]
    web = await get_or_none(store, "web")
    assert source_of(web) == git_source_id("default", "fleet", "apps/web.yaml")

    repo.write("apps/web.yaml", instance_doc("web", mode="two"))
    repo.remove("apps/api.yaml")
    second = repo.commit("edit web, remove api")
    await sources.request_sync("default", "fleet")

    source = await wait_applied(store, second)
    assert await instance_names(store) == ["web"]
    web = await get_or_none(store, "web")
    assert web is not None and web.spec.env["MODE"] == "two"
    pruned = await store.events.list(name_prefix="source.pruned")
    assert [event.instance for event in pruned] == ["default/api"]


async def test_force_push_followed(
    store: SqliteStore, repo: Repository, sources: GitSources
) -> None:
    repo.write("apps/web.yaml", instance_doc("web"))
    base = repo.commit("web")
    repo.write("apps/api.yaml", instance_doc("api"))
    ahead = repo.commit("api")
    await create_source(store, repo.url)
    await wait_applied(store, ahead)

    repo.reset_hard(base)
    repo.write("apps/other.yaml", instance_doc("other"))
    rewritten = repo.commit("other instead of api", push=False)
    repo.push(force=True)
    await sources.request_sync("default", "fleet")

    await wait_applied(store, rewritten)
    assert await instance_names(store) == ["other", "web"]


async def test_broken_manifest_keeps_its_objects(
    store: SqliteStore, repo: Repository, sources: GitSources
) -> None:
    repo.write("apps/web.yaml", instance_doc("web"))
    repo.write("apps/api.yaml", instance_doc("api"))
    first = repo.commit("web and api")
    await create_source(store, repo.url)
    await wait_applied(store, first)

    repo.write("apps/web.yaml", instance_doc("web").replace("image: busybox:1.36", "image: 7"))
    repo.write("apps/web.yaml", instance_doc("web") + "  runtime: dockr\n")
    repo.write("apps/api.yaml", instance_doc("api", mode="two"))
    repo.write("apps/new.yaml", instance_doc("new"))
    broken = repo.commit("break web, edit api, add new")
    await sources.request_sync("default", "fleet")

    source = await wait_applied(store, broken)
    assert await instance_names(store) == ["api", "new", "web"]
    api = await get_or_none(store, "api")
    assert api is not None and api.spec.env["MODE"] == "two"
    assert ready_reason(source) == "InvalidManifests"
    [issue] = source.status.manifest_errors
    assert issue.file == "apps/web.yaml"
    assert issue.line == 10
    assert issue.field == "spec.runtime"
    assert "dockr" in issue.message
    invalid = await store.events.list(name_prefix="source.invalid")
    assert [event.details["file"] for event in invalid] == ["apps/web.yaml"]
    web = await get_or_none(store, "web")
    assert web is not None
    condition = web.status.condition(SOURCE_SYNCED)
    assert condition is not None and condition.status == "False"


async def test_unreachable_remote_deletes_nothing(
    store: SqliteStore, repo: Repository, sources: GitSources
) -> None:
    repo.write("apps/web.yaml", instance_doc("web"))
    first = repo.commit("web")
    await create_source(store, repo.url)
    await wait_applied(store, first)

    unreachable = f"git://127.0.0.1:{free_port()}/origin.git"
    source = await read_source(store)
    source.spec.url = unreachable
    await store.update(source)

    source = await wait_source(
        store, lambda item: ready_reason(item) == "FetchFailed", what="fetch failure"
    )
    assert await instance_names(store) == ["web"]
    assert source.status.last_error is not None
    assert "Connection refused" in source.status.last_error
    assert [entry.name for entry in source.status.inventory] == ["web"]
    failed = await store.events.list(name_prefix="source.fetch_failed")
    assert len(failed) == 1


async def test_empty_path_guarded(
    store: SqliteStore, repo: Repository, sources: GitSources
) -> None:
    repo.write("apps/web.yaml", instance_doc("web"))
    first = repo.commit("web")
    await create_source(store, repo.url)
    await wait_applied(store, first)

    repo.remove("apps/web.yaml")
    repo.write("README", "nothing here\n")
    emptied = repo.commit("empty the path")
    await sources.request_sync("default", "fleet")

    source = await wait_source(
        store, lambda item: item.status.last_fetched_commit == emptied, what="empty commit"
    )
    assert ready_reason(source) == "EmptyPath"
    assert await instance_names(store) == ["web"]
    stalled = source.status.condition("Stalled")
    assert stalled is not None and stalled.status == "True"

    source.spec.allow_empty = True
    await store.update(source)
    await wait_applied(store, emptied)
    assert await instance_names(store) == []


async def test_deleted_branch_then_recreated(
    store: SqliteStore, repo: Repository, sources: GitSources
) -> None:
    repo.write("apps/web.yaml", instance_doc("web"))
    first = repo.commit("web")
    await create_source(store, repo.url)
    await wait_applied(store, first)

    repo.delete_branch()
    await sources.request_sync("default", "fleet")
    source = await wait_source(
        store, lambda item: ready_reason(item) == "FetchFailed", what="missing branch"
    )
    assert "couldn't find remote ref" in (source.status.last_error or "")
    assert await instance_names(store) == ["web"]

    repo.write("apps/api.yaml", instance_doc("api"))
    again = repo.commit("branch is back with api")
    await wait_applied(store, again)
    assert await instance_names(store) == ["api", "web"]


async def test_stale_lock_healed(
    store: SqliteStore, repo: Repository, sources: GitSources, tmp_path: Path
) -> None:
    repo.write("apps/web.yaml", instance_doc("web"))
    first = repo.commit("web")
    await create_source(store, repo.url)
    await wait_applied(store, first)

    git_dir = tmp_path / "cache" / "default" / "fleet" / "repo.git"
    (git_dir / "index.lock").write_text("")
    (git_dir / "refs" / "sync" / "head.lock").write_text("")
    repo.write("apps/api.yaml", instance_doc("api"))
    second = repo.commit("api")
    await sources.request_sync("default", "fleet")

    await wait_applied(store, second)
    assert not (git_dir / "index.lock").exists()


async def test_corrupt_cache_cloned_again(
    store: SqliteStore, repo: Repository, sources: GitSources, tmp_path: Path
) -> None:
    repo.write("apps/web.yaml", instance_doc("web"))
    first = repo.commit("web")
    await create_source(store, repo.url)
    await wait_applied(store, first)

    git_dir = tmp_path / "cache" / "default" / "fleet" / "repo.git"
    (git_dir / "config").write_text("[core\n")
    repo.write("apps/api.yaml", instance_doc("api"))
    second = repo.commit("api")
    await sources.request_sync("default", "fleet")

    await wait_applied(store, second)
    assert await instance_names(store) == ["api", "web"]


async def test_git_daemon_url(
    store: SqliteStore, repo: Repository, daemon: GitDaemon, sources: GitSources
) -> None:
    repo.write("apps/web.yaml", instance_doc("web"))
    first = repo.commit("web")
    await create_source(store, daemon.url(repo.remote))

    await wait_applied(store, first)
    assert await instance_names(store) == ["web"]


async def test_interval_timer_syncs(
    store: SqliteStore, repo: Repository, sources: GitSources
) -> None:
    repo.write("apps/web.yaml", instance_doc("web"))
    first = repo.commit("web")
    await create_source(store, repo.url, interval="1s")
    await wait_applied(store, first)

    repo.write("apps/api.yaml", instance_doc("api"))
    second = repo.commit("api")

    await wait_applied(store, second)


async def test_suspended_source_does_nothing(
    store: SqliteStore, repo: Repository, sources: GitSources
) -> None:
    repo.write("apps/web.yaml", instance_doc("web"))
    repo.commit("web")
    await create_source(store, repo.url, suspend=True)

    source = await wait_source(
        store, lambda item: ready_reason(item) == "Suspended", what="suspended status"
    )
    assert source.status.last_fetched_commit is None
    assert await instance_names(store) == []


async def test_drift_reverted_with_event(
    store: SqliteStore, repo: Repository, sources: GitSources
) -> None:
    repo.write("apps/web.yaml", instance_doc("web"))
    first = repo.commit("web")
    await create_source(store, repo.url)
    await wait_applied(store, first)

    await apply(store, resource("web", mode="edited"), source="api")
    await sources.request_sync("default", "fleet")

    async def reverted() -> bool:
        web = await get_or_none(store, "web")
        return web is not None and web.spec.env["MODE"] == "one"

    await eventually(reverted, what="web reverted to the commit")
    web = await get_or_none(store, "web")
    assert source_of(web) == git_source_id("default", "fleet", "apps/web.yaml")
    [drift] = await store.events.list(name_prefix="source.drift_reverted")
    assert drift.instance == "default/web"
    assert drift.details["previousOwner"] == "api"


async def test_object_owned_by_api_rejected(
    store: SqliteStore, repo: Repository, sources: GitSources
) -> None:
    await apply(store, resource("web", mode="api"), source="api")
    repo.write("apps/web.yaml", instance_doc("web"))
    repo.write("apps/other.yaml", instance_doc("other"))
    first = repo.commit("web and other")
    await create_source(store, repo.url)

    source = await wait_applied(store, first)
    assert ready_reason(source) == "OwnershipConflict"
    [conflict] = source.status.conflicts
    assert (conflict.name, conflict.owner, conflict.file) == ("web", "api", "apps/web.yaml")
    web = await get_or_none(store, "web")
    assert source_of(web) == "api"
    assert web is not None and web.spec.env["MODE"] == "api"
    assert [entry.name for entry in source.status.inventory] == ["other"]


async def test_directory_and_git_never_flap(
    store: SqliteStore,
    repo: Repository,
    sources: GitSources,
    root: Path,
    start_source: StartSource,
) -> None:
    repo.write("apps/web.yaml", instance_doc("web", mode="git"))
    first = repo.commit("web from git")
    await create_source(store, repo.url)
    await wait_applied(store, first)

    path = root / "web.yaml"
    path.write_text(manifest(instance_doc("web", mode="dir"), instance_doc("mine")))
    directory = await start_source()

    async def directory_rejected() -> bool:
        events = await store.events.list(name_prefix="source.invalid")
        return any(event.source == f"file:{path}" for event in events)

    await eventually(directory_rejected, what="the directory file rejected")
    before = await get_or_none(store, "web")
    assert before is not None
    for _ in range(3):
        await directory.sync_all()
        await sources.request_sync("default", "fleet")
    await wait_source(store, lambda item: ready_reason(item) == "Synced", what="git synced")

    after = await get_or_none(store, "web")
    assert after is not None
    assert after.metadata.resource_version == before.metadata.resource_version
    assert after.spec.env["MODE"] == "git"
    assert source_of(await get_or_none(store, "mine")) == f"file:{path}"
    [event] = [e for e in await store.events.list(name_prefix="source.invalid")]
    assert "managed by gitsource:default/fleet:apps/web.yaml" in event.message


async def test_git_rejects_directory_object(
    store: SqliteStore, repo: Repository, sources: GitSources, root: Path, start_source: StartSource
) -> None:
    path = root / "web.yaml"
    path.write_text(instance_doc("web", mode="dir"))
    await start_source()
    await eventually(lambda: _has_mode(store, "web", "dir"), what="web applied from the directory")
    repo.write("apps/web.yaml", instance_doc("web", mode="git"))
    first = repo.commit("web from git")
    await create_source(store, repo.url)

    source = await wait_applied(store, first)
    assert ready_reason(source) == "OwnershipConflict"
    assert source.status.conflicts[0].owner == f"file:{path}"
    rejected = await store.events.list(name_prefix="source.rejected")
    assert len(rejected) == 1
    assert await _has_mode(store, "web", "dir")


async def _has_mode(store: SqliteStore, name: str, mode: str) -> bool:
    item = await get_or_none(store, name)
    return item is not None and item.spec.env.get("MODE") == mode


async def test_preview_lists_changes(
    store: SqliteStore, repo: Repository, sources: GitSources
) -> None:
    repo.write("apps/web.yaml", instance_doc("web"))
    repo.write("apps/api.yaml", instance_doc("api"))
    first = repo.commit("web and api")
    await create_source(store, repo.url)
    await wait_applied(store, first)

    repo.write("apps/web.yaml", instance_doc("web", mode="two"))
    repo.remove("apps/api.yaml")
    repo.write("apps/new.yaml", instance_doc("new"))
    second = repo.commit("edit, remove, add")
    preview = await sources.preview("default", "fleet")

    assert preview["commit"] == second
    actions = {change["name"]: change["action"] for change in preview["changes"]}
    assert actions == {"web": "update", "new": "create", "api": "prune"}
    assert await instance_names(store) == ["api", "web"]


async def test_deleted_source_cache_removed(
    store: SqliteStore, repo: Repository, sources: GitSources, tmp_path: Path
) -> None:
    repo.write("apps/web.yaml", instance_doc("web"))
    first = repo.commit("add web")
    await create_source(store, repo.url)
    await wait_applied(store, first)
    cache = tmp_path / "cache" / "default" / "fleet"
    assert cache.is_dir()

    await store.delete("GitSource", "default", "fleet")

    async def cache_gone() -> bool:
        return not cache.exists()

    await eventually(cache_gone, what="the deleted source's cache removed")
    # Its objects stay: deleting a source is not a prune.
    assert await instance_names(store) == ["web"]
