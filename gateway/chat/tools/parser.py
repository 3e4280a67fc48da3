"""An incremental tool-call parser for the formats that write calls as JSON objects
(`{"name": …, "arguments": …}` after a marker, in an array or one per marker), and for
Mistral's `[TOOL_CALLS]NAME[ARGS]{…}`.

Text is read once, left to right: content passes through (holding back a tail that could be
the start of a call marker); after a marker each call object is read character by character. A
call goes out in parts: the first, with its id and name, as soon as the name is complete; then
its arguments, as the model writes them (the arguments' own text, so the parts join to exactly
the arguments of the whole reply). The outcome depends only on the whole text, never on where the
backend split it, and the cost is linear in its length. What is not a call falls back to
content as long as nothing of it went out as a call; a call the reply cuts short stays a call
with the arguments written so far. A call longer than `max_bytes` stops parsing.
"""

from __future__ import annotations

import json
import re
import secrets
import string
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from gateway.chat.tools.base import CallReader, ParseResult, ToolCallOverflow
from gateway.chat.tools.scan import JsonValueEnd
from gateway.markers import partial_marker

_ALPHANUMERIC = string.ascii_letters + string.digits
_FUNCTION_NAME = re.compile(r"[A-Za-z0-9_.\-]{1,64}")


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
    # Mistral v11+: a marker followed by NAME, this marker, then the arguments (one call per marker).
    name_then_arguments: str = ""

    def parser(
        self, max_bytes: int = 131072, max_calls: int | None = None, schemas: Mapping[str, Any] | None = None
    ) -> ToolCallParser:
        return ToolCallParser(self, max_bytes, max_calls)


class ToolCallParser(CallReader):
    """Feed text as it arrives; `finish` when the model is done. `calls` holds each call's
    first part (id and name), in order."""

    def __init__(self, fmt: ToolFormat, max_bytes: int = 131072, max_calls: int | None = None) -> None:
        start = "region" if fmt.begin_in_calls else ("start" if fmt.markers_only_at_start else "content")
        super().__init__(start, max_bytes, max_calls)
        self.fmt = fmt
        self._opened = False  # an array payload's "[" was read
        self._item = _Item(fmt)

    def _at_end(self, result: ParseResult) -> None:
        if self._state in ("region", "item", "named") and self._item.header_sent:
            self._close_item(result, cut_short=True)  # the call stays, with what it has
        elif self._state in ("region", "item", "named") and self._raw.strip() and not self.fmt.begin_in_calls:
            result.content += self._raw  # an unfinished call is text after all

    def _in_start(self, text: str, result: ParseResult, final: bool) -> str:
        stripped = text.lstrip()
        if not stripped:
            self._pending = text if not final else ""
            if final:
                result.content += text
            return ""
        for marker in self.fmt.start_markers:
            if stripped.startswith(marker):
                self._enter_region(text[: len(text) - len(stripped)] + marker)
                return stripped[len(marker) :]
            if marker.startswith(stripped) and not final:
                self._pending = text
                return ""
        if self.fmt.start_on_brace and stripped[0] == "{":
            self._enter_region(text[: len(text) - len(stripped)])
            return stripped
        self._state = "text"  # not a call: everything is content
        return text

    def _in_content(self, text: str, result: ParseResult, final: bool) -> str:
        found = [(index, marker) for marker in self.fmt.start_markers if (index := text.find(marker)) != -1]
        if found:
            index, marker = min(found)
            result.content += text[:index]
            self._enter_region(marker)
            return text[index + len(marker) :]
        keep = 0 if final else partial_marker(text, self.fmt.start_markers)
        result.content += text[: len(text) - keep]
        self._pending = text[len(text) - keep :]
        return ""

    def _enter_region(self, marker_text: str) -> None:
        self._state, self._raw, self._opened = "region", marker_text, False

    def _in_region(self, text: str, result: ParseResult, final: bool) -> str:
        """Between the marker and a call object (or between two of them)."""
        stripped = text.lstrip(" \t\r\n" + self.fmt.separators + ("," if self._opened else ""))
        self._raw += text[: len(text) - len(stripped)]
        if not stripped:
            return ""
        char = stripped[0]
        if self.fmt.payload == "array" and not self._opened and char == "[" and not self.fmt.fixed_name:
            self._opened = True
            self._raw += char
            return stripped[1:]
        if self._opened and char == "]":
            self._state = "text"  # the array is complete; what follows is content
            return stripped[1:]
        if char == "{" or self.fmt.fixed_name is not None:
            self._state = "item"
            self._item = _Item(self.fmt)
            return stripped
        if self.fmt.name_then_arguments and not self._opened:
            self._state = "named"
            self._item = _Item(self.fmt)
            return stripped
        if self.fmt.payload == "objects" and self.calls:
            self._raw = ""
            self._state = "text"  # calls are over; what follows is content
            return stripped
        return self._fall_back(stripped, result)

    def _in_item(self, text: str, result: ParseResult, final: bool) -> str:
        item = self._item
        consumed, done, parts = item.read(text)
        if not item.header_sent:
            self._raw += text[:consumed]
        if item.bytes > self.max_bytes:
            raise ToolCallOverflow
        self._send(parts, result)
        if item.failed:
            if item.header_sent:
                self._close_item(result)
                self._state = "text"
                return text[consumed:]
            return self._fall_back(text[consumed:], result)
        if done:
            self._close_item(result)
            self._after_item()
        return text[consumed:]

    def _in_named(self, text: str, result: ParseResult, final: bool) -> str:
        """Mistral v11: NAME then the arguments marker (or the arguments' "{")."""
        item, marker = self._item, self.fmt.name_then_arguments
        for position, char in enumerate(text):
            if text.startswith(marker, position) or char == "{":
                self._raw += text[:position]
                if not _FUNCTION_NAME.fullmatch(item.name_text.strip()):
                    return self._fall_back(text[position:], result)
                item.start_arguments(item.name_text.strip())
                self._send(item.take_header(), result)
                self._state = "item"
                return text[position + len(marker) :] if char != "{" else text[position:]
            if not final and marker.startswith(text[position:]):
                self._raw += text[:position]
                self._pending = text[position:]
                return ""
            if not (char.isalnum() or char in "_.-") or len(item.name_text) >= 64:
                self._raw += text[:position]
                return self._fall_back(text[position:], result)
            item.name_text += char
        self._raw += text
        return ""

    def _send(self, parts: list[tuple[str, str]], result: ParseResult) -> None:
        """Parts of the current call: ("header", name) then ("arguments", text), the arguments
        that came together sent as one part."""
        for kind, value in _joined(parts):
            if kind == "header":
                self._open_call(value, result)
                self._item.ignored = self._ignored
                self._send_arguments(self._item.arguments_before_header, result)
            else:
                self._send_arguments(value, result)

    def _close_item(self, result: ParseResult, cut_short: bool = False) -> None:
        self._send(self._item.close(cut_short), result)

    def _after_item(self) -> None:
        if self.fmt.fixed_name is not None:
            self._state = "text"
        elif self.fmt.payload == "object" and self.fmt.end_marker:
            self._state = "closing"
        elif self.fmt.payload == "array" and not self._opened:
            self._state = "content" if self.fmt.name_then_arguments else "text"  # a bare object
        elif self.fmt.name_then_arguments and not self._opened:
            self._state = "content"  # the next call comes after the next marker
        else:
            self._state = "region"

    def _in_closing(self, text: str, result: ParseResult, final: bool) -> str:
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

    def _fall_back(self, rest: str, result: ParseResult, state: str = "text") -> str:
        if self.fmt.begin_in_calls:
            self._raw = ""  # guided output is never content
        return super()._fall_back(rest, result, state)

    def _new_id(self) -> str:
        if self.fmt.id_style == "mistral":
            return "".join(secrets.choice(_ALPHANUMERIC) for _ in range(9))
        return super()._new_id()


def _joined(parts: list[tuple[str, str]]) -> list[tuple[str, str]]:
    joined: list[tuple[str, str]] = []
    for kind, value in parts:
        if kind == "arguments" and joined and joined[-1][0] == "arguments":
            joined[-1] = (kind, joined[-1][1] + value)
        else:
            joined.append((kind, value))
    return joined


class _Item:
    """One call object read character by character: its name once complete, its arguments'
    text as it comes. `read` says how much of the text was the object's and which parts are
    ready; `failed` when the object turns out not to be a call."""

    def __init__(self, fmt: ToolFormat) -> None:
        self._fmt = fmt
        self.header_sent = False
        self.ignored = False
        self.failed = False
        self.bytes = 0
        self.name_text = ""  # Mistral v11's name, as read
        self.arguments_before_header = ""  # arguments written before the name (sent with it)
        self._name: str | None = None
        self._state = "open"
        self._key = ""
        self._string = ""
        self._escaped = False
        self._value = JsonValueEnd()
        self._arguments_seen = False
        self._string_arguments: str | None = None  # "arguments": "…" is decoded whole
        if fmt.fixed_name is not None:
            self.start_arguments(fmt.fixed_name)
            self._state = "fixed"

    def start_arguments(self, name: str) -> None:
        """A call whose name is known before its arguments (a fixed name, Mistral v11)."""
        self._name = name
        self._state = "bare_arguments"
        self._arguments_seen = True

    def take_header(self) -> list[tuple[str, str]]:
        self.header_sent = True
        return [("header", self._name or "")]

    def read(self, text: str) -> tuple[int, bool, list[tuple[str, str]]]:
        parts: list[tuple[str, str]] = []
        position = 0
        while position < len(text):
            if self._state in ("arguments", "bare_arguments", "fixed"):
                if self._state == "fixed" and not self.header_sent:
                    parts += self.take_header()
                position = self._read_arguments(text, position, parts)
                if self._state == "done":
                    self.bytes += position
                    return position, True, parts
                continue
            char = text[position]
            position += 1
            if self._state == "skip":
                end = self._value.scan(text[position - 1 :])
                if end is None:
                    position = len(text)
                else:
                    position += end - 1
                    self._state = "after"
                continue
            if not self._step(char, parts):
                self.failed = True
                return position - 1, False, parts
            if self._state == "done":
                self.bytes += position
                return position, True, parts
        self.bytes += position
        return position, False, parts

    def _step(self, char: str, parts: list[tuple[str, str]]) -> bool:
        """One character of the object outside values; False when it cannot be a call."""
        state = self._state
        if state in ("key_string", "name"):
            if self._escaped:
                self._escaped = False
            elif char == "\\":
                self._escaped = True
            elif char == '"':
                return self._string_done(parts)
            self._string += char
            return True
        if char.isspace():
            return True
        if state == "open":
            self._state = "key"
            return char == "{"
        if state == "key":
            if char == '"':
                self._state, self._string = "key_string", ""
                return True
            if char == "}":
                return self._object_done(parts)
            return False
        if state == "colon":
            self._state = "value"
            return char == ":"
        if state == "value":
            if self._key == "name":
                self._state, self._string = "name", ""
                return char == '"' and self._name is None
            self._value = JsonValueEnd()
            if self._key in self._fmt.arguments_keys and not self._arguments_seen:
                self._arguments_seen = True
                self._state = "arguments"
                if char == '"':
                    self._string_arguments = ""
                self._value.scan(char)
                self._emit_arguments(char, parts)
                return True
            self._state = "skip"
            self._value.scan(char)
            return True
        if state == "after":
            if char == ",":
                self._state = "key"
                return True
            if char == "}":
                return self._object_done(parts)
        return False

    def _string_done(self, parts: list[tuple[str, str]]) -> bool:
        try:
            decoded = json.loads(f'"{self._string}"') if "\\" in self._string else self._string
        except ValueError:
            return False
        if self._state == "key_string":
            self._key, self._state = decoded, "colon"
            return True
        if not isinstance(decoded, str) or not decoded:
            return False
        self._name, self._state = decoded, "after"
        parts += self.take_header()
        return True

    def _read_arguments(self, text: str, position: int, parts: list[tuple[str, str]]) -> int:
        """The arguments' text from `position`: passed on as it comes; the end of the value
        moves the object on (or, for bare arguments, ends the call)."""
        chunk = text[position:]
        was_started = self._value.started
        end = self._value.scan(chunk)
        taken = chunk if end is None else chunk[:end]
        self._emit_arguments(taken if was_started else taken.lstrip(), parts)  # not the whitespace before it
        if end is None:
            return len(text)
        self._state = "after" if self._state == "arguments" else "done"
        if self._string_arguments is not None:
            parts.append(("arguments", self._decoded_string_arguments()))
        return position + end

    def _emit_arguments(self, text: str, parts: list[tuple[str, str]]) -> None:
        if self._string_arguments is not None:
            self._string_arguments += text
        elif not self.header_sent:
            self.arguments_before_header += text
        elif text:
            parts.append(("arguments", text))

    def _decoded_string_arguments(self) -> str:
        raw, self._string_arguments = self._string_arguments or "", None
        try:
            decoded = json.loads(raw)
        except ValueError:
            return raw
        return decoded if isinstance(decoded, str) else raw

    def _object_done(self, parts: list[tuple[str, str]]) -> bool:
        if self._name is None:
            return False
        self._state = "done"
        return True

    def close(self, cut_short: bool = False) -> list[tuple[str, str]]:
        """What a call still owes at its end: "{}" for a complete call without arguments, the
        decoded text of string arguments."""
        if not self.header_sent or self.ignored:
            return []
        if not self._arguments_seen and not cut_short:
            self._arguments_seen = True
            return [("arguments", "{}")]
        if self._string_arguments is not None:
            return [("arguments", self._decoded_string_arguments())]
        return []
