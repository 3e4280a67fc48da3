"""An incremental tool-call parser, shared by every format.

Text is read once, left to right: content passes through (holding back a tail that could be
the start of a call marker), and after a marker the JSON of the calls is scanned with a
depth/string tracker until a value is complete, then parsed once. The outcome depends only on
the whole text, never on where the backend split it, and the cost is linear in its length.
Malformed calls fall back to content; a call longer than `max_bytes` stops parsing.
"""

from __future__ import annotations

import json
import re
import secrets
import string
from dataclasses import dataclass, field
from typing import Any, Literal

from gateway.generation import ToolCall
from gateway.markers import partial_marker

_ALPHANUMERIC = string.ascii_letters + string.digits


@dataclass(frozen=True)
class ToolFormat:
    """How one model family writes tool calls."""

    name: str
    # Where calls start: a marker anywhere in the text, or only at its very beginning.
    start_markers: tuple[str, ...] = ()
    markers_only_at_start: bool = False
    start_on_brace: bool = False  # llama3: a leading "{" starts calls too
    begin_in_calls: bool = False  # guided output: the whole text is the calls
    # What follows the marker: one array of calls, objects separated by `separators`,
    # or one object per marker closed by `end_marker`.
    payload: Literal["array", "objects", "object"] = "object"
    separators: str = ""
    end_marker: str = ""
    arguments_keys: tuple[str, ...] = ("arguments", "parameters")
    fixed_name: str | None = None  # the payload is the arguments of this one function
    id_style: Literal["openai", "mistral"] = "openai"


@dataclass
class ParseResult:
    content: str = ""
    calls: list[ToolCall] = field(default_factory=list)


class ToolCallOverflow(Exception):
    """A call grew past the parse limit."""


class ToolCallParser:
    """Feed text as it arrives; `finish` when the model is done."""

    def __init__(self, fmt: ToolFormat, max_bytes: int = 131072, max_calls: int | None = None) -> None:
        self.fmt = fmt
        self.max_bytes = max_bytes
        self.max_calls = max_calls
        self.calls: list[ToolCall] = []
        self._state = "calls" if fmt.begin_in_calls else ("start" if fmt.markers_only_at_start else "content")
        self._pending = ""  # text not decided yet (a possible marker, or the leading whitespace)
        self._raw = ""  # the calls text read so far, for the fallback to content
        self._value = ""  # the JSON value being scanned
        self._depth = 0
        self._in_string = False
        self._escaped = False

    # -- public ----------------------------------------------------------------------

    def feed(self, text: str) -> ParseResult:
        result = ParseResult()
        self._consume(self._pending + text, result, final=False)
        return result

    def finish(self) -> ParseResult:
        result = ParseResult()
        self._consume(self._pending, result, final=True)
        if self._state == "calls" and (self._raw.strip() or self._value):
            if self.fmt.begin_in_calls:
                self._cut_short(self._raw + self._value, result)
            else:
                result.content += self._raw + self._value  # an unfinished call is text after all
        self._raw = self._value = ""
        return result

    def _cut_short(self, text: str, result: ParseResult) -> None:
        """Guided output (a forced call) that ended unfinished, at the token limit: it is calls,
        never content, the last one with the arguments written so far."""
        for name, arguments in partial_calls(text, self.fmt):
            if self.max_calls is not None and len(self.calls) >= self.max_calls:
                break
            call = ToolCall(len(self.calls), self._new_id(), name, arguments)
            self.calls.append(call)
            result.calls.append(call)

    # -- the state machine -----------------------------------------------------------

    def _consume(self, text: str, result: ParseResult, final: bool) -> None:
        self._pending = ""
        while text:
            if self._state == "text":
                result.content += text
                return
            if self._state == "start":
                text = self._at_start(text, result, final)
            elif self._state == "content":
                text = self._in_content(text, result, final)
            elif self._state == "calls":
                text = self._in_calls(text, result)
            elif self._state == "closing":
                text = self._closing(text, result, final)

    def _at_start(self, text: str, result: ParseResult, final: bool) -> str:
        stripped = text.lstrip()
        if not stripped:
            self._pending = text if not final else ""
            if final:
                result.content += text
            return ""
        for marker in self.fmt.start_markers:
            if stripped.startswith(marker):
                self._state = "calls"
                self._raw = text[: len(text) - len(stripped)] + marker
                return stripped[len(marker) :]
            if marker.startswith(stripped) and not final:
                self._pending = text
                return ""
        if self.fmt.start_on_brace and stripped[0] == "{":
            self._state = "calls"
            self._raw = text[: len(text) - len(stripped)]
            return stripped
        self._state = "text"  # not a call: everything is content
        return text

    def _in_content(self, text: str, result: ParseResult, final: bool) -> str:
        found = [(index, marker) for marker in self.fmt.start_markers if (index := text.find(marker)) != -1]
        if found:
            index, marker = min(found)
            result.content += text[:index]
            self._state = "calls"
            self._raw = marker
            return text[index + len(marker) :]
        keep = 0 if final else partial_marker(text, self.fmt.start_markers)
        result.content += text[: len(text) - keep]
        self._pending = text[len(text) - keep :]
        return ""

    def _in_calls(self, text: str, result: ParseResult) -> str:
        if not self._value:
            stripped = text.lstrip(" \t\r\n" + self.fmt.separators)
            self._raw += text[: len(text) - len(stripped)]
            text = stripped
            if not text:
                return ""
            if self.fmt.payload == "objects" and self.calls and text[0] not in "{[":
                self._state = "text"  # calls are over; what follows is content
                self._raw = ""
                return text
        for position, char in enumerate(text):
            self._value += char
            if self._in_string:
                if self._escaped:
                    self._escaped = False
                elif char == "\\":
                    self._escaped = True
                elif char == '"':
                    self._in_string = False
            elif char == '"':
                self._in_string = True
            elif char in "{[":
                self._depth += 1
            elif char in "}]":
                self._depth -= 1
                if self._depth == 0:
                    self._raw += self._value
                    self._complete(result)
                    return text[position + 1 :]
            elif self._depth == 0 and not char.isspace():
                return self._fall_back(text[position + 1 :], result)  # not JSON
            if len(self._value) > self.max_bytes:
                raise ToolCallOverflow
        return ""

    def _complete(self, result: ParseResult) -> None:
        value_text, self._value = self._value, ""
        try:
            value = json.loads(value_text)
        except ValueError:
            self._fall_back("", result)
            return
        items = value if isinstance(value, list) and self.fmt.payload == "array" else [value]
        found = [parsed for item in items if (parsed := self._call_from(item)) is not None]
        if len(found) != len(items) or not found:
            self._fall_back("", result)
            return
        for name, arguments in found:
            if self.max_calls is not None and len(self.calls) >= self.max_calls:
                break
            call = ToolCall(len(self.calls), self._new_id(), name, arguments)
            self.calls.append(call)
            result.calls.append(call)
        self._raw = ""
        if self.fmt.payload == "object" and self.fmt.end_marker:
            self._state = "closing"
        elif self.fmt.payload == "array" or self.fmt.fixed_name is not None:
            self._state = "text"

    def _call_from(self, item: Any) -> tuple[str, str] | None:
        return call_parts(item, self.fmt)

    def _closing(self, text: str, result: ParseResult, final: bool) -> str:
        stripped = text.lstrip()
        marker = self.fmt.end_marker
        if stripped.startswith(marker):
            self._state = "content"
            return stripped[len(marker) :]
        if marker.startswith(stripped) and not final:
            self._pending = text
            return ""
        self._state = "content"  # no closing tag: carry on with the text
        return text

    def _fall_back(self, rest: str, result: ParseResult) -> str:
        """What looked like a call is not one: it is content, and so is everything after."""
        result.content += self._raw + self._value
        self._raw = self._value = ""
        self._depth = 0
        self._in_string = self._escaped = False
        self._state = "text"
        return rest

    def _new_id(self) -> str:
        if self.fmt.id_style == "mistral":
            return "".join(secrets.choice(_ALPHANUMERIC) for _ in range(9))
        return f"call_{secrets.token_hex(12)}"


def partial_calls(text: str, fmt: ToolFormat) -> list[tuple[str, str]]:
    """The calls in guided output the token limit cut short: each complete one, then the last
    with the arguments written so far (how OpenAI returns a call cut by max_tokens)."""
    text = text.strip()
    if fmt.fixed_name is not None:
        return [(fmt.fixed_name, text)] if text else []
    calls: list[tuple[str, str]] = []
    rest = text.removeprefix("[") if fmt.payload == "array" else text
    decoder = json.JSONDecoder()
    while rest := rest.lstrip(" \t\r\n,"):
        try:
            item, end = decoder.raw_decode(rest)
        except ValueError:
            cut = _CUT_CALL.match(rest)
            if cut is not None:
                calls.append((json.loads(f'"{cut["name"]}"'), cut["arguments"] or ""))
            break
        parts = call_parts(item, fmt)
        if parts is None:
            break
        calls.append(parts)
        rest = rest[end:]
    return calls


def call_parts(item: Any, fmt: ToolFormat) -> tuple[str, str] | None:
    """(name, arguments as a JSON string) of one parsed call, or None when it is no call."""
    if fmt.fixed_name is not None:
        return (fmt.fixed_name, json.dumps(item, ensure_ascii=False)) if isinstance(item, dict) else None
    if not isinstance(item, dict) or not isinstance(item.get("name"), str):
        return None
    arguments: Any = next((item[key] for key in fmt.arguments_keys if key in item), {})
    if isinstance(arguments, str):
        return item["name"], arguments
    return item["name"], json.dumps(arguments, ensure_ascii=False)


# The start of a {"name": …, "parameters": …} object whose name is complete.
_CUT_CALL = re.compile(
    r'\{\s*"name"\s*:\s*"(?P<name>(?:[^"\\]|\\.)*)"\s*(?:,\s*"(?:parameters|arguments)"\s*:\s*(?P<arguments>.*))?',
    re.DOTALL,
)
