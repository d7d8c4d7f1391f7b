"""Turn a batch of file system change events into the manifest files to check.

watchfiles reports a set of (change, path) pairs with no order, so the event type is ignored:
the directory source looks at each file's current state instead. This module only decides
which files that is, or that the whole tree must be walked again:

- a manifest file that is tracked, or newly appeared in a walked directory, is checked itself;
- a change to a walked directory, to a symlink, or a new directory or symlink in a walked
  directory (a ConfigMap's ``..data`` being swapped, a subdirectory added) needs a rescan;
- a change inside a hidden directory checks the visible files that resolve into it;
- editor temporaries, lock files and anything else are ignored.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Container, Iterable
from dataclasses import dataclass, field

from agentic_sandbox.sources.scan import ScanResult, is_manifest_name, is_temporary, is_within


@dataclass
class ChangeSet:
    files: set[str] = field(default_factory=set)
    rescan: bool = False


class TreeIndex:
    """The tree as last walked, plus the real path of every manifest file read since."""

    def __init__(self, root: str) -> None:
        self.root = root
        self._scan = ScanResult(directories={root})
        # Real path of a followed symlink target that lies elsewhere -> paths under the root.
        self._aliases: dict[str, list[str]] = {}
        # Real path of a manifest file -> the paths under the root that resolve to it.
        self._real_paths: dict[str, set[str]] = {}
        self._real_path_of: dict[str, str] = {}
        real_root = os.path.realpath(root)
        if real_root != root:
            self._aliases[real_root] = [root]

    def update(self, scan: ScanResult) -> None:
        self._scan = scan
        real_root = os.path.realpath(self.root)
        self._aliases = {real: list(links) for real, links in scan.external_roots.items()}
        if real_root != self.root:
            self._aliases[real_root] = [self.root]

    def watch_paths(self) -> list[str]:
        """Return the paths to watch: the root and the outside targets of symlinked dirs."""
        return [self.root, *sorted(self._scan.external_roots)]

    def record_real_path(self, path: str, real_path: str | None) -> None:
        old = self._real_path_of.pop(path, None)
        if old is not None:
            self._real_paths.get(old, set()).discard(path)
            if not self._real_paths.get(old):
                self._real_paths.pop(old, None)
        if real_path is not None and real_path != path:
            self._real_path_of[path] = real_path
            self._real_paths.setdefault(real_path, set()).add(path)

    def classify(self, paths: Iterable[str], tracked: Container[str]) -> ChangeSet:
        changes = ChangeSet()
        for reported in paths:
            for path in self._under_root(reported):
                self._classify_one(path, tracked, changes)
        return changes

    def _classify_one(self, path: str, tracked: Container[str], changes: ChangeSet) -> None:
        name = os.path.basename(path)
        if is_temporary(name):
            return
        parent = os.path.dirname(path)
        if path in tracked or (parent in self._scan.directories and is_manifest_name(name)):
            changes.files.add(path)
            return
        if path in self._scan.directories or path in self._scan.symlinks:
            changes.rescan = True
            return
        resolved = self._real_paths.get(path) or self._real_paths.get(os.path.realpath(path))
        if resolved:
            changes.files.update(resolved)
            return
        if parent in self._scan.directories and _is_directory_or_link(path):
            changes.rescan = True

    def _under_root(self, path: str) -> list[str]:
        """Return ``path`` as seen under the root: itself, or via the links to its target."""
        if is_within(path, self.root):
            return [path]
        for real, links in self._aliases.items():
            if is_within(path, real):
                rest = path[len(real) :]
                return [link + rest for link in links]
        return [path]


def _is_directory_or_link(path: str) -> bool:
    try:
        mode = os.lstat(path).st_mode
    except OSError:
        return False
    return stat.S_ISDIR(mode) or stat.S_ISLNK(mode)
