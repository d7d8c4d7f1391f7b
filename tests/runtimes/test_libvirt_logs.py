"""Tests of reading and following a serial log file."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from agentic_sandbox.runtimes.libvirt_logs import read_from, read_tail, stream_log


@pytest.mark.parametrize(
    ("content", "lines", "expected"),
    [
        (b"a\nb\nc\n", 2, b"b\nc\n"),
        (b"a\nb\nc", 2, b"b\nc"),
        (b"a\nb\nc\n", 3, b"a\nb\nc\n"),
        (b"a\nb\nc\n", 10, b"a\nb\nc\n"),
        (b"a\nb\nc\n", 0, b""),
        (b"", 5, b""),
        (b"\n\n", 1, b"\n"),
    ],
)
def test_read_tail(tmp_path: Path, content: bytes, lines: int, expected: bytes) -> None:
    path = tmp_path / "serial.log"
    path.write_bytes(content)

    data, end = read_tail(path, lines)

    assert data == expected
    assert end == len(content)


def test_read_tail_spans_blocks(tmp_path: Path) -> None:
    path = tmp_path / "serial.log"
    lines = [f"line {i:06d} ".encode() + b"x" * 200 + b"\n" for i in range(2000)]
    path.write_bytes(b"".join(lines))

    data, _ = read_tail(path, 700)

    assert data == b"".join(lines[-700:])


def test_read_tail_missing_file(tmp_path: Path) -> None:
    assert read_tail(tmp_path / "absent.log", 3) == (b"", 0)


def test_read_from_restarts_after_truncation(tmp_path: Path) -> None:
    path = tmp_path / "serial.log"
    path.write_bytes(b"new\n")

    assert read_from(path, 100) == (b"new\n", 4)


async def collect(stream: object, count: int) -> list[bytes]:
    chunks = []
    assert hasattr(stream, "__anext__")
    for _ in range(count):
        chunks.append(await asyncio.wait_for(stream.__anext__(), 10))
    return chunks


async def test_stream_without_follow_ends(tmp_path: Path) -> None:
    path = tmp_path / "serial.log"
    path.write_bytes(b"one\ntwo\n")

    chunks = [c async for c in stream_log(path, tail=None, follow=False, stopped=asyncio.Event())]

    assert b"".join(chunks) == b"one\ntwo\n"


async def test_stream_follow_sees_appends(tmp_path: Path) -> None:
    path = tmp_path / "serial.log"
    path.write_bytes(b"one\ntwo\n")
    stopped = asyncio.Event()
    stream = stream_log(path, tail=1, follow=True, stopped=stopped)

    first = await collect(stream, 1)
    with path.open("ab") as file:
        file.write(b"three\n")
    second = await collect(stream, 1)

    assert first == [b"two\n"]
    assert second == [b"three\n"]
    await stream.aclose()


async def test_stream_follow_waits_for_file_creation(tmp_path: Path) -> None:
    path = tmp_path / "serial.log"
    stopped = asyncio.Event()
    stream = stream_log(path, tail=None, follow=True, stopped=stopped)

    pending = asyncio.ensure_future(stream.__anext__())
    await asyncio.sleep(0)
    path.write_bytes(b"booted\n")
    chunk = await asyncio.wait_for(pending, 10)

    assert chunk == b"booted\n"
    await stream.aclose()


async def test_stream_follow_ignores_other_files(tmp_path: Path) -> None:
    path = tmp_path / "serial.log"
    path.write_bytes(b"")
    stopped = asyncio.Event()
    stream = stream_log(path, tail=None, follow=True, stopped=stopped)

    pending = asyncio.ensure_future(stream.__anext__())
    await asyncio.sleep(0)
    (tmp_path / "disk.qcow2").write_bytes(b"guest data")
    path.write_bytes(b"console\n")

    assert await asyncio.wait_for(pending, 10) == b"console\n"
    await stream.aclose()


async def test_stream_follow_ends_when_stopped(tmp_path: Path) -> None:
    path = tmp_path / "serial.log"
    path.write_bytes(b"")
    stopped = asyncio.Event()
    stream = stream_log(path, tail=None, follow=True, stopped=stopped)
    pending = asyncio.ensure_future(stream.__anext__())
    await asyncio.sleep(0)

    with path.open("ab") as file:
        file.write(b"power down\n")
    stopped.set()
    chunks = [await asyncio.wait_for(pending, 10)]
    chunks += [chunk async for chunk in stream]

    assert b"".join(chunks) == b"power down\n"
