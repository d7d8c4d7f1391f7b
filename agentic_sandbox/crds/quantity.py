"""Parsing of CPU and memory quantities in the forms Kubernetes and Docker users write."""

from __future__ import annotations

import re
from typing import Any

_SIZE = re.compile(r"^([0-9]+(?:\.[0-9]+)?)\s*([A-Za-z]*)$")
_UNITS = {
    "": 1,
    "b": 1,
    "k": 10**3,
    "kb": 10**3,
    "m": 10**6,
    "mb": 10**6,
    "g": 10**9,
    "gb": 10**9,
    "t": 10**12,
    "tb": 10**12,
    "ki": 2**10,
    "kib": 2**10,
    "mi": 2**20,
    "mib": 2**20,
    "gi": 2**30,
    "gib": 2**30,
    "ti": 2**40,
    "tib": 2**40,
}
# Docker rejects memory limits below 6 MiB.
MIN_MEMORY_BYTES = 6 * 2**20
MAX_CPUS = 1024.0


def parse_memory(value: Any) -> int:
    """Convert ``512Mi``, ``1G``, ``2gb`` or a byte count to bytes."""
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise ValueError(f"size {value!r} is not a size such as '512Mi' or '2Gi'")
    match = _SIZE.match(str(value).strip())
    unit = match.group(2).lower() if match else ""
    if match is None or unit not in _UNITS:
        raise ValueError(
            f"size {value!r} is invalid; write a number with an optional unit "
            "(Ki, Mi, Gi, Ti, K, M, G, T), for example '512Mi'"
        )
    size = int(float(match.group(1)) * _UNITS[unit])
    if size < MIN_MEMORY_BYTES:
        raise ValueError(f"size {value!r} is below the minimum of 6Mi")
    return size


def parse_cpus(value: Any) -> float:
    """Convert ``1.5``, ``"2"`` or millicores such as ``"500m"`` to a CPU count."""
    if isinstance(value, bool):
        raise ValueError(f"cpus {value!r} is not a number such as 1.5 or '500m'")
    try:
        if isinstance(value, str) and value.endswith("m"):
            cpus = int(value[:-1]) / 1000
        else:
            cpus = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"cpus {value!r} is not a number such as 1.5 or '500m'") from None
    if not 0.01 <= cpus <= MAX_CPUS:
        raise ValueError(f"cpus {value!r} is out of range; use a value from 0.01 to {MAX_CPUS:g}")
    return cpus
