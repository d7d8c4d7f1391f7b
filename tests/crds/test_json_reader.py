"""The JSON reader: strict parsing, duplicate keys, and line numbers for every path."""

from __future__ import annotations

import pytest

from agentic_sandbox.crds import documents
from agentic_sandbox.crds.json_reader import read_json_documents
from agentic_sandbox.errors import ManifestError


def read_error(text: str) -> ManifestError:
    with pytest.raises(ManifestError) as caught:
        read_json_documents(text, source="test.json")
    return caught.value


def test_object_is_one_document() -> None:
    text = "\n".join(
        [
            "{",
            '  "kind": "Instance",',
            '  "spec": {',
            '    "env": {"A": "no"},',
            '    "mounts": [',
            '      "/a:/b"',
            "    ]",
            "  }",
            "}",
        ]
    )
    (document,) = read_json_documents(text, source="test.json")
    assert document.index == 0
    assert document.line == 1
    assert document.data == {"kind": "Instance", "spec": {"env": {"A": "no"}, "mounts": ["/a:/b"]}}
    assert document.lines[("kind",)] == 2
    assert document.lines[("spec",)] == 3
    assert document.lines[("spec", "env", "A")] == 4
    assert document.lines[("spec", "mounts", 0)] == 6


def test_array_is_one_document_per_item() -> None:
    text = '[\n  {"a": 1},\n  {\n    "b": "x\\n\\"y"\n  }\n]'
    docs = read_json_documents(text, source="test.json")
    assert [document.index for document in docs] == [0, 1]
    assert [document.line for document in docs] == [2, 3]
    assert docs[1].data == {"b": 'x\n"y'}
    assert docs[1].lines == {("b",): 4}


def test_keys_with_escapes_located() -> None:
    (document,) = read_json_documents('{"a\\"b": {"c": 1}}', source="test.json")
    assert document.lines[('a"b', "c")] == 1


def test_duplicate_key_rejected_with_lines() -> None:
    error = read_error('{\n  "spec": {\n    "image": "a",\n    "image": "b"\n  }\n}')
    assert error.line == 4
    assert "duplicate key 'image' (first written at line 3)" in str(error)


def test_duplicate_key_on_one_line() -> None:
    error = read_error('{"a": 1, "a": 2}')
    assert error.line == 1
    assert "duplicate key 'a'" in str(error)


def test_syntax_error_reports_line() -> None:
    error = read_error('{\n  "a": 1,\n  "b": \n}')
    assert error.file == "test.json"
    assert error.line == 4
    assert str(error).startswith("test.json:4: invalid JSON:")


@pytest.mark.parametrize("constant", ["NaN", "Infinity", "-Infinity"])
def test_non_finite_numbers_rejected(constant: str) -> None:
    assert "is not a JSON number" in str(read_error(f'{{"cpus": {constant}}}'))


def test_deep_nesting_rejected() -> None:
    depth = documents.MAX_DEPTH + 1
    assert "deeper than" in str(read_error("[" * depth + "]" * depth))


def test_very_deep_nesting_rejected() -> None:
    assert "deeper than" in str(read_error("[" * 100_000 + "]" * 100_000))
