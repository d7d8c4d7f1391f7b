"""The YAML reader: core-schema typing, written text kept where it matters, and its limits."""

from __future__ import annotations

import math
from io import StringIO

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st
from ruamel.yaml import YAML
from ruamel.yaml.error import YAMLError

from agentic_sandbox.crds import documents, yaml_reader
from agentic_sandbox.crds.yaml_reader import read_yaml_documents
from agentic_sandbox.errors import ManifestError


def read(text: str) -> list[documents.RawDocument]:
    return list(read_yaml_documents(text, source="test.yaml"))


def read_one(text: str) -> object:
    (document,) = read(text)
    return document.data


def read_error(text: str) -> ManifestError:
    with pytest.raises(ManifestError) as caught:
        read(text)
    return caught.value


@pytest.mark.parametrize(
    ("written", "expected"),
    [
        ("no", "no"),
        ("on", "on"),
        ("yes", "yes"),
        ("off", "off"),
        ("0755", 755),
        ("0o17", 15),
        ("0x1F", 31),
        ("1:30", "1:30"),
        ("1.10", 1.1),
        ("-3", -3),
        ("1e3", 1000.0),
        ("true", True),
        ("False", False),
        ("~", None),
        ("null", None),
        ("", None),
        ("1_000", "1_000"),
        (".inf", math.inf),
        ("'0755'", "0755"),
        ('"true"', "true"),
        ("!!str 12", "12"),
        ("!!float 5", 5.0),
        ("!!int '0x10'", 16),
        ("! 12", "12"),
    ],
)
def test_scalar_core_schema(written: str, expected: object) -> None:
    assert read_one(f"value: {written}\n") == {"value": expected}


def test_scalar_nan() -> None:
    data = read_one("value: .nan\n")
    assert isinstance(data, dict)
    assert math.isnan(data["value"])


@pytest.mark.parametrize(
    "written", ["no", "on", "0755", "1:30", "1.10", "0x1F", "true", "1e3", "-0", "+1", ".inf"]
)
def test_env_value_keeps_written_text(written: str) -> None:
    data = read_one(f"spec:\n  env:\n    VALUE: {written}\n")
    assert data == {"spec": {"env": {"VALUE": written}}}


@pytest.mark.parametrize("written", ["no", "0755", "1.10", "true"])
def test_label_and_annotation_values_keep_written_text(written: str) -> None:
    text = f"metadata:\n  labels:\n    version: {written}\n  annotations:\n    note: {written}\n"
    data = read_one(text)
    assert data == {"metadata": {"labels": {"version": written}, "annotations": {"note": written}}}


def test_command_items_keep_written_text() -> None:
    data = read_one("spec:\n  command: [sleep, 10, 0755, yes]\n")
    assert data == {"spec": {"command": ["sleep", "10", "0755", "yes"]}}


@pytest.mark.parametrize("written", ["", "~", "null"])
def test_env_null_stays_none(written: str) -> None:
    # Validation rejects the None and suggests writing "" for an empty string.
    assert read_one(f"spec:\n  env:\n    EMPTY: {written}\n") == {"spec": {"env": {"EMPTY": None}}}


def test_env_tagged_value_follows_tag() -> None:
    assert read_one("spec:\n  env:\n    PORT: !!int 80\n") == {"spec": {"env": {"PORT": 80}}}


def test_label_keys_keep_written_text() -> None:
    assert read_one("metadata:\n  labels:\n    true: x\n") == {
        "metadata": {"labels": {"true": "x"}}
    }


def test_verbatim_only_at_known_paths() -> None:
    data = read_one("other:\n  env:\n    A: 0755\nspec:\n  image: 1.10\n")
    assert data == {"other": {"env": {"A": 755}}, "spec": {"image": 1.1}}


def test_lines_recorded_for_every_path() -> None:
    text = "a: 1\nb:\n  c: [x,\n    y]\n  d:\n    - e: 2\n"
    (document,) = read(text)
    assert document.line == 1
    assert document.lines[("a",)] == 1
    assert document.lines[("b",)] == 2
    assert document.lines[("b", "c")] == 3
    assert document.lines[("b", "c", 0)] == 3
    assert document.lines[("b", "c", 1)] == 4
    assert document.lines[("b", "d", 0)] == 6
    assert document.lines[("b", "d", 0, "e")] == 6


def test_duplicate_key_rejected() -> None:
    error = read_error("spec:\n  image: a\n  image: b\n")
    assert error.file == "test.yaml"
    assert error.line == 3
    assert "duplicate key 'image' (first written at line 2)" in str(error)
    assert error.errors[0].path == "spec.image"


def test_duplicate_key_after_resolution_rejected() -> None:
    error = read_error("a: 1\n'a': 2\n")
    assert "duplicate key 'a'" in str(error)


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("1: x\n", "mapping key '1' is read as an integer"),
        ("true: x\n", "mapping key 'true' is read as a boolean"),
        ("? [a]\n: x\n", "keys must be strings"),
        ("~: x\n", "mapping key '~' is read as null"),
    ],
)
def test_non_string_key_rejected(text: str, fragment: str) -> None:
    assert fragment in str(read_error(text))


def test_merge_key_rejected() -> None:
    error = read_error("base: &base {a: 1}\nthing:\n  <<: *base\n  b: 2\n")
    assert "merge keys ('<<') are not supported" in str(error)
    assert error.line == 3


@pytest.mark.parametrize(
    "text", ["a: !Ref x\n", "a: !!binary aGk=\n", "a: !!timestamp 2020-01-01\n", "a: !!set {}\n"]
)
def test_unsupported_tag_rejected(text: str) -> None:
    assert "is not supported" in str(read_error(text))


def test_wrong_core_tag_rejected() -> None:
    assert "'x' is not a valid !!int" in str(read_error("a: !!int x\n"))


def test_tab_indentation_rejected_with_line() -> None:
    error = read_error("spec:\n\timage: x\n")
    assert error.file == "test.yaml"
    assert error.line == 2
    assert str(error).startswith("test.yaml:2: invalid YAML:")


def test_syntax_error_reports_line() -> None:
    error = read_error("a: 1\nb: [1, 2\nc: 3\n")
    assert error.line is not None
    assert "invalid YAML" in str(error)


def test_control_character_rejected_with_line() -> None:
    error = read_error("a: 1\nb: \x07\n")
    assert error.line == 2
    assert "is not allowed in YAML" in str(error)


def test_multiple_documents_with_empty_ones() -> None:
    text = "# header\n---\na: 1\n---\n---\n# only a comment\n---\nb: 2\n...\n"
    docs = read(text)
    assert [document.index for document in docs] == [0, 1, 2, 3]
    assert [document.data for document in docs] == [{"a": 1}, None, None, {"b": 2}]
    assert docs[3].line == 8


def test_anchor_and_alias_expand() -> None:
    data = read_one("base: &env {A: x}\ncopy: *env\n")
    assert data == {"base": {"A": "x"}, "copy": {"A": "x"}}


def test_undefined_alias_rejected() -> None:
    assert "undefined anchor" in str(read_error("a: *missing\n"))


def test_recursive_alias_rejected() -> None:
    assert "inside the node it refers to" in str(read_error("a: &x [1, *x]\n"))


def billion_laughs(levels: int = 9) -> str:
    lines = ["l0: &l0 [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    for level in range(1, levels):
        refs = ", ".join([f"*l{level - 1}"] * 10)
        lines.append(f"l{level}: &l{level} [{refs}]")
    return "\n".join(lines) + "\n"


def test_billion_laughs_rejected_within_budget(monkeypatch: pytest.MonkeyPatch) -> None:
    charges = 0
    original_charge = yaml_reader._AliasBudget.charge

    def counting_charge(budget: yaml_reader._AliasBudget) -> bool:
        nonlocal charges
        charges += 1
        return original_charge(budget)

    monkeypatch.setattr(yaml_reader._AliasBudget, "charge", counting_charge)
    error = read_error(billion_laughs())
    assert "expanding aliases produces more than" in str(error)
    assert error.line is not None
    assert charges == documents.MAX_ALIAS_NODES + 1


def test_alias_budget_spans_documents(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(documents, "MAX_ALIAS_NODES", 50)
    one = "a: &a [1, 2, 3, 4, 5, 6, 7, 8, 9]\nb: [*a, *a]\n"  # 22 expanded nodes per document
    assert len(read("---\n".join([one] * 2))) == 2
    assert "more than 50 nodes" in str(read_error("---\n".join([one] * 3)))


def test_deep_nesting_rejected() -> None:
    error = read_error("[" * 10_000 + "]" * 10_000)
    assert f"deeper than {documents.MAX_DEPTH} levels" in str(error)


def test_deep_nesting_through_alias_rejected() -> None:
    nested = "[" * 40 + "1" + "]" * 40
    text = f"a: &a {nested}\nb: [[[[[[[[[[[[[[[[[[[[[[[[[[[[[*a]]]]]]]]]]]]]]]]]]]]]]]]]]]]]\n"
    assert "deeper than" in str(read_error(text))


env_text = st.text(st.characters(exclude_categories=["Cs"], exclude_characters="\x00"))


@given(value=env_text)
def test_env_value_round_trips_when_quoted(value: str) -> None:
    yaml = YAML(typ="safe", pure=True)
    yaml.default_style = '"'  # type: ignore[assignment]
    buffer = StringIO()
    yaml.dump({"spec": {"env": {"VALUE": value}}}, buffer)
    assert read_one(buffer.getvalue()) == {"spec": {"env": {"VALUE": value}}}


@given(written=st.from_regex(r"[0-9a-zA-Z.:+\-_~]{1,12}", fullmatch=True))
def test_env_plain_value_keeps_text(written: str) -> None:
    text = f"spec:\n  env:\n    VALUE: {written}\n"
    try:
        events = list(YAML(typ="safe", pure=True).parse(text))
    except YAMLError:
        assume(False)
        return
    scalars = [event for event in events if type(event).__name__ == "ScalarEvent"]
    # Only texts that YAML reads as one plain scalar exactly as written are in scope.
    assume(len(scalars) == 4 and scalars[-1].value == written and scalars[-1].style is None)
    expected = None if written in ("~", "null", "Null", "NULL") else written
    assert read_one(text) == {"spec": {"env": {"VALUE": expected}}}


def test_unclosed_quote_reported_where_it_opens() -> None:
    text = 'a: 1\nb: "unclosed\nc: 3\nd: 4\n'
    with pytest.raises(ManifestError) as caught:
        list(read_yaml_documents(text, source="bad.yaml"))
    assert caught.value.line == 2
    assert "quote and bracket" in str(caught.value)


def test_unclosed_bracket_reported_where_it_opens() -> None:
    text = "a: 1\nb: [1, 2\nc: 3\n"
    with pytest.raises(ManifestError) as caught:
        list(read_yaml_documents(text, source="bad.yaml"))
    assert caught.value.line == 2
