"""images/vm/agent-guest/seed.py: the controller's cloud-init seed, applied as the agent guest does.

The round trip under test: the env that the controller puts in user-data, read back by seed.py
with PyYAML, written as the env file, and sourced by a POSIX shell as the guest's init does.
"""

from __future__ import annotations

import importlib.util
import os
import stat
import subprocess
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from agentic_sandbox.crds.loadout import LoadoutSpec
from agentic_sandbox.crds.loadout_merge import ResolvedLoadout
from agentic_sandbox.runtimes import cloudinit
from tests.conftest import REPO_ROOT

SEED_SCRIPT = REPO_ROOT / "images" / "vm" / "agent-guest" / "seed.py"
# Values that YAML 1.1 or a shell would change if any step quoted them wrongly.
TRICKY_ENV = {
    "PLAIN": "value",
    "NO": "no",
    "OCTAL": "0755",
    "TIME": "1:30",
    "QUOTE": 'it\'s "quoted"',
    "SPACES": "  two  spaces  ",
    "DOLLAR": "$HOME `id` $(id)",
    "LINES": "first\nsecond",
    "CARRIAGE": "a\rb",
    "EMPTY": "",
}


@pytest.fixture(scope="module")
def seed() -> ModuleType:
    spec = importlib.util.spec_from_file_location("agent_guest_seed", SEED_SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def user_data(env: dict[str, str], **loadout: Any) -> str:
    resolved = ResolvedLoadout(name="agent", chain=("agent",), spec=LoadoutSpec(**loadout))
    return cloudinit.build_user_data(resolved, env=env, agent_env={"AGENT_SECRET": "s" * 64})


def write_seed(directory: Path, text: str, tmp_path: Path) -> Path:
    """Write user-data with every write_files path moved under ``tmp_path``, and meta-data."""
    directory.mkdir()
    moved = text.replace('"path": "/', f'"path": "{tmp_path}/')
    (directory / "user-data").write_text(moved)
    (directory / "meta-data").write_text(cloudinit.build_meta_data("id-1", "agent-vm"))
    return directory


def source_env(path: Path, names: list[str]) -> dict[str, str]:
    """Source ``path`` with sh, as the guest's init does, and return the named variables."""
    script = (
        'set -a; . "$1"; shift; for name in "$@"; do eval "printf \'%s\\0\' \\"\\$$name\\""; done'
    )
    result = subprocess.run(
        ["sh", "-c", script, "sh", str(path), *names],
        capture_output=True,
        check=True,
        env={"PATH": os.environ["PATH"]},
    )
    values = result.stdout.decode().split("\0")[:-1]
    return dict(zip(names, values, strict=True))


def test_env_survives_seed_round_trip(seed: ModuleType, tmp_path: Path) -> None:
    seed_dir = write_seed(tmp_path / "seed", user_data(TRICKY_ENV), tmp_path)
    hostname_file = tmp_path / "hostname"

    assert seed.main(["seed.py", str(seed_dir), str(hostname_file)]) == 0

    env_file = tmp_path / cloudinit.ENV_FILE_PATH.lstrip("/")
    mode = stat.S_IMODE(env_file.stat().st_mode)
    assert mode == 0o600
    assert env_file.stat().st_uid == 0
    names = [*TRICKY_ENV, "AGENT_SECRET"]
    assert source_env(env_file, names) == {**TRICKY_ENV, "AGENT_SECRET": "s" * 64}
    assert hostname_file.read_text() == "agent-vm\n"


def test_loadout_files_written(seed: ModuleType, tmp_path: Path) -> None:
    files = [
        {"path": "/etc/role", "content": "sandbox\n", "permissions": "0640", "owner": "0:0"},
        {"path": "/srv/deep/dir/run.sh", "content": "#!/bin/sh\n", "permissions": "0755"},
    ]
    text = user_data({}, write_files=files, runcmd=["true"], packages=["git"])
    seed_dir = write_seed(tmp_path / "seed", text, tmp_path)

    assert seed.main(["seed.py", str(seed_dir), str(tmp_path / "hostname")]) == 0

    role = tmp_path / "etc" / "role"
    assert role.read_text() == "sandbox\n"
    assert stat.S_IMODE(role.stat().st_mode) == 0o640
    script = tmp_path / "srv" / "deep" / "dir" / "run.sh"
    assert stat.S_IMODE(script.stat().st_mode) == 0o755


def test_skipped_keys_reported(seed: ModuleType, capsys: pytest.CaptureFixture[str]) -> None:
    failures = seed.apply_user_data({"runcmd": [["true"]], "packages": ["git"]})
    assert failures == 0
    output = capsys.readouterr().out
    assert "agentic-sandbox-guest: seed packages skipped" in output
    assert "agentic-sandbox-guest: seed runcmd skipped" in output


def test_relative_path_fails_entry(seed: ModuleType, capsys: pytest.CaptureFixture[str]) -> None:
    failures = seed.apply_user_data({"write_files": [{"path": "relative", "content": "x"}]})
    assert failures == 1
    assert "write_files[0] failed: ValueError" in capsys.readouterr().out


def test_base64_content_decoded(seed: ModuleType) -> None:
    entry = {"content": "aGVsbG8=", "encoding": "b64"}
    assert seed.file_content(entry) == b"hello"
    with pytest.raises(ValueError, match="gzip"):
        seed.file_content({"content": "x", "encoding": "gzip"})
