"""Start-up checks of sandboxctl serve: bind address, token file, paths."""

from __future__ import annotations

from pathlib import Path

import pytest

from agentic_sandbox.app import api_token, check_bind_address, check_paths
from agentic_sandbox.controller.config import Settings

GOOD_TOKEN = "t" * 40


def token_file(tmp_path: Path, content: str = GOOD_TOKEN, mode: int = 0o600) -> Path:
    path = tmp_path / "token"
    path.write_text(content + "\n")
    path.chmod(mode)
    return path


def test_loopback_bind_needs_no_token_file() -> None:
    check_bind_address("127.0.0.1", None)
    check_bind_address("::1", None)
    check_bind_address("localhost", None)


def test_public_bind_without_token_file_rejected() -> None:
    with pytest.raises(SystemExit, match="--token-file"):
        check_bind_address("0.0.0.0", None)


def test_public_bind_with_token_file_allowed(tmp_path: Path) -> None:
    check_bind_address("0.0.0.0", token_file(tmp_path))


def test_operator_token_read_from_file(tmp_path: Path) -> None:
    settings = Settings(state_dir=tmp_path / "state", token_file=token_file(tmp_path))
    assert api_token(settings) == GOOD_TOKEN
    assert not settings.token_path.exists()


def test_world_readable_token_file_rejected(tmp_path: Path) -> None:
    settings = Settings(state_dir=tmp_path, token_file=token_file(tmp_path, mode=0o644))
    with pytest.raises(SystemExit, match="chmod 600"):
        api_token(settings)


def test_short_token_rejected(tmp_path: Path) -> None:
    settings = Settings(state_dir=tmp_path, token_file=token_file(tmp_path, content="short"))
    with pytest.raises(SystemExit, match="at least"):
        api_token(settings)


def test_generated_token_is_private(tmp_path: Path) -> None:
    settings = Settings(state_dir=tmp_path / "state")
    check_paths(settings)
    token = api_token(settings)
    assert len(token) >= 32
    assert settings.token_path.stat().st_mode & 0o777 == 0o600
    assert api_token(settings) == token


def test_relative_mount_root_rejected(tmp_path: Path) -> None:
    settings = Settings(state_dir=tmp_path, allowed_mount_roots=[Path("relative/dir")])
    with pytest.raises(SystemExit, match="not an absolute path"):
        check_paths(settings)
