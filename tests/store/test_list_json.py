"""list_json: stored wire texts, filtered by namespace, labels and phase in SQL."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

from agentic_sandbox.crds.instance import Instance, Phase
from agentic_sandbox.store.sqlite import SqliteStore


async def make(store: SqliteStore, name: str, namespace: str = "default", **labels: str) -> None:
    body = {
        "metadata": {"name": name, "namespace": namespace, "labels": labels},
        "spec": {"image": "agentic/demo:dev"},
    }
    await store.create(Instance.model_validate(body))


async def test_list_json_matches_list(tmp_path: Path) -> None:
    async with SqliteStore(tmp_path / "state.db") as store:
        await make(store, "a", app="web")
        await make(store, "b", app="db")
        await make(store, "c", namespace="team", app="web")

        texts, version = await store.list_json("Instance")
        listing = await store.list("Instance")

        assert [json.loads(text) for text in texts] == [item.to_wire() for item in listing.items]
        assert version == listing.resource_version


async def test_list_json_filters(tmp_path: Path) -> None:
    async with SqliteStore(tmp_path / "state.db") as store:
        await make(store, "a", app="web", **{"example.com/tier": "one"})
        await make(store, "b", app="db")
        await make(store, "c", namespace="team", app="web")
        running = await store.get("Instance", "default", "b")
        assert isinstance(running, Instance)
        running.status.phase = Phase.RUNNING
        await store.update_status(running)

        def names(texts: Sequence[str]) -> list[str]:
            return [json.loads(text)["metadata"]["name"] for text in texts]

        by_label, _ = await store.list_json("Instance", labels={"app": "web"})
        by_prefixed_label, _ = await store.list_json("Instance", labels={"example.com/tier": "one"})
        by_namespace, _ = await store.list_json("Instance", namespace="team")
        by_phase, _ = await store.list_json("Instance", phase="Running")

        assert names(by_label) == ["a", "c"]
        assert names(by_prefixed_label) == ["a"]
        assert names(by_namespace) == ["c"]
        assert names(by_phase) == ["b"]
