"""Streaming a virtual machine's serial log file, optionally following it as it grows.

libvirt has QEMU append the guest's serial console to a file in the domain's directory. A
followed stream waits on inotify (through ctypes, Linux only, as is libvirt's QEMU driver)
for the file to change and never polls on a timer. The watch is in place before the first
read, so output written between the read and the watch is never missed.

Following ends when the ``stopped`` event is set (the driver sets it when the domain stops),
after one last read of whatever the guest wrote before it stopped.
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import os
import struct
from collections.abc import AsyncGenerator
from pathlib import Path

CHUNK_SIZE = 64 * 1024

_IN_NONBLOCK = os.O_NONBLOCK
_IN_CLOEXEC = os.O_CLOEXEC
_IN_MODIFY = 0x00000002
_IN_ATTRIB = 0x00000004
_IN_CLOSE_WRITE = 0x00000008
_IN_MOVED_TO = 0x00000080
_IN_CREATE = 0x00000100
# The serial log is written in place; a create or a rename over it means it was replaced.
_WATCH_MASK = _IN_MODIFY | _IN_ATTRIB | _IN_CLOSE_WRITE | _IN_MOVED_TO | _IN_CREATE

# struct inotify_event: wd, mask, cookie, len, then len bytes of NUL-padded name.
_EVENT_HEADER = struct.Struct("iIII")

_libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)


class FileWatch:
    """An inotify watch that sets an asyncio.Event when one file changes.

    It watches the file's directory, which also reports the file created (when a domain first
    starts) or replaced, and ignores events for the directory's other files.
    """

    def __init__(self, path: Path) -> None:
        directory = path.parent
        self._name = os.fsencode(path.name)
        self.changed = asyncio.Event()
        self._loop = asyncio.get_running_loop()
        fd = _libc.inotify_init1(_IN_NONBLOCK | _IN_CLOEXEC)
        if fd < 0:
            code = ctypes.get_errno()
            raise OSError(code, f"inotify_init1 failed: {os.strerror(code)}")
        self._fd = fd
        if _libc.inotify_add_watch(fd, os.fsencode(directory), _WATCH_MASK) < 0:
            code = ctypes.get_errno()
            os.close(fd)
            raise OSError(code, f"inotify_add_watch failed: {os.strerror(code)}", str(directory))
        self._loop.add_reader(fd, self._drain)

    def _drain(self) -> None:
        while True:
            try:
                buffer = os.read(self._fd, 64 * 1024)
            except BlockingIOError:
                return
            except InterruptedError:
                continue
            if not buffer:
                return
            if self._name in _event_names(buffer):
                self.changed.set()

    async def wait(self, stopped: asyncio.Event) -> None:
        """Wait until the directory changes or ``stopped`` is set; clear the change flag."""
        if not self.changed.is_set() and not stopped.is_set():
            waiters = [
                asyncio.ensure_future(self.changed.wait()),
                asyncio.ensure_future(stopped.wait()),
            ]
            try:
                await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for waiter in waiters:
                    waiter.cancel()
        self.changed.clear()

    def close(self) -> None:
        self._loop.remove_reader(self._fd)
        os.close(self._fd)


def _event_names(buffer: bytes) -> set[bytes]:
    """Return the file names of the inotify events in ``buffer``."""
    names = set()
    position = 0
    while position + _EVENT_HEADER.size <= len(buffer):
        _wd, _mask, _cookie, length = _EVENT_HEADER.unpack_from(buffer, position)
        position += _EVENT_HEADER.size
        names.add(buffer[position : position + length].rstrip(b"\0"))
        position += length
    return names


def read_tail(path: Path, lines: int) -> tuple[bytes, int]:
    """Return the last ``lines`` lines of the file and the file size they end at.

    A last line without a line break counts as a line. Reads backwards in blocks, so a long
    log costs only the blocks that hold those lines.
    """
    try:
        file = open(path, "rb")
    except FileNotFoundError:
        return b"", 0
    with file:
        end = file.seek(0, os.SEEK_END)
        if lines <= 0:
            return b"", end
        position = end
        data = b""
        while position > 0:
            step = min(CHUNK_SIZE, position)
            position -= step
            file.seek(position)
            data = file.read(step) + data
            # The break ending the last line does not start a line, so it is not counted.
            if data.count(b"\n", 0, len(data) - 1) >= lines:
                break
    cut = len(data) - 1
    for _ in range(lines):
        cut = data.rfind(b"\n", 0, cut)
        if cut < 0:
            return data, end  # the whole file has no more than ``lines`` lines
    return data[cut + 1 :], end


def read_from(path: Path, offset: int) -> tuple[bytes, int]:
    """Return the file's content past ``offset`` and the new offset.

    A file shorter than ``offset`` was truncated or replaced, so it is read from the start.
    """
    try:
        with open(path, "rb") as file:
            end = file.seek(0, os.SEEK_END)
            if end < offset:
                offset = 0
            file.seek(offset)
            data = file.read(end - offset)
    except FileNotFoundError:
        return b"", 0
    return data, offset + len(data)


async def stream_log(
    path: Path, *, tail: int | None, follow: bool, stopped: asyncio.Event
) -> AsyncGenerator[bytes, None]:
    """Yield the log's content (the last ``tail`` lines, or all), then new output if ``follow``.

    Does not yield the protocol's leading ``b""``; the caller does, once the domain is found.
    A log that does not exist yet reads as empty.
    """
    watch = FileWatch(path) if follow else None
    try:
        if tail is not None:
            data, offset = await asyncio.to_thread(read_tail, path, tail)
        else:
            data, offset = await asyncio.to_thread(read_from, path, 0)
        for start in range(0, len(data), CHUNK_SIZE):
            yield data[start : start + CHUNK_SIZE]
        if watch is None:
            return

        while True:
            done = stopped.is_set()
            data, offset = await asyncio.to_thread(read_from, path, offset)
            if data:
                yield data
            if done:
                return
            await watch.wait(stopped)
    finally:
        if watch is not None:
            watch.close()
