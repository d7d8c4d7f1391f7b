"""Manifest discovery on a real file system tree."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from agentic_sandbox.sources.scan import is_manifest_name, is_temporary, scan_tree


@pytest.mark.parametrize(
    "name",
    [
        "web.yaml~",
        ".web.yaml.swp",
        "web.yaml.swx",
        ".#web.yaml",
        "#web.yaml#",
        "4913",
        "web.yaml.tmp",
        "web.yaml.part",
        "web.yaml.bak",
        ".goutputstream-AB12",
    ],
)
def test_is_temporary_editor_names(name: str) -> None:
    assert is_temporary(name)


@pytest.mark.parametrize("name", ["web.yaml", "web.yml", "web.json", "WEB.YAML", "a.b.yaml"])
def test_is_manifest_name_accepts(name: str) -> None:
    assert is_manifest_name(name)


@pytest.mark.parametrize("name", [".web.yaml", "web.txt", "web.yaml~", "README.md", "web.yaml.tmp"])
def test_is_manifest_name_rejects(name: str) -> None:
    assert not is_manifest_name(name)


def test_scan_recursive_skips_hidden_and_temporary(tmp_path: Path) -> None:
    (tmp_path / "team" / "deep").mkdir(parents=True)
    (tmp_path / ".git").mkdir()
    for relative in [
        "a.yaml",
        "b.yml",
        "c.json",
        "team/d.yaml",
        "team/deep/e.yaml",
        ".hidden.yaml",
        ".git/f.yaml",
        "notes.txt",
        "a.yaml~",
        "#a.yaml#",
        "4913",
    ]:
        (tmp_path / relative).write_text("x")

    found = scan_tree(str(tmp_path)).files

    assert found == [
        str(tmp_path / name)
        for name in ["a.yaml", "b.yml", "c.json", "team/d.yaml", "team/deep/e.yaml"]
    ]


def test_scan_configmap_layout(tmp_path: Path) -> None:
    (tmp_path / "..2026_12_04_10_00_00.1").mkdir()
    (tmp_path / "..2026_12_04_10_00_00.1" / "web.yaml").write_text("x")
    os.symlink("..2026_12_04_10_00_00.1", tmp_path / "..data")
    os.symlink("..data/web.yaml", tmp_path / "web.yaml")

    result = scan_tree(str(tmp_path))

    assert result.files == [str(tmp_path / "web.yaml")]
    assert str(tmp_path / "..data") in result.symlinks


def test_scan_symlink_loop_terminates(tmp_path: Path) -> None:
    (tmp_path / "team").mkdir()
    (tmp_path / "team" / "a.yaml").write_text("x")
    os.symlink(tmp_path, tmp_path / "team" / "up")
    os.symlink(tmp_path / "team", tmp_path / "team" / "self")

    assert scan_tree(str(tmp_path)).files == [str(tmp_path / "team" / "a.yaml")]


def test_scan_prefers_real_path_over_link(tmp_path: Path) -> None:
    (tmp_path / "real").mkdir()
    (tmp_path / "real" / "a.yaml").write_text("x")
    os.symlink(tmp_path / "real", tmp_path / "alias")

    assert scan_tree(str(tmp_path)).files == [str(tmp_path / "real" / "a.yaml")]


def test_scan_external_symlinked_directory(tmp_path: Path) -> None:
    root, outside = tmp_path / "root", tmp_path / "outside"
    root.mkdir()
    (outside / "sub").mkdir(parents=True)
    (outside / "sub" / "a.yaml").write_text("x")
    os.symlink(outside, root / "team")

    result = scan_tree(str(root))

    assert result.files == [str(root / "team" / "sub" / "a.yaml")]
    assert result.external_roots == {str(outside): [str(root / "team")]}


def test_scan_dangling_symlink_skipped(tmp_path: Path) -> None:
    os.symlink(tmp_path / "missing.yaml", tmp_path / "a.yaml")

    assert scan_tree(str(tmp_path)).files == []


def test_scan_missing_root_raises(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        scan_tree(str(tmp_path / "missing"))
