"""Argument types shared by sandboxctl's commands."""

from __future__ import annotations

import argparse


def positive_int(text: str) -> int:
    """Parse a whole number of at least 1, for argparse's ``type=``."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} is below the minimum of 1")
    return value
