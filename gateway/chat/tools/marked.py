"""Tool calls framed by special-token markers: a section of calls, each call a header (the
function's name, and for Kimi its call id) and its arguments as JSON. Kimi K2 and DeepSeek-V3
write calls this way. Read once, left to right, like the JSON formats (parser.py): a call's id
and name go out when its header is complete, its arguments as they are written; text outside the
section is content; what does not parse as a call before anything of it went out is content too.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from gateway.chat.tools.base import CallReader, ParseResult, ToolCallOverflow
from gateway.chat.tools.scan import JsonValueEnd
from gateway.markers import partial_marker

_MAX_HEADER = 256


@dataclass(frozen=True)
class MarkedFormat:
    name: str
    section_start: str
    section_end: str
    call_start: str
    call_end: str
    # The header (between call_start and the arguments' "{") -> (call id, or "" for a new one; name).
    header: Callable[[str], tuple[str, str] | None]

    def parser(
        self, max_bytes: int = 131072, max_calls: int | None = None, schemas: Mapping[str, Any] | None = None
    ) -> MarkedCallsParser:
        return MarkedCallsParser(self, max_bytes, max_calls)


def kimi_header(text: str) -> tuple[str, str] | None:
    """`functions.NAME:IDX` (whitespace around it, and the argument marker, removed): the header
    is also the call's id, as Kimi's chat template expects it back."""
    header = text.replace("<|tool_call_argument_begin|>", "").strip()
    name, colon, index = header.partition(":")
    name = name.removeprefix("functions.")
    return (header, name) if colon and index.isdigit() and name else None


DEEPSEEK_SEP = "<｜tool▁sep｜>"


def deepseek_header(text: str) -> tuple[str, str] | None:
    """V3: `function<｜tool▁sep｜>NAME` then a ```json fence; V3.1: `NAME<｜tool▁sep｜>`."""
    before, sep, after = text.partition(DEEPSEEK_SEP)
    if not sep:
        return None
    lines = after.strip().splitlines()
    if before.strip() == "function" and lines:
        name = lines[0].strip()
    else:
        name = before.strip()
    return ("", name) if name and " " not in name else None


class MarkedCallsParser(CallReader):
    def __init__(self, fmt: MarkedFormat, max_bytes: int = 131072, max_calls: int | None = None) -> None:
        super().__init__("content", max_bytes, max_calls)
        self.fmt = fmt
        self._header = ""
        self._value = JsonValueEnd()
        self._bytes = 0
        self._markers = (fmt.call_start, fmt.section_end, fmt.call_end)

    def _at_end(self, result: ParseResult) -> None:
        if self._state == "header" and self._raw.strip():
            result.content += self._raw  # an unfinished header is text after all

    def _in_content(self, text: str, result: ParseResult, final: bool) -> str:
        start = self.fmt.section_start
        index = text.find(start)
        if index != -1:
            result.content += text[:index]
            self._state, self._raw = "section", start
            return text[index + len(start) :]
        keep = 0 if final else partial_marker(text, (start,))
        result.content += text[: len(text) - keep]
        self._pending = text[len(text) - keep :]
        return ""

    def _in_section(self, text: str, result: ParseResult, final: bool) -> str:
        """Between calls: the next call, the end of the section, or (anything else) content."""
        stripped = text.lstrip()
        self._raw += text[: len(text) - len(stripped)]
        if not stripped:
            return ""
        if stripped.startswith(self.fmt.call_start):
            self._state, self._header = "header", ""
            self._raw += self.fmt.call_start
            return stripped[len(self.fmt.call_start) :]
        if stripped.startswith(self.fmt.section_end):
            self._state, self._raw = "content", ""
            return stripped[len(self.fmt.section_end) :]
        if not final and any(marker.startswith(stripped) for marker in self._markers):
            self._pending = text
            return ""
        if self.calls:
            self._state = "text"  # the calls are over; what follows is content
            return stripped
        return self._fall_back(stripped, result)

    def _in_header(self, text: str, result: ParseResult, final: bool) -> str:
        brace, end = text.find("{"), text.find(self.fmt.call_end)
        stops = [index for index in (brace, end) if index != -1]
        if not stops:
            keep = 0 if final else partial_marker(text, (self.fmt.call_end,))
            self._header += text[: len(text) - keep]
            self._raw += text[: len(text) - keep]
            self._pending = text[len(text) - keep :]
            if len(self._header) > _MAX_HEADER:
                return self._fall_back("", result)
            return ""
        at = min(stops)
        self._header += text[:at]
        self._raw += text[:at]
        parsed = self.fmt.header(self._header)
        if parsed is None:
            return self._fall_back(text[at:], result)
        call_id, name = parsed
        self._open_call(name, result, call_id)
        self._value, self._bytes = JsonValueEnd(), 0
        if at == end and (brace == -1 or end < brace):  # no arguments at all
            self._send_arguments("{}", result)
            self._state = "section"
            return text[end + len(self.fmt.call_end) :]
        self._state = "arguments"
        return text[at:]

    def _in_arguments(self, text: str, result: ParseResult, final: bool) -> str:
        end = self._value.scan(text)
        taken = text if end is None else text[:end]
        self._bytes += len(taken)
        if self._bytes > self.max_bytes:
            raise ToolCallOverflow
        self._send_arguments(taken, result)
        if end is None:
            return ""
        self._state = "closing"
        return text[end:]

    def _in_closing(self, text: str, result: ParseResult, final: bool) -> str:
        """After the arguments: anything (a closing ``` fence) up to the end-of-call marker."""
        index = text.find(self.fmt.call_end)
        if index != -1:
            self._state, self._raw = "section", ""
            return text[index + len(self.fmt.call_end) :]
        keep = 0 if final else partial_marker(text, (self.fmt.call_end,))
        self._pending = text[len(text) - keep :]
        return ""
