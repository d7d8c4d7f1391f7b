"""sandboxctl get loadouts and describe loadout, against a real API server with loadout files."""

from __future__ import annotations

import asyncio
import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
import uvicorn

from agentic_sandbox.api.app import create_app
from agentic_sandbox.cli.loadouts import ORIGIN_COLUMN_MAX
from agentic_sandbox.cli.main import run_cli
from agentic_sandbox.cli.output import dump_yaml
from agentic_sandbox.controller.config import Settings
from agentic_sandbox.controller.loadouts import LoadoutCatalog
from agentic_sandbox.crds.loadout import Loadout
from agentic_sandbox.crds.meta import API_VERSION
from agentic_sandbox.store.sqlite import SqliteStore
from tests.cli.conftest import ApiServer
from tests.cli.support import Sandboxctl

REPO_LOADOUTS = Path(__file__).resolve().parents[2] / "images" / "vm" / "loadouts"
EXAMPLE_LOADOUTS = ("base.yaml", "python-dev.yaml", "agent-python.yaml")


class LoadoutServer(ApiServer):
    """An API server whose loadout catalog reads ``loadout_dir`` besides the store."""

    def __init__(self, state_dir: Path, loadout_dir: Path) -> None:
        super().__init__(state_dir)
        self.loadout_dir = loadout_dir

    async def _serve(self) -> None:
        async with SqliteStore(self.state_dir / "state.db") as store:
            app = create_app(
                store=store,
                event_log=store.events,
                token=self.token,
                loadouts=LoadoutCatalog(store, self.loadout_dir),
            )
            self._server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
            self.store = store
            self.loop = asyncio.get_running_loop()
            self._ready.set()
            await self._server.serve(sockets=[self._socket])

    def add_store_loadout(self, name: str, **spec: object) -> None:
        assert self.store is not None
        manifest = {
            "apiVersion": API_VERSION,
            "kind": "Loadout",
            "metadata": {"name": name},
            "spec": spec,
        }
        self.call(self.store.create(Loadout.model_validate(manifest)))


@pytest.fixture
def loadout_dir(tmp_path: Path) -> Path:
    copy = tmp_path / "loadouts"
    # The three example loadouts that extend each other; the test guests' loadouts stay out.
    copy.mkdir()
    for example in EXAMPLE_LOADOUTS:
        shutil.copy(REPO_LOADOUTS / example, copy / example)
    return copy


@pytest.fixture
def server_env(
    tmp_path: Path, loadout_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[LoadoutServer]:
    running = LoadoutServer(tmp_path / "state", loadout_dir)
    running.start()
    monkeypatch.setenv("SANDBOXCTL_SERVER", running.url)
    monkeypatch.setenv("AGENTIC_SANDBOX_STATE_DIR", str(running.state_dir))
    monkeypatch.delenv("SANDBOXCTL_TOKEN", raising=False)
    try:
        yield running
    finally:
        running.stop()


def rows(text: str) -> list[list[str]]:
    return [line.split() for line in text.splitlines()]


def test_get_loadouts_table(
    server_env: LoadoutServer, sandboxctl: Sandboxctl, loadout_dir: Path
) -> None:
    result = sandboxctl("get", "loadouts")

    assert result.code == 0, result.err
    table = rows(result.out)
    assert table[0] == ["NAME", "SOURCE", "EXTENDS", "CPUS", "MEMORY", "DISK", "IMAGE"]
    image = "/var/lib/agentic-sandbox/images/debian-12-genericcloud-amd64.qcow2"
    assert table[1] == [
        "agent-python",
        str(loadout_dir / "agent-python.yaml"),
        "debian-base,python-dev",
        "2",
        "2Gi",
        "10Gi",
        image,
    ]
    assert table[2] == [
        "debian-base",
        str(loadout_dir / "base.yaml"),
        "<none>",
        "1",
        "1Gi",
        "10Gi",
        image,
    ]
    assert table[3][0] == "python-dev"
    assert len(table) == 4


def test_get_loadouts_store_override(
    server_env: LoadoutServer, sandboxctl: Sandboxctl, loadout_dir: Path
) -> None:
    server_env.add_store_loadout("debian-base", baseImage="/images/custom.qcow2")

    result = sandboxctl("get", "lo")

    assert result.code == 0, result.err
    line = next(row for row in result.out.splitlines() if row.startswith("debian-base"))
    assert f"store (overrides {loadout_dir / 'base.yaml'})" in line
    # The resource replaces the file's loadout whole: no disk size, memory by default.
    assert line.split()[-4:] == ["1", "1Gi", "<none>", "/images/custom.qcow2"]


def test_get_loadouts_invalid_file(
    server_env: LoadoutServer, sandboxctl: Sandboxctl, loadout_dir: Path
) -> None:
    (loadout_dir / "broken.yaml").write_text("kind: Loadout\nmetadata: [\n")

    result = sandboxctl("get", "loadouts")

    assert result.code == 0, result.err
    broken = next(row for row in rows(result.out) if row[0] == "broken")
    assert broken[1:] == [str(loadout_dir / "broken.yaml"), "<none>"] + ["<invalid>"] * 4
    assert f"warning: loadout broken: {loadout_dir / 'broken.yaml'}:" in result.err


def test_get_loadouts_names_and_json(server_env: LoadoutServer, sandboxctl: Sandboxctl) -> None:
    names = sandboxctl("get", "loadouts", "-o", "name")
    listed = sandboxctl("get", "loadouts", "-o", "json")
    one = sandboxctl("get", "loadout", "python-dev", "-o", "yaml")

    assert names.out.splitlines() == [
        "loadout/agent-python",
        "loadout/debian-base",
        "loadout/python-dev",
    ]
    document = json.loads(listed.out)
    assert document["kind"] == "LoadoutCatalog"
    assert [item["name"] for item in document["items"]] == [
        "agent-python",
        "debian-base",
        "python-dev",
    ]
    assert one.code == 0, one.err
    assert "chain:\n  - debian-base\n  - python-dev\n" in one.out


def test_get_loadouts_rejects_all_namespaces(
    server_env: LoadoutServer, sandboxctl: Sandboxctl
) -> None:
    result = sandboxctl("get", "loadouts", "-A")

    assert result.code == 1
    assert "--all-namespaces does not apply to loadouts" in result.err


def test_get_unknown_loadout(server_env: LoadoutServer, sandboxctl: Sandboxctl) -> None:
    result = sandboxctl("get", "loadout", "ghost")

    assert result.code == 1
    assert "loadout 'ghost' not found" in result.err


def test_describe_loadout_merged(
    server_env: LoadoutServer, sandboxctl: Sandboxctl, loadout_dir: Path
) -> None:
    result = sandboxctl("describe", "loadout", "agent-python")

    assert result.code == 0, result.err
    out = result.out
    assert f"Source:   {loadout_dir / 'agent-python.yaml'}:3\n" in out
    assert "Chain:    debian-base -> python-dev -> agent-python\n" in out
    runcmd = [line.split("(from")[0].strip() for line in out.splitlines() if "  - " in line]
    assert runcmd[-4:] == [
        "- mkdir -p /workspace",
        '- ["chown", "10001:10001", "/workspace"]',
        "- python3 -m venv /opt/agent-venv",
        '- ["/opt/agent-venv/bin/pip", "install", "--upgrade", "pip"]',
    ]
    assert "(from agent-python)" in next(line for line in out.splitlines() if "cpus: 2" in line)
    assert "DEBUG" not in out.split("Unset:")[0]
    assert "env.DEBUG" in out.split("Unset:")[1]
    assert "by agent-python" in out.split("Unset:")[1]


def test_describe_loadout_origins_aligned(
    server_env: LoadoutServer, sandboxctl: Sandboxctl
) -> None:
    result = sandboxctl("describe", "lo", "python-dev")

    spec = result.out.split("Resolved Spec:\n")[1].split("Unset:")[0]
    short = [
        line
        for line in spec.splitlines()
        if "(from " in line and len(line.split("   (from ")[0].rstrip()) <= ORIGIN_COLUMN_MAX
    ]
    assert len(short) > 5
    assert len({line.index("(from ") for line in short}) == 1


def test_describe_broken_loadout(server_env: LoadoutServer, sandboxctl: Sandboxctl) -> None:
    server_env.add_store_loadout("orphan", extends=["ghost"])

    result = sandboxctl("describe", "loadout", "orphan")

    assert result.code == 0, result.err
    assert "Source:   store\n" in result.out
    assert "Error:" in result.out
    assert "orphan -> ghost" in result.out
    assert "Resolved Spec" not in result.out


def test_yaml_dump_keeps_list_order() -> None:
    text = dump_yaml({"runcmd": ["b", "a", ["c", "d"]]})

    assert text == "runcmd:\n- b\n- a\n- - c\n  - d\n"


def test_serve_loadout_dir_setting(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("AGENTIC_SANDBOX_LOADOUT_DIR", raising=False)
    default = Settings.from_env({})
    from_env = Settings.from_env({"AGENTIC_SANDBOX_LOADOUT_DIR": str(tmp_path / "env")})
    chosen: list[Settings] = []

    def serve(settings: Settings) -> int:
        chosen.append(settings)
        return 0

    monkeypatch.setenv("AGENTIC_SANDBOX_LOADOUT_DIR", str(tmp_path / "env"))
    code = run_cli(["serve", "--loadout-dir", str(tmp_path / "option")], serve=serve)

    assert default.loadout_dir == REPO_LOADOUTS
    assert from_env.loadout_dir == tmp_path / "env"
    assert code == 0
    assert chosen[0].loadout_dir == tmp_path / "option"


def test_apply_file_creates_loadout(
    server_env: LoadoutServer, sandboxctl: Sandboxctl, tmp_path: Path
) -> None:
    manifest = tmp_path / "small.yaml"
    manifest.write_text(
        f"apiVersion: {API_VERSION}\n"
        "kind: Loadout\n"
        "metadata:\n  name: small\n"
        "spec:\n  extends: [debian-base]\n  resources:\n    memory: 512Mi\n"
    )

    applied = sandboxctl("apply", "-f", str(manifest))
    listed = sandboxctl("get", "loadouts")
    deleted = sandboxctl("delete", "-f", str(manifest))

    assert applied.code == 0, applied.err
    assert "loadout/small created" in applied.out
    line = next(row for row in listed.out.splitlines() if row.startswith("small "))
    assert "store" in line
    assert "512Mi" in line
    assert deleted.code == 0, deleted.err
