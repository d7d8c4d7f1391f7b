"""Find the manifest files under a directory, with the rules of the directory source.

Rules:

- Manifests are regular files named ``*.yaml``, ``*.yml`` or ``*.json``, found recursively.
- Hidden names (starting with '.') are skipped, both files and directories. A symlink at a
  visible name is followed even when it points into a hidden directory, which is how a
  Kubernetes ConfigMap volume looks: ``web.yaml -> ..data/web.yaml`` and
  ``..data -> ..2026_12_04_10_00_00.123``.
- Editor temporaries, backups and lock files are skipped (see ``is_temporary``).
- Symlinked directories are followed. Every directory is walked at most once, identified by
  device and inode, which stops symlink loops. Real directories are walked before symlinked
  ones, so a file reachable both ways is found under its real path.
- Paths are reported as found under the root, never resolved, so a file keeps its path when a
  symlink it is reached through changes target.
"""

from __future__ import annotations

import logging
import os
import re
import stat
from dataclasses import dataclass, field

logger = logging.getLogger(__name__)

MANIFEST_SUFFIXES = (".yaml", ".yml", ".json")

# Names that editors, downloaders and package tools write next to the file being saved:
# vim swap files and its writability probe "4913", emacs autosaves and lock links, backups,
# partial downloads and GNOME's atomic-save temporaries.
_TEMPORARY_NAME = re.compile(
    r"""
    ~$ | \.sw[a-z]$ | \.tmp$ | \.temp$ | \.part$ | \.partial$ | \.crdownload$
    | \.bak$ | \.orig$ | \.rej$ | \.kate-swp$ | \.dpkg-(new|old|dist|tmp)$
    | ^\.\# | ^\#.*\#$ | ^4913$ | ^\.goutputstream- | ^\.~lock\.
    """,
    re.VERBOSE,
)


def is_hidden(name: str) -> bool:
    return name.startswith(".")


def is_temporary(name: str) -> bool:
    """Return whether ``name`` looks like an editor temporary, backup or lock file."""
    return _TEMPORARY_NAME.search(name) is not None


def is_manifest_name(name: str) -> bool:
    if is_hidden(name) or is_temporary(name):
        return False
    return name.lower().endswith(MANIFEST_SUFFIXES)


@dataclass(frozen=True)
class Signature:
    """The stat fields that change whenever a file's content or identity changes."""

    device: int
    inode: int
    size: int
    mtime_ns: int
    ctime_ns: int

    @classmethod
    def of(cls, result: os.stat_result) -> Signature:
        return cls(
            device=result.st_dev,
            inode=result.st_ino,
            size=result.st_size,
            mtime_ns=result.st_mtime_ns,
            ctime_ns=result.st_ctime_ns,
        )


@dataclass
class ScanResult:
    """The result of one walk of the tree. Every path starts with the root as given."""

    # Manifest files, sorted.
    files: list[str] = field(default_factory=list)
    # Directories that were walked, the root included.
    directories: set[str] = field(default_factory=set)
    # Symlinks directly inside walked directories, hidden ones such as '..data' included.
    symlinks: set[str] = field(default_factory=set)
    # Real path of each followed directory symlink whose target lies outside the root,
    # mapped to the paths of the links that lead to it.
    external_roots: dict[str, list[str]] = field(default_factory=dict)


def scan_tree(root: str) -> ScanResult:
    """Walk ``root`` and return its manifest files. Raises OSError when ``root`` is unreadable."""
    result = ScanResult()
    real_root = os.path.realpath(root)
    visited: set[tuple[int, int]] = set()
    linked: list[str] = []

    # The real tree first, then each symlinked directory found on the way (and inside those).
    _walk(root, result, visited, linked, is_root=True)
    while linked:
        link = linked.pop(0)
        if _walk(link, result, visited, linked, is_root=False):
            target = os.path.realpath(link)
            if not is_within(target, real_root):
                result.external_roots.setdefault(target, []).append(link)

    result.files.sort()
    return result


def _walk(
    top: str,
    result: ScanResult,
    visited: set[tuple[int, int]],
    linked: list[str],
    *,
    is_root: bool,
) -> bool:
    """Walk the real directories under ``top``; queue the symlinked ones on ``linked``.

    Returns False when ``top`` was skipped because it was walked before.
    """
    pending = [top]
    walked_top = False
    while pending:
        directory = pending.pop()
        try:
            identity = _identity(os.stat(directory))
            if identity in visited:
                continue
            visited.add(identity)
            entries = sorted(os.scandir(directory), key=lambda entry: entry.name, reverse=True)
        except OSError as error:
            if is_root and directory == top:
                raise
            logger.debug("directory skipped: %s", error, extra={"path": directory})
            continue
        walked_top = walked_top or directory == top
        result.directories.add(directory)
        for entry in entries:
            _visit(entry, result, pending, linked)
    return walked_top


def _visit(
    entry: os.DirEntry[str], result: ScanResult, pending: list[str], linked: list[str]
) -> None:
    name = entry.name
    try:
        is_link = entry.is_symlink()
        if is_link:
            result.symlinks.add(entry.path)
        if is_hidden(name) or is_temporary(name):
            return
        if entry.is_dir():
            (linked if is_link else pending).append(entry.path)
        elif entry.is_file() and is_manifest_name(name):
            result.files.append(entry.path)
    except OSError as error:
        # A dangling symlink or an entry removed while the walk runs.
        logger.debug("entry skipped: %s", error, extra={"path": entry.path})


def _identity(result: os.stat_result) -> tuple[int, int]:
    if not stat.S_ISDIR(result.st_mode):
        raise NotADirectoryError(f"not a directory (mode {oct(result.st_mode)})")
    return result.st_dev, result.st_ino


def is_within(path: str, directory: str) -> bool:
    return path == directory or path.startswith(directory.rstrip(os.sep) + os.sep)
