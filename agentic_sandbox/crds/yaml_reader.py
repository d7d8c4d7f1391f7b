"""A strict YAML 1.2 reader for manifests, built on ruamel.yaml's event parser.

ruamel.yaml's default constructors are not used. This module composes the parser's events into
its own node tree and converts that tree to plain Python data, which lets it:

- record the line of every mapping key and sequence item, for error messages;
- reject duplicate mapping keys, non-string keys, and tags outside the YAML 1.2 core schema;
- bound nesting depth while composing, and bound the nodes that alias expansion produces while
  converting, so that a "billion laughs" document fails after ``MAX_ALIAS_NODES`` nodes;
- resolve plain scalars by the YAML 1.2 core schema, so ``no``, ``on`` and ``yes`` stay strings
  and ``0755`` is the integer 755;
- keep the written text of every plain scalar that is a value in ``spec.env``,
  ``metadata.labels`` or ``metadata.annotations``, or an item of ``spec.command``. ``0755``,
  ``1:30``, ``1.10``, ``0x1F`` and ``true`` there are the strings as written. A null there
  stays None, so that validation can reject it and suggest writing ``""``.

Merge keys (``<<``) belong to YAML 1.1 and are rejected with a message saying to write the fields
out. ``%YAML`` directives are ignored: every document is read by the 1.2 core schema.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator
from dataclasses import dataclass, field

from ruamel.yaml import YAML
from ruamel.yaml.error import MarkedYAMLError, YAMLError
from ruamel.yaml.events import (
    AliasEvent,
    CollectionEndEvent,
    DocumentEndEvent,
    DocumentStartEvent,
    Event,
    MappingStartEvent,
    ScalarEvent,
    SequenceStartEvent,
)
from ruamel.yaml.reader import ReaderError

from agentic_sandbox.crds import documents
from agentic_sandbox.crds.documents import FieldPath, RawDocument, format_path, line_at_offset
from agentic_sandbox.errors import FieldError, ManifestError

_CORE = "tag:yaml.org,2002:"
_NULL = re.compile(r"^(?:~|null|Null|NULL|)$")
_TRUE = re.compile(r"^(?:true|True|TRUE)$")
_FALSE = re.compile(r"^(?:false|False|FALSE)$")
_INT = re.compile(r"^[-+]?[0-9]+$")
_OCTAL = re.compile(r"^0o[0-7]+$")
_HEX = re.compile(r"^0x[0-9a-fA-F]+$")
_FLOAT = re.compile(r"^[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?$")
_INFINITY = re.compile(r"^([-+]?)\.(?:inf|Inf|INF)$")
_NAN = re.compile(r"^\.(?:nan|NaN|NAN)$")

# Mappings and sequences whose plain scalar values keep their written text.
_VERBATIM_PARENTS: frozenset[FieldPath] = frozenset(
    {("spec", "env"), ("metadata", "labels"), ("metadata", "annotations"), ("spec", "command")}
)


@dataclass(eq=False, slots=True)
class _Scalar:
    value: str
    tag: str | None
    plain: bool
    line: int


@dataclass(eq=False, slots=True)
class _Collection:
    """A mapping (children alternate key, value) or a sequence."""

    is_mapping: bool
    tag: str | None
    line: int
    children: list[_Node] = field(default_factory=list)


@dataclass(eq=False, slots=True)
class _Alias:
    target: _Node
    name: str
    line: int


_Node = _Scalar | _Collection | _Alias


def read_yaml_documents(text: str, *, source: str) -> Iterator[RawDocument]:
    """Yield every document of ``text``, empty ones included (with ``data`` None).

    Documents are read one at a time, so a caller that stops at the first invalid document
    never parses the rest. Raises ManifestError with the file and line on the first problem.
    """
    budget = _AliasBudget()
    for index, root in _Composer(source).documents(_parse_events(text, source)):
        if root is None:
            yield RawDocument(index=index, line=1, data=None)
            continue
        converter = _Converter(source=source, index=index, budget=budget)
        data = converter.convert(root, (), None)
        yield RawDocument(index=index, line=root.line, data=data, lines=converter.lines)


def _parse_events(text: str, source: str) -> Iterator[Event]:
    events = YAML(typ="safe", pure=True).parse(text)
    while True:
        try:
            event = next(events)
        except StopIteration:
            return
        except YAMLError as error:
            raise _syntax_error(error, text, source) from error
        yield event


def _marked_problem(error: MarkedYAMLError) -> tuple[int | None, str]:
    """Return the line to report and the problem text of a parser error.

    An unclosed quote or bracket is only noticed where the file ends, so when the parser gives
    the place the construct started (its context), that line is reported: it is where the
    mistake usually is.
    """
    problem = error.problem or error.context or "syntax error"
    problem_line = error.problem_mark.line + 1 if error.problem_mark is not None else None
    if error.context and error.context_mark is not None:
        context_line = error.context_mark.line + 1
        problem = f"{problem} ({error.context} that starts at line {context_line})"
        unclosed = "end of stream" in problem or error.context.startswith(
            ("while scanning", "while parsing a flow")
        )
        if unclosed or problem_line is None:
            return context_line, problem + "; check that every quote and bracket there is closed"
    return problem_line, problem


def _syntax_error(error: YAMLError, text: str, source: str) -> ManifestError:
    line: int | None = None
    if isinstance(error, MarkedYAMLError):
        line, problem = _marked_problem(error)
    elif isinstance(error, ReaderError):
        line = line_at_offset(text, error.position)
        character = error.character
        character_text = chr(character) if isinstance(character, int) else character
        problem = f"character {character_text!r} is not allowed in YAML"
    else:
        problem = str(error).splitlines()[0]
    return ManifestError(f"invalid YAML: {problem}", file=source, line=line)


class _Composer:
    """Build each document's node tree from the parser's events, without recursion."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.index = -1
        self.root: _Node | None = None
        self.stack: list[_Collection] = []
        self.anchors: dict[str, _Node] = {}

    def documents(self, events: Iterator[Event]) -> Iterator[tuple[int, _Node | None]]:
        for event in events:
            if isinstance(event, DocumentStartEvent):
                # Anchors are scoped to their document.
                self.index += 1
                self.root, self.anchors = None, {}
            elif isinstance(event, DocumentEndEvent):
                yield self.index, self.root
            elif isinstance(event, CollectionEndEvent):
                self.stack.pop()
            elif isinstance(
                event, AliasEvent | ScalarEvent | MappingStartEvent | SequenceStartEvent
            ):
                self.add(self.node_for(event), event.anchor)

    def node_for(
        self, event: AliasEvent | ScalarEvent | MappingStartEvent | SequenceStartEvent
    ) -> _Node:
        line = event.start_mark.line + 1
        if isinstance(event, AliasEvent):
            target = self.anchors.get(event.anchor)
            if target is None:
                raise self.fail(f"alias '*{event.anchor}' refers to an undefined anchor", line)
            if any(target is open_node for open_node in self.stack):
                raise self.fail(f"alias '*{event.anchor}' is inside the node it refers to", line)
            return _Alias(target=target, name=event.anchor, line=line)
        if isinstance(event, ScalarEvent):
            return _Scalar(value=event.value, tag=event.tag, plain=event.style is None, line=line)
        if len(self.stack) >= documents.MAX_DEPTH:
            raise self.fail(f"nesting is deeper than {documents.MAX_DEPTH} levels", line)
        is_mapping = isinstance(event, MappingStartEvent)
        return _Collection(is_mapping=is_mapping, tag=event.tag, line=line)

    def add(self, node: _Node, anchor: str | None) -> None:
        if anchor is not None:
            self.anchors[anchor] = node
        if self.stack:
            self.stack[-1].children.append(node)
        else:
            self.root = node
        if isinstance(node, _Collection):
            self.stack.append(node)

    def fail(self, message: str, line: int) -> ManifestError:
        return ManifestError(f"document {self.index + 1}: {message}", file=self.source, line=line)


class _AliasBudget:
    """Counts the nodes that alias expansion produces across one file."""

    def __init__(self) -> None:
        self.used = 0

    def charge(self) -> bool:
        """Count one node; return False once the file is past the limit."""
        self.used += 1
        return self.used <= documents.MAX_ALIAS_NODES


class _Converter:
    """Convert one document's node tree to plain data, recording a line for every path.

    ``alias_line`` is the line of the alias being expanded, or None outside any alias. Every node
    produced inside an expansion is charged to the file's budget.
    """

    def __init__(self, *, source: str, index: int, budget: _AliasBudget) -> None:
        self.source = source
        self.index = index
        self.budget = budget
        self.lines: dict[FieldPath, int] = {}

    def fail(self, message: str, line: int, path: FieldPath | None = None) -> ManifestError:
        field_errors = []
        if path is not None:
            field_errors.append(FieldError(format_path(path), message, line=line))
        return ManifestError(
            f"document {self.index + 1}: {message}",
            file=self.source,
            line=line,
            errors=field_errors,
        )

    def convert(self, node: _Node, path: FieldPath, alias_line: int | None) -> object:
        if len(path) > documents.MAX_DEPTH:
            raise self.fail(f"nesting is deeper than {documents.MAX_DEPTH} levels", node.line)
        self.charge(alias_line)
        if isinstance(node, _Alias):
            return self.convert(node.target, path, alias_line or node.line)
        if isinstance(node, _Scalar):
            if path[:-1] in _VERBATIM_PARENTS and node.plain and node.tag is None:
                return None if _NULL.match(node.value) else node.value
            return self.resolve_scalar(node, path)
        if not node.is_mapping:
            self.check_collection_tag(node, "seq", path)
            return self.convert_sequence(node, path, alias_line)
        self.check_collection_tag(node, "map", path)
        return self.convert_mapping(node, path, alias_line)

    def charge(self, alias_line: int | None) -> None:
        if alias_line is not None and not self.budget.charge():
            raise self.fail(
                f"expanding aliases produces more than {documents.MAX_ALIAS_NODES} nodes; "
                "write the repeated parts out or use fewer nested aliases",
                alias_line,
            )

    def convert_sequence(
        self, node: _Collection, path: FieldPath, alias_line: int | None
    ) -> list[object]:
        items: list[object] = []
        for position, child in enumerate(node.children):
            item_path = (*path, position)
            self.lines[item_path] = alias_line or child.line
            items.append(self.convert(child, item_path, alias_line))
        return items

    def convert_mapping(
        self, node: _Collection, path: FieldPath, alias_line: int | None
    ) -> dict[str, object]:
        result: dict[str, object] = {}
        key_lines: dict[str, int] = {}
        for key_node, value_node in zip(node.children[::2], node.children[1::2], strict=True):
            key = self.convert_key(key_node, path, alias_line)
            key_line = alias_line or key_node.line
            if key in key_lines:
                raise self.fail(
                    f"duplicate key {key!r} (first written at line {key_lines[key]})",
                    key_node.line,
                    (*path, key),
                )
            key_lines[key] = key_node.line
            self.lines[(*path, key)] = key_line
            result[key] = self.convert(value_node, (*path, key), alias_line)
        return result

    def convert_key(self, node: _Node, path: FieldPath, alias_line: int | None) -> str:
        self.charge(alias_line)
        target = node.target if isinstance(node, _Alias) else node
        if not isinstance(target, _Scalar):
            raise self.fail(
                "a mapping key is a mapping or a sequence; keys must be strings", node.line, path
            )
        if target.plain and target.tag is None:
            if target.value == "<<":
                raise self.fail(
                    "merge keys ('<<') are not supported; write the fields out", node.line, path
                )
            if path in _VERBATIM_PARENTS and not _NULL.match(target.value):
                return target.value
        key = self.resolve_scalar(target, path)
        if not isinstance(key, str):
            raise self.fail(
                f"mapping key {target.value!r} is read as {_type_name(key)}; keys must be "
                f"strings, so quote it: '{target.value}'",
                node.line,
                path,
            )
        return key

    def check_collection_tag(self, node: _Collection, kind: str, path: FieldPath) -> None:
        if node.tag not in (None, "!", _CORE + kind):
            raise self.fail(f"tag {node.tag!r} is not supported here", node.line, path)

    def resolve_scalar(self, node: _Scalar, path: FieldPath) -> object:
        if node.tag is None:
            return _resolve_plain(node.value) if node.plain else node.value
        if node.tag in ("!", _CORE + "str"):
            return node.value
        tag_type = node.tag.removeprefix(_CORE)
        if tag_type in _TAGGED_TYPES:
            resolved = _resolve_plain(node.value)
            if tag_type == "float" and isinstance(resolved, int) and not isinstance(resolved, bool):
                return float(resolved)
            if _type_name(resolved) == _TAGGED_TYPES[tag_type]:
                return resolved
            raise self.fail(f"{node.value!r} is not a valid !!{tag_type}", node.line, path)
        raise self.fail(
            f"tag {node.tag!r} is not supported; use plain values or the YAML 1.2 core tags "
            "!!str, !!int, !!float, !!bool and !!null",
            node.line,
            path,
        )


_TAGGED_TYPES = {"null": "null", "bool": "a boolean", "int": "an integer", "float": "a float"}


def _type_name(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a float"
    return "a string"


def _resolve_plain(text: str) -> object:
    """Resolve a plain scalar by the YAML 1.2 core schema."""
    if _NULL.match(text):
        return None
    if _TRUE.match(text):
        return True
    if _FALSE.match(text):
        return False
    if _INT.match(text):
        return int(text, 10)
    if _OCTAL.match(text):
        return int(text[2:], 8)
    if _HEX.match(text):
        return int(text[2:], 16)
    if _FLOAT.match(text):
        return float(text)
    infinity = _INFINITY.match(text)
    if infinity:
        return -math.inf if infinity.group(1) == "-" else math.inf
    if _NAN.match(text):
        return math.nan
    return text
