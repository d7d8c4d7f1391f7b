"""Manifest files named by ``-f``: finding them, and validating them before anything is sent.

``-f`` takes a file, a directory (searched recursively for ``*.yaml``, ``*.yml`` and ``*.json``)
or ``-`` for standard input. Entries whose names start with a dot are skipped: editor temporary
files, and the ``..data`` and ``..<timestamp>`` directories of a Kubernetes ConfigMap mount, whose
files the visible symlinks already name.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Sequence
from pathlib import Path

from agentic_sandbox.cli.client import CliError
from agentic_sandbox.crds.manifest import (
    MANIFEST_SUFFIXES,
    ParsedDocument,
    load_manifest_file,
    load_manifests,
)
from agentic_sandbox.errors import ManifestError

STDIN = "-"
STDIN_SOURCE = "<stdin>"


def _walk(directory: Path, visited: set[Path]) -> Iterable[Path]:
    # Symlinked directories are followed, so remember real paths to stop at a symlink loop.
    real = directory.resolve()
    if real in visited:
        return
    visited.add(real)
    for entry in sorted(directory.iterdir()):
        if entry.name.startswith("."):
            continue
        if entry.is_dir():
            yield from _walk(entry, visited)
        elif entry.is_file() and entry.suffix in MANIFEST_SUFFIXES:
            yield entry


def manifest_files(target: str) -> list[Path]:
    """Return the manifest files that ``target`` names, in a stable order."""
    path = Path(target)
    if path.is_dir():
        return list(_walk(path, set()))
    if path.is_file():
        return [path]
    if not path.exists():
        raise CliError(f"{target}: no such file or directory")
    raise CliError(f"{target}: not a regular file or directory")


def render_manifest_error(error: ManifestError) -> list[str]:
    """Render one line per field error, as ``file:line: field: message``."""
    if not error.errors:
        return [str(error)]
    lines = []
    for field_error in error.errors:
        where = error.file or STDIN_SOURCE
        line = field_error.line if field_error.line is not None else error.line
        if line is not None:
            where = f"{where}:{line}"
        lines.append(f"{where}: {field_error.render()}")
    return lines


def _load(source: Path | None) -> list[ParsedDocument]:
    """Load one file, or standard input when ``source`` is None."""
    if source is None:
        return load_manifests(sys.stdin.read(), source=STDIN_SOURCE)
    return load_manifest_file(source)


def _sources(targets: Sequence[str], problems: list[str]) -> list[Path | None]:
    sources: list[Path | None] = []
    for target in targets:
        if target == STDIN:
            sources.append(None)
            continue
        try:
            sources.extend(manifest_files(target))
        except CliError as error:
            problems.append(error.message)
    return sources


def load_documents(targets: Sequence[str]) -> list[ParsedDocument]:
    """Load and validate every manifest that ``targets`` name.

    Raises CliError listing every invalid file and field, so nothing is applied from a set of
    files with an error in any of them.
    """
    problems: list[str] = []
    documents: list[ParsedDocument] = []
    for source in _sources(targets, problems):
        try:
            documents.extend(_load(source))
        except ManifestError as error:
            problems.extend(render_manifest_error(error))
        except OSError as error:
            problems.append(f"{source}: {error.strerror or error}")
    if problems:
        raise CliError(
            f"{len(problems)} problem(s) in the manifests; nothing was sent to the server",
            details=problems,
        )
    if not documents:
        raise CliError(f"no objects found in {', '.join(targets)}")
    return documents
