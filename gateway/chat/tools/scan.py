"""Where a JSON value written piece by piece ends, without parsing it: depth, strings and
escapes are tracked, so the text of a call's arguments can be passed on as it arrives."""

from __future__ import annotations


class JsonValueEnd:
    """Finds the end of one JSON value in text that arrives in pieces."""

    __slots__ = ("_depth", "_escaped", "_in_string", "_kind")

    def __init__(self) -> None:
        self._depth = 0
        self._in_string = False
        self._escaped = False
        self._kind = ""  # "" before the first character; then "container", "string" or "scalar"

    @property
    def started(self) -> bool:
        return bool(self._kind)

    def scan(self, text: str) -> int | None:
        """The index in `text` just past the value's end, or None when the value goes on.
        Leading whitespace before the value is skipped. A scalar (number, true, …) ends at the
        first character that cannot belong to it, which is not part of the value."""
        for position, char in enumerate(text):
            if not self._kind:
                if char.isspace():
                    continue
                self._kind = "container" if char in "{[" else "string" if char == '"' else "scalar"
                if self._kind == "container":
                    self._depth = 1
                elif self._kind == "string":
                    self._in_string = True
                continue
            if self._kind == "scalar":
                if char.isspace() or char in ",}]":
                    return position
                continue
            if self._in_string:
                if self._escaped:
                    self._escaped = False
                elif char == "\\":
                    self._escaped = True
                elif char == '"':
                    self._in_string = False
                    if self._kind == "string":
                        return position + 1
            elif char == '"':
                self._in_string = True
            elif char in "{[":
                self._depth += 1
            elif char in "}]":
                self._depth -= 1
                if self._depth == 0:
                    return position + 1
        return None
