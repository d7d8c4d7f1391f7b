"""The API bearer token and the controller id, both kept in the state directory.

The token file is created with mode 0600 on first start. Tokens are compared in constant time and
never logged.
"""

from __future__ import annotations

import hmac
import os
import secrets
import uuid
from pathlib import Path

TOKEN_BYTES = 32


def _write_private(path: Path, content: str) -> None:
    """Write ``content`` to a new file readable only by its owner, atomically."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, content.encode())
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(temporary, path)


def read_token(path: Path) -> str | None:
    try:
        token = path.read_text().strip()
    except FileNotFoundError:
        return None
    return token or None


def load_or_create_token(path: Path) -> str:
    """Return the token stored at ``path``, creating a new random one when there is none."""
    token = read_token(path)
    if token is None:
        token = secrets.token_urlsafe(TOKEN_BYTES)
        _write_private(path, token + "\n")
    return token


def tokens_equal(expected: str, presented: str) -> bool:
    return hmac.compare_digest(expected.encode(), presented.encode())


def load_or_create_controller_id(state_dir: Path) -> str:
    """Return this controller's id, stored in the state directory so it survives restarts."""
    path = state_dir / "controller-id"
    try:
        existing = path.read_text().strip()
    except FileNotFoundError:
        existing = ""
    if existing:
        return existing
    controller_id = "ctl-" + uuid.uuid4().hex[:12]
    _write_private(path, controller_id + "\n")
    return controller_id
