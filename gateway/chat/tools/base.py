"""What every tool-call format's parser shares: text fed as it arrives and read once by a
state machine (one `_in_<state>(text, result, final)` method per state, each returning the text
it leaves), the calls made so far, calls given out in parts, and the fall-back to content."""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from gateway.generation import ToolCall


@dataclass
class ParseResult:
    content: str = ""
    calls: list[ToolCall] = field(default_factory=list)  # parts: a call's first part has its id and name


class ToolCallOverflow(Exception):
    """A call grew past the parse limit."""


def new_call_id() -> str:
    """An OpenAI-style call id, for formats whose calls carry none of their own."""
    return f"call_{secrets.token_hex(12)}"


class CallParser(Protocol):
    """Every format's parser: feed text as it arrives, `finish` when the model is done;
    `calls` holds each call's first part."""

    calls: list[ToolCall]

    def feed(self, text: str) -> ParseResult: ...

    def finish(self) -> ParseResult: ...


class CallFormat(Protocol):
    """A tool-call format (`--tool-call-parser NAME`). `schemas`: each tool's parameters schema,
    by function name (formats whose values are untyped text type them with it)."""

    @property
    def name(self) -> str: ...

    def parser(
        self, max_bytes: int = 131072, max_calls: int | None = None, schemas: Mapping[str, Any] | None = None
    ) -> CallParser: ...


class CallReader:
    """The machinery of a parser; subclasses supply the states. In state "text" everything is
    content. `_raw` keeps the text read since the last call went out, which is content after all
    if it turns out not to be a call."""

    def __init__(self, state: str, max_bytes: int = 131072, max_calls: int | None = None) -> None:
        self.max_bytes = max_bytes
        self.max_calls = max_calls
        self.calls: list[ToolCall] = []
        self._state = state
        self._pending = ""  # text not decided yet (a possible marker): read again with the next
        self._raw = ""
        self._ignored = False  # the current call is past max_calls: read, not given out

    def feed(self, text: str) -> ParseResult:
        result = ParseResult()
        self._consume(self._pending + text, result, final=False)
        return result

    def finish(self) -> ParseResult:
        result = ParseResult()
        self._consume(self._pending, result, final=True)
        self._at_end(result)
        self._raw = ""
        return result

    def _at_end(self, result: ParseResult) -> None:
        """What the state the reply ended in still owes (a call cut short, text held back)."""

    def _consume(self, text: str, result: ParseResult, final: bool) -> None:
        self._pending = ""
        while text:
            if self._state == "text":
                result.content += text
                return
            text = getattr(self, f"_in_{self._state}")(text, result, final)

    def _open_call(self, name: str, result: ParseResult, call_id: str = "") -> None:
        """A call's first part, with its id and name (unless past max_calls)."""
        self._ignored = self.max_calls is not None and len(self.calls) >= self.max_calls
        if self._ignored:
            return
        call = ToolCall(len(self.calls), call_id or self._new_id(), name, "")
        self.calls.append(call)
        result.calls.append(call)
        self._raw = ""

    def _send_arguments(self, text: str, result: ParseResult) -> None:
        if text and not self._ignored and self.calls:
            result.calls.append(ToolCall(len(self.calls) - 1, "", "", text))

    def _fall_back(self, rest: str, result: ParseResult, state: str = "text") -> str:
        """What looked like a call is not one: it is content, and so (by default) is the rest."""
        result.content += self._raw
        self._raw = ""
        self._state = state
        return rest

    def _new_id(self) -> str:
        return new_call_id()
