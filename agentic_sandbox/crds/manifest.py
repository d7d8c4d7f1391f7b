"""Manifest files: YAML or JSON text in, validated resources with their file positions out.

A manifest contains any number of documents. Empty and comment-only YAML documents are skipped
but still counted, so ``ParsedDocument.index`` is the document's position in the file. Messages
number documents from 1 ("document 2" is the second document).

The first document that fails to parse or validate stops the whole file: ``ManifestError``
names the file, the line, and every field error of that document. Two documents in one file that
define the same kind, namespace and name are an error too, because applying the file would
silently keep only the last one.

The only I/O here is ``load_manifest_file`` reading the file it is given.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass

from agentic_sandbox.crds import documents
from agentic_sandbox.crds.documents import RawDocument, line_at_offset
from agentic_sandbox.crds.json_reader import read_json_documents
from agentic_sandbox.crds.meta import Resource
from agentic_sandbox.crds.validation import describe, summarize, validate_resource
from agentic_sandbox.crds.yaml_reader import read_yaml_documents
from agentic_sandbox.errors import ManifestError

YAML_SUFFIXES = (".yaml", ".yml")
JSON_SUFFIXES = (".json",)
MANIFEST_SUFFIXES = YAML_SUFFIXES + JSON_SUFFIXES


@dataclass(frozen=True)
class ParsedDocument:
    """One validated document of a manifest."""

    # File path, or a pseudo-name such as "<stdin>" or "<api>".
    source: str
    # 0-based position of the document in the file; skipped empty documents count.
    index: int
    # 1-based line where the document's content starts.
    line: int
    resource: Resource


def load_manifests(text: str, *, source: str) -> list[ParsedDocument]:
    """Parse and validate YAML manifest text (JSON text is valid YAML 1.2 too)."""
    _check_size(len(text), source)
    return _validate_all(read_yaml_documents(text, source=source), source)


def load_json_manifests(text: str, *, source: str) -> list[ParsedDocument]:
    """Parse and validate JSON manifest text: one object, or an array of objects."""
    _check_size(len(text), source)
    return _validate_all(read_json_documents(text, source=source), source)


def load_manifest_file(
    path: str | os.PathLike[str], *, source: str | None = None
) -> list[ParsedDocument]:
    """Read, parse and validate one manifest file, choosing YAML or JSON by its suffix.

    ``source`` is the file name used in documents and errors (default: ``path``), such as a
    path inside a git repository for a file read from an exported tree.
    Raises ManifestError for an unsupported suffix, a file over the size limit, text that is not
    UTF-8, or an invalid document. OSError from reading the file (such as FileNotFoundError when
    an editor replaced it a moment ago) propagates unchanged.
    """
    if source is None:
        source = os.fspath(path)
    suffix = os.path.splitext(source)[1].lower()
    if suffix not in MANIFEST_SUFFIXES:
        raise ManifestError(
            f"file type {suffix or '(none)'!r} is not a manifest; "
            f"use one of {', '.join(MANIFEST_SUFFIXES)}",
            file=source,
        )
    with open(path, "rb") as file:
        content = file.read(documents.MAX_MANIFEST_BYTES + 1)
    _check_size(len(content), source)
    text = _decode(content, source)
    if suffix in JSON_SUFFIXES:
        return load_json_manifests(text, source=source)
    return load_manifests(text, source=source)


def _check_size(size: int, source: str) -> None:
    if size > documents.MAX_MANIFEST_BYTES:
        limit_mib = documents.MAX_MANIFEST_BYTES / 2**20
        raise ManifestError(
            f"manifest is larger than the limit of {limit_mib:g} MiB; split it into several files",
            file=source,
        )


def _decode(content: bytes, source: str) -> str:
    try:
        text = content.decode("utf-8")
    except UnicodeDecodeError as error:
        raise ManifestError(
            f"file is not valid UTF-8: byte {error.start} is {content[error.start]:#04x}; "
            "save the file as UTF-8",
            file=source,
            line=line_at_offset(content, error.start),
        ) from None
    # Editors on some systems write a byte order mark; it carries no content.
    return text.removeprefix("\ufeff")


def _validate_all(raw_documents: Iterable[RawDocument], source: str) -> list[ParsedDocument]:
    parsed: list[ParsedDocument] = []
    defined_at: dict[tuple[str, str], ParsedDocument] = {}
    for raw in raw_documents:
        if raw.data is None:
            continue
        document = _validate_one(raw, source)
        identity = (document.resource.kind, document.resource.key)
        first = defined_at.setdefault(identity, document)
        if first is not document:
            raise ManifestError(
                f"document {raw.index + 1}: {identity[0]} {identity[1]} is already defined by "
                f"document {first.index + 1} at line {first.line}",
                file=source,
                line=raw.line,
            )
        parsed.append(document)
    return parsed


def _validate_one(raw: RawDocument, source: str) -> ParsedDocument:
    prefix = f"document {raw.index + 1}"
    if not isinstance(raw.data, dict):
        raise ManifestError(
            f"{prefix}: expected a mapping with apiVersion, kind, metadata and spec, "
            f"got {describe(raw.data)}",
            file=source,
            line=raw.line,
        )
    try:
        resource = validate_resource(raw.data, source=source, lines=raw.lines)
    except ManifestError as error:
        raise ManifestError(
            f"{prefix}: {summarize(error.errors)}",
            file=source,
            line=error.line if error.line is not None else raw.line,
            errors=error.errors,
        ) from None
    return ParsedDocument(source=source, index=raw.index, line=raw.line, resource=resource)
