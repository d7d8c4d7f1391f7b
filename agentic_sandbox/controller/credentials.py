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


def read_operator_token(path: Path) -> str:
    """Read an operator-provided token file; raise ValueError saying what is wrong with it."""
    try:
        mode = path.stat().st_mode
        token = path.read_text().strip()
    except OSError as error:
        raise ValueError(f"token file {path} cannot be read: {error.strerror or error}") from None
    if mode & 0o077:
        raise ValueError(
            f"token file {path} is readable by other users (mode {mode & 0o777:o}); "
            f"run chmod 600 {path}"
        )
    if len(token) < 32:
        raise ValueError(
            f"token file {path} contains {len(token)} characters; use a random token of at least "
            "32, for example from: python3 -c 'import secrets; print(secrets.token_urlsafe(32))'"
        )
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
