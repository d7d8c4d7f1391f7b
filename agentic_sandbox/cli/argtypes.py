"""Argument types shared by sandboxctl's commands."""

from __future__ import annotations

import argparse
from collections.abc import Callable


def positive_int(text: str) -> int:
    """Parse a whole number of at least 1, for argparse's ``type=``."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} is below the minimum of 1")
    return value


def timeout_seconds(text: str) -> int:
    """Parse ``--timeout``: a whole number of seconds, 0 meaning no limit."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"--timeout {text!r} is not a whole number") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"--timeout is {value}; give 0 (no limit) or more")
    return value


def key_value(option: str, key: str) -> Callable[[str], tuple[str, str]]:
    """Return a parser of ``KEY=VALUE`` for ``option``; ``key`` names the key in messages."""

    def parse(text: str) -> tuple[str, str]:
        name, separator, value = text.partition("=")
        if not separator or not name:
            raise argparse.ArgumentTypeError(f"{option} {text!r} is not in the form {key}=VALUE")
        return name, value

    return parse
