"""Assembling streamed text: across chunk edges, from cumulative text, and up to a stop string."""

from __future__ import annotations

import codecs

REPLACEMENT = "\ufffd"


class DeltaText:
    """Text that arrives as per-response pieces of UTF-8. A character whose bytes are split
    across two responses is joined instead of becoming two U+FFFD."""

    __slots__ = ("_decoder",)

    def __init__(self) -> None:
        self._decoder = codecs.getincrementaldecoder("utf-8")("replace")

    def feed(self, raw: bytes) -> str:
        return str(self._decoder.decode(raw))

    def flush(self) -> str:
        return str(self._decoder.decode(b"", final=True))


class CumulativeText:
    """Text that arrives whole each time (the text so far): yields what is new. A trailing
    U+FFFD is the first part of a character still being generated, so it is held back."""

    __slots__ = ("_latest", "_sent")

    def __init__(self) -> None:
        self._sent = 0
        self._latest = ""

    def feed(self, raw: bytes) -> str:
        text = raw.decode("utf-8", "replace")
        self._latest = text
        safe = len(text.rstrip(REPLACEMENT))
        if safe <= self._sent:
            return ""
        new = text[self._sent : safe]
        self._sent = safe
        return new

    def flush(self) -> str:
        """At the end nothing more will complete a held-back character: send it as is."""
        rest = self._latest[self._sent :]
        self._sent = len(self._latest)
        return rest


class StopStringFilter:
    """Cuts streamed text at the first stop string (shown only with `keep_stop`), holding
    back any tail that could still become one."""

    __slots__ = ("_hold", "_keep_stop", "_pending", "_stops", "stopped")

    def __init__(self, stops: list[str], keep_stop: bool = False) -> None:
        self._stops = [stop for stop in stops if stop]
        self._keep_stop = keep_stop
        self._hold = max((len(stop) for stop in self._stops), default=1) - 1
        self._pending = ""
        self.stopped = False

    def feed(self, text: str) -> str:
        if self.stopped:
            return ""
        pending = self._pending + text
        shown, found = cut_at_stop(pending, self._stops, self._keep_stop)
        if found:
            self.stopped = True
            self._pending = ""
            return shown
        keep = self._partial_stop_length(pending)
        self._pending = pending[len(pending) - keep :] if keep else ""
        return pending[: len(pending) - keep]

    def _partial_stop_length(self, text: str) -> int:
        """Length of the longest tail of `text` that is the beginning of a stop string."""
        for length in range(min(self._hold, len(text)), 0, -1):
            tail = text[-length:]
            if any(stop.startswith(tail) for stop in self._stops):
                return length
        return 0

    def flush(self) -> str:
        pending, self._pending = self._pending, ""
        return "" if self.stopped else pending


def cut_at_stop(text: str, stops: list[str], keep_stop: bool = False) -> tuple[str, bool]:
    """`text` up to the first stop string (through it with `keep_stop`), and whether one was found."""
    found = [(index, len(stop)) for stop in stops if stop and (index := text.find(stop)) != -1]
    if not found:
        return text, False
    index, length = min(found)
    return text[: index + length] if keep_stop else text[:index], True
