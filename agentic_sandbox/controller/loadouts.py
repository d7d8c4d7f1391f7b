"""The loadout catalog: every Loadout by name, from the loadout directory and from the store.

Loadouts come from two places:

- files (``*.yaml``, ``*.yml``) in the loadout directory, each holding Loadout documents. File
  loadouts serve every namespace;
- Loadout resources in the store, written by the manifest directory source, the API or a git
  source. A Loadout resource serves its own namespace.

A name is looked up in the store first, so a Loadout resource overrides a file loadout of the
same name. ``extends`` parents are looked up the same way, so a store loadout can extend a file
loadout and the other way round.

Files are re-read only when the directory changed: each call lists the directory once and
compares every file's name, inode, size and modification time with the cached listing. No
thread polls the directory.
NOTE: a file rewritten in place at the same size within the file system's timestamp
granularity keeps its cached copy until it changes again.

An invalid file does not hide the others. It is listed as an entry with an error, named after
the file, because the name of its loadout may be unreadable.
"""

from __future__ import annotations

import asyncio
import builtins
import logging
import os
from dataclasses import dataclass, field, replace
from pathlib import Path

from agentic_sandbox.controller.loadout_origins import LoadoutOrigins, trace_origins
from agentic_sandbox.crds.loadout import KIND, Loadout
from agentic_sandbox.crds.loadout_merge import ResolvedLoadout, resolve
from agentic_sandbox.crds.manifest import YAML_SUFFIXES, ParsedDocument, load_manifest_file
from agentic_sandbox.errors import InvalidResource, InvalidRuntimeSpec, ManifestError, NotFound
from agentic_sandbox.store.base import Store

logger = logging.getLogger(__name__)

STORE_SOURCE = "store"
DEFAULT_NAMESPACE = "default"
# The Instance field that names a loadout, which resolution errors point at.
LOADOUT_FIELD = "spec.loadout"
# Invalid files quoted in a "not found" message; the rest are counted.
QUOTED_INVALID_FILES = 3


@dataclass(frozen=True)
class CatalogEntry:
    """One loadout of the catalog, or one loadout file that failed to load."""

    name: str
    # "store", or the path of the file that defines the loadout.
    source: str
    # The loadout as written; None for a file that failed to load.
    loadout: Loadout | None = None
    # 1-based line of the loadout's document in its file.
    line: int | None = None
    # The file whose loadout of the same name this store resource overrides.
    overrides: str | None = None
    resolved: ResolvedLoadout | None = None
    # Which layer set each value of ``resolved``; only ``LoadoutCatalog.get`` fills it.
    origins: LoadoutOrigins | None = None
    # Why the file failed to load or the loadout failed to resolve.
    error: str | None = None


@dataclass(frozen=True)
class _FileLoadout:
    loadout: Loadout
    path: str
    line: int


@dataclass(frozen=True)
class _InvalidFile:
    name: str
    path: str
    error: str


# (file name, inode, size, modification time in ns) of each loadout file, sorted by name.
_Listing = tuple[tuple[str, int, int, int], ...]


@dataclass(frozen=True)
class _Files:
    """The loadouts read from one listing of the directory."""

    listing: _Listing | None = None
    loadouts: dict[str, _FileLoadout] = field(default_factory=dict)
    invalid: list[_InvalidFile] = field(default_factory=list)
    # Why the directory cannot be listed, as a predicate: "does not exist".
    problem: str | None = None


class LoadoutCatalog:
    """Look up, list and resolve loadouts from the store and the loadout directory."""

    def __init__(self, store: Store, directory: Path | None) -> None:
        self._store = store
        self.directory = directory
        self._files = _Files()
        self._reload_lock = asyncio.Lock()

    async def resolve(self, name: str, *, namespace: str = DEFAULT_NAMESPACE) -> ResolvedLoadout:
        """Merge loadout ``name`` with its ``extends`` parents.

        Raises InvalidRuntimeSpec (field ``spec.loadout``) when the loadout or a parent is
        missing, when the chain has a cycle, and when the merged spec is invalid.
        """
        view = await self._view(namespace)
        return view.resolve(name)

    async def get(self, name: str, *, namespace: str = DEFAULT_NAMESPACE) -> CatalogEntry:
        """Return one entry with its resolved spec and origins, or its error.

        Raises NotFound when neither place defines ``name`` and no invalid file is named so.
        """
        view = await self._view(namespace)
        return view.entry(name)

    async def list(self, *, namespace: str = DEFAULT_NAMESPACE) -> builtins.list[CatalogEntry]:
        """Return every loadout once, resolved, plus one entry per invalid file, by name."""
        view = await self._view(namespace)
        return view.entries()

    async def _view(self, namespace: str) -> _View:
        files = await self._current_files()
        listing = await self._store.list(KIND, namespace=namespace)
        stored = {item.metadata.name: item for item in listing.items if isinstance(item, Loadout)}
        where = _describe_sources(self.directory, namespace, files.problem)
        return _View(stored=stored, files=files, where=where)

    async def _current_files(self) -> _Files:
        if self.directory is None:
            return self._files
        listing, problem = _list_directory(self.directory)
        if listing is None:
            problem = problem or "cannot be read"
            if problem != self._files.problem:
                logger.warning(
                    "loadout directory unusable",
                    extra={"directory": str(self.directory), "problem": problem},
                )
            self._files = _Files(problem=problem)
            return self._files
        if listing == self._files.listing:
            return self._files

        async with self._reload_lock:
            if listing != self._files.listing:
                self._files = await asyncio.to_thread(_load_files, self.directory, listing)
                logger.info(
                    "loadout files read",
                    extra={
                        "directory": str(self.directory),
                        "loadouts": len(self._files.loadouts),
                        "invalid_files": len(self._files.invalid),
                    },
                )
        return self._files


def _describe_sources(directory: Path | None, namespace: str, problem: str | None) -> str:
    store = f"Loadout resources in namespace {namespace}"
    if directory is None:
        return f"{store} (no loadout directory is configured)"
    files = f"{store} and the files in {directory}"
    return f"{files} (which {problem})" if problem else files


def _list_directory(directory: Path) -> tuple[_Listing | None, str | None]:
    """Stat the loadout files of ``directory``; return the listing, or why there is none."""
    entries = []
    try:
        with os.scandir(directory) as scan:
            for entry in scan:
                # Dot files are editor swap and lock files, not loadouts.
                suffix = Path(entry.name).suffix.lower()
                if entry.name.startswith(".") or suffix not in YAML_SUFFIXES:
                    continue
                try:
                    if not entry.is_file():
                        continue
                    stat = entry.stat()
                except FileNotFoundError:
                    continue  # removed since the directory was read
                entries.append((entry.name, stat.st_ino, stat.st_size, stat.st_mtime_ns))
    except FileNotFoundError:
        return None, "does not exist"
    except OSError as error:
        return None, f"cannot be read: {error.strerror or error}"
    return tuple(sorted(entries)), None


def _load_files(directory: Path, listing: _Listing) -> _Files:
    """Read every file of ``listing``; a bad file becomes an ``_InvalidFile``."""
    loadouts: dict[str, _FileLoadout] = {}
    invalid: list[_InvalidFile] = []
    for file_name, *_ in listing:
        path = directory / file_name
        try:
            documents = load_manifest_file(path)
        except ManifestError as error:
            invalid.append(_InvalidFile(name=path.stem, path=str(path), error=str(error)))
            continue
        except OSError as error:
            message = f"{path}: cannot be read: {error.strerror or error}"
            invalid.append(_InvalidFile(name=path.stem, path=str(path), error=message))
            continue
        _add_documents(path, documents, loadouts=loadouts, invalid=invalid)

    for bad in invalid:
        logger.warning("loadout file invalid", extra={"file": bad.path, "error": bad.error})
    return _Files(listing=listing, loadouts=loadouts, invalid=invalid)


def _add_documents(
    path: Path,
    documents: list[ParsedDocument],
    *,
    loadouts: dict[str, _FileLoadout],
    invalid: list[_InvalidFile],
) -> None:
    for document in documents:
        if not isinstance(document.resource, Loadout):
            error = ManifestError(
                f"document {document.index + 1} is a {document.resource.kind}; "
                "a loadout directory contains only Loadout documents",
                file=str(path),
                line=document.line,
            )
            invalid.append(_InvalidFile(name=path.stem, path=str(path), error=str(error)))
            return

    for document in documents:
        assert isinstance(document.resource, Loadout)
        name = document.resource.metadata.name
        first = loadouts.get(name)
        here = _FileLoadout(loadout=document.resource, path=str(path), line=document.line)
        if first is not None:
            # The file named after the loadout keeps it, so that a new file cannot take over
            # a loadout that instances already use; otherwise the first file by name does.
            kept, other = (
                (here, first)
                if _named_after(here, name) > _named_after(first, name)
                else (first, here)
            )
            error = ManifestError(
                f"loadout {name!r} is already defined in {kept.path}:{kept.line}; "
                "rename or remove one of them",
                file=other.path,
                line=other.line,
            )
            invalid.append(_InvalidFile(name=name, path=other.path, error=str(error)))
            loadouts[name] = kept
            continue
        loadouts[name] = here


def _named_after(entry: _FileLoadout, name: str) -> bool:
    return Path(entry.path).stem == name


@dataclass(frozen=True)
class _View:
    """The loadouts of one namespace at one moment: the store's and the files'."""

    stored: dict[str, Loadout]
    files: _Files
    # The places loadouts come from, for messages.
    where: str

    def lookup(self, name: str) -> Loadout:
        """Return the loadout ``name``, the store's before the file's; KeyError if neither."""
        stored = self.stored.get(name)
        if stored is not None:
            return stored
        return self.files.loadouts[name].loadout

    def resolve(self, name: str) -> ResolvedLoadout:
        self._check_chain(name, stack=[], checked=set())
        try:
            return resolve(name, self.lookup)
        except InvalidResource as error:
            raise InvalidRuntimeSpec(
                f"{error}; fix the loadouts of that chain (loadouts come from {self.where})",
                field=LOADOUT_FIELD,
                value=name,
            ) from error

    def _check_chain(self, name: str, *, stack: list[str], checked: set[str]) -> None:
        """Walk the ``extends`` graph from ``stack[0]``, raising for a missing loadout or a cycle.

        ``crds.loadout_merge.resolve`` finds the same faults. This walk exists so that the message
        names the whole chain from the requested loadout down to the fault.
        """
        if name in stack:
            raise self._cycle(stack, name)
        if name in checked:
            return
        try:
            loadout = self.lookup(name)
        except KeyError:
            raise self._missing(stack, name) from None

        stack.append(name)
        for parent in loadout.spec.extends or []:
            self._check_chain(parent, stack=stack, checked=checked)
        stack.pop()
        checked.add(name)

    def _cycle(self, stack: list[str], name: str) -> InvalidRuntimeSpec:
        root = stack[0]
        cycle = " -> ".join([*stack[stack.index(name) :], name])
        chain = " -> ".join([*stack, name])
        where = cycle if chain == cycle else f"{cycle}, reached by {chain}"
        return InvalidRuntimeSpec(
            f"loadout {root!r} cannot be resolved: its extends chain is a cycle: {where}; "
            "remove one of the links of the cycle from extends",
            field=LOADOUT_FIELD,
            value=root,
        )

    def _missing(self, stack: list[str], name: str) -> InvalidRuntimeSpec:
        if not stack:
            message = (
                f"loadout {name!r} not found; loadouts come from {self.where}"
                f"{self._invalid_files_note()}. Apply a Loadout named {name!r}, add it to a "
                "loadout file, or name an existing loadout"
            )
            return InvalidRuntimeSpec(message, field=LOADOUT_FIELD, value=name)
        chain = " -> ".join([*stack, name])
        message = (
            f"loadout {stack[0]!r} cannot be resolved: its extends chain {chain} names "
            f"{name!r}, which is not found; loadouts come from {self.where}"
            f"{self._invalid_files_note()}. Define loadout {name!r} or remove it from the "
            f"extends of {stack[-1]!r}"
        )
        return InvalidRuntimeSpec(message, field=LOADOUT_FIELD, value=stack[0])

    def _invalid_files_note(self) -> str:
        invalid = self.files.invalid
        if not invalid:
            return ""
        quoted = "; ".join(bad.error for bad in invalid[:QUOTED_INVALID_FILES])
        hidden = len(invalid) - QUOTED_INVALID_FILES
        more = f"; and {hidden} more" if hidden > 0 else ""
        return f" (invalid files skipped: {quoted}{more})"

    def entry(self, name: str) -> CatalogEntry:
        if name in self.stored or name in self.files.loadouts:
            return self._entry(name, with_origins=True)
        for bad in self.files.invalid:
            if bad.name == name:
                return CatalogEntry(name=bad.name, source=bad.path, error=bad.error)
        raise NotFound(f"loadout {name!r} not found; loadouts come from {self.where}")

    def entries(self) -> list[CatalogEntry]:
        names = sorted(set(self.stored) | set(self.files.loadouts))
        found = [self._entry(name, with_origins=False) for name in names]
        found += [
            CatalogEntry(name=bad.name, source=bad.path, error=bad.error)
            for bad in self.files.invalid
        ]
        return sorted(found, key=lambda entry: (entry.name, entry.source))

    def _entry(self, name: str, *, with_origins: bool) -> CatalogEntry:
        stored = self.stored.get(name)
        file = self.files.loadouts.get(name)
        if stored is not None:
            entry = CatalogEntry(
                name=name,
                source=STORE_SOURCE,
                loadout=stored,
                overrides=file.path if file is not None else None,
            )
        else:
            assert file is not None
            entry = CatalogEntry(name=name, source=file.path, loadout=file.loadout, line=file.line)

        try:
            resolved = self.resolve(name)
        except InvalidRuntimeSpec as error:
            return replace(entry, error=str(error))
        origins = self._origins(resolved) if with_origins else None
        return replace(entry, resolved=resolved, origins=origins)

    def _origins(self, resolved: ResolvedLoadout) -> LoadoutOrigins:
        layers = []
        for name in resolved.chain:
            layer = self.lookup(name).spec.written()
            layer.pop("extends", None)
            layers.append((name, layer))
        return trace_origins(layers, resolved.spec.written())
