"""Apply a cloud-init NoCloud seed in the agent guest, which runs no cloud-init of its own.

Usage: python3 -I seed.py SEED_DIR HOSTNAME_FILE

From ``SEED_DIR/meta-data`` it prints the instance id on the console and writes
``local-hostname`` to HOSTNAME_FILE. From ``SEED_DIR/user-data`` (``#cloud-config``) it writes
every ``write_files`` entry (path, content, permissions, owner, and base64 encoding), among them
``/etc/agentic-sandbox/env`` with the sandbox env. ``packages`` and ``runcmd`` are not run: the
guest is a prebuilt image, and each skipped key is reported on the console.

PyYAML is installed beside this file (``lib/``), because cloud-init reads seeds with PyYAML
too and the root file system has no YAML parser of its own.
"""

from __future__ import annotations

import base64
import grp
import os
import pwd
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent / "lib"))
import yaml  # noqa: E402

PREFIX = "agentic-sandbox-guest:"
DEFAULT_PERMISSIONS = "0644"
# user-data keys this guest applies; any other top-level key is reported as skipped.
APPLIED_KEYS = frozenset({"write_files"})
BASE64_ENCODINGS = frozenset({"b64", "base64"})
TEXT_ENCODINGS = frozenset({"", "text/plain"})


def say(message: str) -> None:
    print(f"{PREFIX} {message}", flush=True)


def read_yaml(path: Path) -> dict[str, Any]:
    """Load a seed file as a mapping; a missing or empty file is an empty mapping."""
    if not path.is_file():
        return {}
    data = yaml.safe_load(path.read_text())
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ValueError(f"{path} is a {type(data).__name__}, not a YAML mapping")
    return data


def file_content(entry: dict[str, Any]) -> bytes:
    content = entry.get("content", "")
    encoding = str(entry.get("encoding", "")).lower()
    if encoding in BASE64_ENCODINGS:
        return base64.b64decode(content)
    if encoding not in TEXT_ENCODINGS:
        raise ValueError(f"encoding {encoding!r} is not supported; expected b64 or text/plain")
    return str(content).encode()


def owner_ids(owner: str) -> tuple[int, int]:
    """Resolve ``user:group`` (names or numbers) to ids; the group defaults to the user's."""
    user, _, group = owner.partition(":")
    uid = int(user) if user.isdigit() else pwd.getpwnam(user).pw_uid
    if not group:
        return uid, pwd.getpwuid(uid).pw_gid
    gid = int(group) if group.isdigit() else grp.getgrnam(group).gr_gid
    return uid, gid


def write_file(entry: dict[str, Any]) -> None:
    """Write one ``write_files`` entry atomically, with its mode and owner set before the rename.

    Setting both on the temporary file means a secret is never readable by others, not even
    for a moment.
    """
    path = Path(str(entry["path"]))
    if not path.is_absolute():
        raise ValueError(f"write_files path {str(path)!r} is not absolute")
    mode = int(str(entry.get("permissions", DEFAULT_PERMISSIONS)), 8)
    uid, gid = owner_ids(str(entry.get("owner", "root:root")))
    content = file_content(entry)
    if entry.get("append"):
        content = (path.read_bytes() if path.exists() else b"") + content

    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        os.fchmod(descriptor, mode)
        os.fchown(descriptor, uid, gid)
        with os.fdopen(descriptor, "wb") as file:
            file.write(content)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def apply_user_data(user_data: dict[str, Any]) -> int:
    """Write every file of ``user_data``; return the number of entries that failed."""
    failures = 0
    for index, entry in enumerate(user_data.get("write_files") or []):
        try:
            write_file(entry)
        except (KeyError, ValueError, OSError) as error:
            failures += 1
            say(f"error: write_files[{index}] failed: {type(error).__name__}: {error}")
    for key in sorted(set(user_data) - APPLIED_KEYS):
        say(f"seed {key} skipped: this guest applies only write_files")
    return failures


def main(argv: list[str]) -> int:
    if len(argv) != 3:
        print("usage: seed.py SEED_DIR HOSTNAME_FILE", file=sys.stderr)
        return 2
    seed_dir, hostname_file = Path(argv[1]), Path(argv[2])
    try:
        meta_data = read_yaml(seed_dir / "meta-data")
        user_data = read_yaml(seed_dir / "user-data")
    except (OSError, ValueError, yaml.YAMLError) as error:
        say(f"error: cannot read the seed in {seed_dir}: {error}")
        return 1

    say(f"seed instance-id={meta_data.get('instance-id', '')}")
    hostname = str(meta_data.get("local-hostname", "")).strip()
    if hostname:
        hostname_file.write_text(hostname + "\n")
    return 1 if apply_user_data(user_data) else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
