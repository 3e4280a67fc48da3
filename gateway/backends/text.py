"""Assembling streamed text: across chunk edges, and from cumulative text."""

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
