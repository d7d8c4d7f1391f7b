"""The loadout routes over a real SqliteStore and a copy of the repository's loadout files."""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import jsonschema_rs
import pytest

from agentic_sandbox.api.app import create_app
from agentic_sandbox.api.openapi import build_openapi
from agentic_sandbox.controller.loadouts import LoadoutCatalog
from agentic_sandbox.crds.loadout import Loadout
from agentic_sandbox.crds.meta import API_VERSION, SOURCE_ANNOTATION
from agentic_sandbox.store.sqlite import SqliteStore
from tests.api.support import BASE_URL, TOKEN, assert_problem

REPO_LOADOUTS = Path(__file__).resolve().parents[2] / "images" / "vm" / "loadouts"
EXAMPLE_LOADOUTS = ("base.yaml", "python-dev.yaml", "agent-python.yaml")
PATH = "/api/v1/loadouts"


def loadout(name: str, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": API_VERSION,
        "kind": "Loadout",
        "metadata": {"name": name},
        "spec": spec,
    }


def validator(component: str) -> jsonschema_rs.Draft202012Validator:
    document = build_openapi()
    root = {"$ref": f"#/components/schemas/{component}", "components": document["components"]}
    return jsonschema_rs.Draft202012Validator(root)


@pytest.fixture
def directory(tmp_path: Path) -> Path:
    copy = tmp_path / "loadouts"
    # The three example loadouts that extend each other; the test guests' loadouts stay out.
    copy.mkdir()
    for example in EXAMPLE_LOADOUTS:
        shutil.copy(REPO_LOADOUTS / example, copy / example)
    return copy


@pytest.fixture
async def http(store: SqliteStore, directory: Path) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(
        store=store,
        event_log=store.events,
        token=TOKEN,
        loadouts=LoadoutCatalog(store, directory),
    )
    transport = httpx.ASGITransport(app=app)
    headers = {"Authorization": f"Bearer {TOKEN}"}
    async with httpx.AsyncClient(transport=transport, base_url=BASE_URL, headers=headers) as client:
        yield client


async def test_list_merged_summaries(http: httpx.AsyncClient, directory: Path) -> None:
    response = await http.get(PATH)

    assert response.status_code == 200
    body = response.json()
    validator("LoadoutCatalog").validate(body)
    items = {item["name"]: item for item in body["items"]}
    assert sorted(items) == ["agent-python", "debian-base", "python-dev"]
    agent = items["agent-python"]
    assert agent["source"] == str(directory / "agent-python.yaml")
    assert agent["extends"] == ["debian-base", "python-dev"]
    assert agent["cpus"] == 2
    assert agent["memory"] == "2Gi"
    assert agent["disk"] == "10Gi"
    assert agent["baseImage"].endswith("debian-12-genericcloud-amd64.qcow2")
    assert agent["kernel"] is None
    assert agent["error"] is None


async def test_get_resolved_detail(http: httpx.AsyncClient) -> None:
    response = await http.get(f"{PATH}/agent-python")

    assert response.status_code == 200
    body = response.json()
    validator("LoadoutDetail").validate(body)
    assert body["loadout"]["spec"]["env"] == {"DEBUG": None, "AGENT_WORKDIR": "/workspace"}
    resolved = body["resolved"]
    assert resolved["chain"] == ["debian-base", "python-dev", "agent-python"]
    assert resolved["spec"]["runcmd"] == [
        "mkdir -p /workspace",
        ["chown", "10001:10001", "/workspace"],
        "python3 -m venv /opt/agent-venv",
        ["/opt/agent-venv/bin/pip", "install", "--upgrade", "pip"],
    ]
    assert "DEBUG" not in resolved["spec"]["env"]
    assert resolved["setBy"]["runcmd"] == [
        "debian-base",
        "debian-base",
        "python-dev",
        "agent-python",
    ]
    assert resolved["unsetBy"] == {"env.DEBUG": "agent-python"}


async def test_get_unknown_is_404(http: httpx.AsyncClient) -> None:
    body = assert_problem(await http.get(f"{PATH}/ghost"), 404)

    assert "loadout 'ghost' not found" in body["detail"]


async def test_put_creates_store_override(http: httpx.AsyncClient, directory: Path) -> None:
    manifest = loadout("debian-base", baseImage="/images/custom.qcow2")

    created = await http.put(f"{PATH}/debian-base", json=manifest)
    again = await http.put(f"{PATH}/debian-base", json=manifest)
    detail = (await http.get(f"{PATH}/agent-python")).json()
    base = (await http.get(f"{PATH}/debian-base")).json()

    assert created.status_code == 201
    assert created.headers["Apply-Outcome"] == "created"
    assert created.headers["Location"] == f"{PATH}/debian-base?namespace=default"
    validator("Loadout").validate(created.json())
    assert created.json()["metadata"]["annotations"][SOURCE_ANNOTATION] == "api"
    assert again.status_code == 200
    assert again.headers["Apply-Outcome"] == "unchanged"
    assert detail["resolved"]["spec"]["baseImage"] == "/images/custom.qcow2"
    assert base["source"] == "store"
    assert base["overrides"] == str(directory / "base.yaml")


async def test_post_creates_then_conflicts(http: httpx.AsyncClient, store: SqliteStore) -> None:
    first = await http.post(PATH, json=loadout("tools", packages=["jq"]))
    second = await http.post(PATH, json=loadout("tools", packages=["jq"]))

    assert first.status_code == 201
    stored = await store.get("Loadout", "default", "tools")
    assert isinstance(stored, Loadout)
    assert stored.spec.packages == ["jq"]
    assert_problem(second, 409)


async def test_put_keeps_explicit_null(http: httpx.AsyncClient) -> None:
    manifest = loadout("quiet", extends=["debian-base"], env={"DEBUG": None})

    await http.put(f"{PATH}/quiet", json=manifest)
    body = (await http.get(f"{PATH}/quiet")).json()

    assert body["loadout"]["spec"]["env"] == {"DEBUG": None}
    assert "DEBUG" not in body["resolved"]["spec"]["env"]


async def test_broken_chain_reported(http: httpx.AsyncClient) -> None:
    await http.put(f"{PATH}/orphan", json=loadout("orphan", extends=["ghost"]))

    detail = (await http.get(f"{PATH}/orphan")).json()
    listed = {item["name"]: item for item in (await http.get(PATH)).json()["items"]}

    validator("LoadoutDetail").validate(detail)
    assert detail["resolved"] is None
    assert "orphan -> ghost" in detail["error"]
    assert listed["orphan"]["cpus"] is None
    assert "'ghost', which is not found" in listed["orphan"]["error"]


async def test_invalid_file_listed(http: httpx.AsyncClient, directory: Path) -> None:
    (directory / "broken.yaml").write_text("kind: Loadout\nmetadata: [\n")

    body = (await http.get(PATH)).json()

    validator("LoadoutCatalog").validate(body)
    items = {item["name"]: item for item in body["items"]}
    assert len(items) == 4
    assert items["broken"]["source"] == str(directory / "broken.yaml")
    assert items["broken"]["error"].startswith(f"{directory / 'broken.yaml'}:")


async def test_delete_store_loadout(http: httpx.AsyncClient, store: SqliteStore) -> None:
    await http.put(f"{PATH}/tools", json=loadout("tools"))

    response = await http.delete(f"{PATH}/tools")
    listing = await store.list("Loadout")

    assert response.status_code == 200
    assert response.json()["metadata"]["name"] == "tools"
    assert listing.items == []


async def test_delete_file_loadout_is_404(http: httpx.AsyncClient, directory: Path) -> None:
    body = assert_problem(await http.delete(f"{PATH}/python-dev"), 404)

    assert str(directory / "python-dev.yaml") in body["detail"]
    assert (directory / "python-dev.yaml").exists()


async def test_delete_precondition(http: httpx.AsyncClient) -> None:
    created = (await http.put(f"{PATH}/tools", json=loadout("tools"))).json()
    version = created["metadata"]["resourceVersion"]

    stale = await http.delete(f"{PATH}/tools", params={"resourceVersion": "999"})
    current = await http.delete(f"{PATH}/tools", params={"resourceVersion": version})

    assert_problem(stale, 409)
    assert current.status_code == 200


async def test_put_precondition(http: httpx.AsyncClient) -> None:
    await http.put(f"{PATH}/tools", json=loadout("tools"))
    stale = loadout("tools", packages=["jq"])
    stale["metadata"]["resourceVersion"] = "999"

    assert_problem(await http.put(f"{PATH}/tools", json=stale), 409)


async def test_write_of_other_kind_rejected(http: httpx.AsyncClient) -> None:
    body = {**loadout("web"), "kind": "Instance"}

    problem = assert_problem(await http.post(PATH, json=body), 422)

    assert problem["errors"][0]["field"] == "kind"


async def test_put_name_mismatch_rejected(http: httpx.AsyncClient) -> None:
    problem = assert_problem(await http.put(f"{PATH}/other", json=loadout("tools")), 422)

    assert "URL names default/other" in problem["detail"]


async def test_invalid_spec_rejected(http: httpx.AsyncClient) -> None:
    problem = assert_problem(await http.post(PATH, json=loadout("bad", runcmd=[[]])), 422)

    assert problem["errors"][0]["field"].startswith("spec.runcmd")


async def test_dry_run_rejected(http: httpx.AsyncClient, store: SqliteStore) -> None:
    response = await http.post(PATH, params={"dryRun": "All"}, json=loadout("tools"))

    problem = assert_problem(response, 400)
    assert problem["errors"][0]["field"] == "dryRun"
    assert (await store.list("Loadout")).items == []


async def test_file_owned_resource_needs_takeover(
    http: httpx.AsyncClient, store: SqliteStore
) -> None:
    owned = Loadout.model_validate(loadout("tools"))
    owned.metadata.annotations[SOURCE_ANNOTATION] = "file:/srv/manifests/tools.yaml"
    await store.create(owned)

    refused = await http.put(f"{PATH}/tools", json=loadout("tools", packages=["jq"]))
    taken = await http.put(
        f"{PATH}/tools", params={"takeover": "true"}, json=loadout("tools", packages=["jq"])
    )
    refused_delete = await http.delete(f"{PATH}/tools", params={"takeover": "true"})

    assert "managed by file:/srv/manifests/tools.yaml" in assert_problem(refused, 409)["detail"]
    assert taken.status_code == 200
    assert taken.json()["metadata"]["annotations"][SOURCE_ANNOTATION] == "api"
    assert refused_delete.status_code == 200


async def test_store_only_without_catalog(client: httpx.AsyncClient) -> None:
    await client.put(f"{PATH}/tools", json=loadout("tools", packages=["jq"]))

    body = (await client.get(PATH)).json()

    assert [(item["name"], item["source"]) for item in body["items"]] == [("tools", "store")]


async def test_namespace_scopes_store_loadouts(http: httpx.AsyncClient) -> None:
    await http.put(f"{PATH}/tools", params={"namespace": "team"}, json=loadout("tools"))

    team = (await http.get(PATH, params={"namespace": "team"})).json()["items"]
    default = (await http.get(PATH)).json()["items"]

    assert "tools" in [item["name"] for item in team]
    assert "tools" not in [item["name"] for item in default]
