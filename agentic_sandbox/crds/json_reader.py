"""A strict JSON reader for manifests, with a line number for every field path.

The json module parses the text, rejecting duplicate keys and the non-standard constants
``NaN`` and ``Infinity``. A second, token-level pass over the already valid text then records the
line of every key and array item, because the json module does not report positions.

A file contains one object (one document) or an array of objects (one document each).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field

from agentic_sandbox.crds import documents
from agentic_sandbox.crds.documents import FieldPath, RawDocument
from agentic_sandbox.errors import ManifestError

# One JSON token: a string, a punctuation character, or a bare literal (number, true, null).
_TOKEN = re.compile(r'"(?:[^"\\]|\\.)*"|[{}\[\],:]|[^\s{}\[\],:"]+', re.DOTALL)


class _DuplicateKey(Exception):
    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.key = key


def read_json_documents(text: str, *, source: str) -> list[RawDocument]:
    """Parse a JSON manifest into documents. Raises ManifestError naming the file and line."""
    try:
        value = json.loads(text, object_pairs_hook=_unique_keys, parse_constant=_reject_constant)
    except json.JSONDecodeError as error:
        raise ManifestError(f"invalid JSON: {error.msg}", file=source, line=error.lineno) from error
    except RecursionError:
        raise ManifestError(
            f"invalid JSON: nesting is deeper than {documents.MAX_DEPTH} levels", file=source
        ) from None
    except ValueError as error:
        raise ManifestError(f"invalid JSON: {error}", file=source) from error
    except _DuplicateKey as error:
        # The text is valid JSON apart from the duplicate, so the locator can find its line.
        first_line, line = _locate_lines(text, source).duplicates.get(error.key, (None, None))
        where = f" (first written at line {first_line})" if first_line else ""
        raise ManifestError(f"duplicate key {error.key!r}{where}", file=source, line=line) from None

    lines = _locate_lines(text, source).lines
    if not isinstance(value, list):
        return [RawDocument(index=0, line=lines.get((), 1), data=value, lines=_without_root(lines))]
    return [
        RawDocument(
            index=position,
            line=lines.get((position,), 1),
            data=item,
            lines=_under(lines, position),
        )
        for position, item in enumerate(value)
    ]


def _unique_keys(pairs: list[tuple[str, object]]) -> dict[str, object]:
    result: dict[str, object] = {}
    for key, value in pairs:
        if key in result:
            raise _DuplicateKey(key)
        result[key] = value
    return result


def _reject_constant(name: str) -> object:
    raise ValueError(f"{name} is not a JSON number; write a finite number")


def _without_root(lines: dict[FieldPath, int]) -> dict[FieldPath, int]:
    return {path: line for path, line in lines.items() if path}


def _under(lines: dict[FieldPath, int], position: int) -> dict[FieldPath, int]:
    return {path[1:]: line for path, line in lines.items() if len(path) > 1 and path[0] == position}


@dataclass
class _Frame:
    path: FieldPath
    is_object: bool
    next_item: int = 0
    expects_key: bool = True
    key: str = ""
    key_lines: dict[str, int] = field(default_factory=dict)


@dataclass
class _Located:
    lines: dict[FieldPath, int] = field(default_factory=dict)
    # For each duplicated key: the line of its first occurrence and of the first repeat.
    duplicates: dict[str, tuple[int, int]] = field(default_factory=dict)


def _locate_lines(text: str, source: str) -> _Located:
    """Record the line of every key and array item. ``text`` must be valid JSON."""
    located = _Located()
    stack: list[_Frame] = []
    line, scanned = 1, 0
    for match in _TOKEN.finditer(text):
        line += text.count("\n", scanned, match.start())
        scanned = match.start()
        token = match.group()
        if token in ("}", "]"):
            stack.pop()
            continue
        if token in (",", ":"):
            if token == "," and stack and stack[-1].is_object:
                stack[-1].expects_key = True
            continue

        top = stack[-1] if stack else None
        if top is not None and top.is_object and top.expects_key:
            _record_key(located, top, json.loads(token), line)
            continue
        path = _value_path(top)
        located.lines.setdefault(path, line)
        if token in ("{", "["):
            if len(stack) >= documents.MAX_DEPTH:
                raise ManifestError(
                    f"nesting is deeper than {documents.MAX_DEPTH} levels", file=source, line=line
                )
            stack.append(_Frame(path=path, is_object=token == "{"))
    return located


def _record_key(located: _Located, frame: _Frame, key: str, line: int) -> None:
    if key in frame.key_lines:
        located.duplicates.setdefault(key, (frame.key_lines[key], line))
    else:
        frame.key_lines[key] = line
    frame.key = key
    frame.expects_key = False
    located.lines[(*frame.path, key)] = line


def _value_path(top: _Frame | None) -> FieldPath:
    if top is None:
        return ()
    if top.is_object:
        return (*top.path, top.key)
    position = top.next_item
    top.next_item += 1
    return (*top.path, position)
