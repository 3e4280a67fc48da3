"""Markers in text that arrives in pieces: how much of a tail to hold back because it could
still grow into one (a stop string, a tool-call or thinking tag)."""

from __future__ import annotations

from collections.abc import Sequence


def partial_marker(text: str, markers: Sequence[str]) -> int:
    """Length of the longest tail of `text` that is the beginning of a marker."""
    longest = max((len(marker) for marker in markers), default=1) - 1
    for length in range(min(longest, len(text)), 0, -1):
        tail = text[-length:]
        if any(marker.startswith(tail) for marker in markers):
            return length
    return 0
