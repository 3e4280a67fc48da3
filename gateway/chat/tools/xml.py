"""Qwen3-Coder's XML tool calls:

    <tool_call>
    <function=get_weather>
    <parameter=city>
    Paris
    </parameter>
    </function>
    </tool_call>

Each value is text (one leading and one trailing newline dropped), typed by the tool's JSON
schema for that parameter, as vLLM's parser types it: null, integer, number, boolean, then
object or array (JSON), else string; without a schema the value is a string. The arguments are
built as a JSON object that streams as the model writes: a call's id and name go out at
`<function=NAME>`, each parameter's key when its name is complete, a string value character by
character, any other value when its `</parameter>` comes, and the closing brace at `</function>`.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from gateway.chat.tools.base import CallReader, ParseResult, ToolCallOverflow
from gateway.markers import partial_marker

CALL_START, CALL_END = "<tool_call>", "</tool_call>"
FUNCTION, FUNCTION_END = "<function=", "</function>"
PARAMETER, PARAMETER_END = "<parameter=", "</parameter>"
_VALUE_ENDS = (PARAMETER_END, PARAMETER, FUNCTION_END)
_MAX_NAME = 128


@dataclass(frozen=True)
class XmlFormat:
    name: str = "qwen3_coder"

    def parser(
        self, max_bytes: int = 131072, max_calls: int | None = None, schemas: Mapping[str, Any] | None = None
    ) -> XmlCallParser:
        return XmlCallParser(max_bytes, max_calls, schemas or {})


def typed_value(text: str, schema: Any) -> Any:
    """A parameter's text as the type its schema names (the first that fits), else the text."""
    types = schema_types(schema)
    if not types:
        return text
    for kind in ("null", "integer", "number", "boolean", "object", "array", "string"):
        if kind in types:
            converted = _convert(text, kind)
            if converted is not _NO:
                return converted
    try:
        return json.loads(text)
    except ValueError:
        return text


def schema_types(schema: Any) -> set[str]:
    if not isinstance(schema, Mapping):
        return set()
    kinds = schema.get("type")
    listed = [kinds] if isinstance(kinds, str) else kinds if isinstance(kinds, list) else []
    found = {kind for kind in listed if isinstance(kind, str)}
    for key in ("anyOf", "oneOf", "allOf"):
        for option in schema.get(key) or ():
            found |= schema_types(option)
    if "enum" in schema and not found:
        found = {_json_type(value) for value in schema["enum"]}
    return found


_NO = object()


def _convert(text: str, kind: str) -> Any:
    value = text.strip()
    if kind == "null":
        return None if value.lower() == "null" else _NO
    if kind == "integer":
        try:
            return int(value)
        except ValueError:
            return _NO
    if kind == "number":
        try:
            number = float(value)
        except ValueError:
            return _NO
        if math.isinf(number) or math.isnan(number):
            return _NO
        return int(number) if number.is_integer() and "." not in value and "e" not in value.lower() else number
    if kind == "boolean":
        lowered = value.lower()
        return True if lowered in ("true", "1") else False if lowered in ("false", "0") else _NO
    if kind in ("object", "array"):
        try:
            parsed = json.loads(value)
        except ValueError:
            return _NO
        return parsed if isinstance(parsed, dict if kind == "object" else list) else _NO
    return text  # string


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    return "string"


class XmlCallParser(CallReader):
    def __init__(self, max_bytes: int, max_calls: int | None, schemas: Mapping[str, Any]) -> None:
        super().__init__("content", max_bytes, max_calls)
        self._schemas = schemas
        self._name = ""
        self._parameter = ""
        self._value = ""  # a held (non-string) value, or a string value's unsent tail
        self._schema: Any = None  # the current parameter's schema, if the tool has one
        self._streams = False  # the current value is a string, sent as it comes
        self._first_char = True  # the value's first character (a newline there is dropped)
        self._parameters = 0
        self._bytes = 0

    def _at_end(self, result: ParseResult) -> None:
        if self._state in ("opening", "name"):
            result.content += self._raw  # never a call: it was text
        elif self._state == "value" and self._streams:
            self._send_arguments(json.dumps(self._value, ensure_ascii=False)[1:-1], result)  # cut short

    def _hold(self, text: str, markers: tuple[str, ...], final: bool) -> tuple[str, str]:
        keep = 0 if final else partial_marker(text, markers)
        return text[: len(text) - keep], text[len(text) - keep :]

    def _in_content(self, text: str, result: ParseResult, final: bool) -> str:
        found = [(index, marker) for marker in (CALL_START, FUNCTION) if (index := text.find(marker)) != -1]
        if found:
            index, marker = min(found)
            result.content += text[:index]
            self._raw, self._state = text[index : index + len(marker)], "opening" if marker == CALL_START else "name"
            self._name = ""
            return text[index + len(marker) :]
        shown, self._pending = self._hold(text, (CALL_START, FUNCTION), final)
        result.content += shown
        return ""

    def _in_opening(self, text: str, result: ParseResult, final: bool) -> str:
        stripped = text.lstrip()
        self._raw += text[: len(text) - len(stripped)]
        if not stripped:
            return ""
        if stripped.startswith(FUNCTION):
            self._raw += FUNCTION
            self._state = "name"
            return stripped[len(FUNCTION) :]
        if not final and FUNCTION.startswith(stripped):
            self._pending = stripped
            return ""
        return self._fall_back_to_content(stripped, result)

    def _in_name(self, text: str, result: ParseResult, final: bool) -> str:
        end = text.find(">")
        if end == -1:
            self._name += text
            self._raw += text
            return self._fall_back_to_content("", result) if len(self._name) > _MAX_NAME else ""
        self._name += text[:end]
        name = self._name.strip()
        if not name or any(char.isspace() or char in "<>" for char in name):
            self._raw += text[: end + 1]
            return self._fall_back_to_content(text[end + 1 :], result)
        self._open_call(name, result)
        self._raw, self._parameters, self._bytes = "", 0, 0
        self._state = "parameters"
        return text[end + 1 :]

    def _in_parameters(self, text: str, result: ParseResult, final: bool) -> str:
        stripped = text.lstrip()
        if not stripped:
            return ""
        if stripped.startswith(PARAMETER):
            self._parameter, self._state = "", "parameter_name"
            return stripped[len(PARAMETER) :]
        if stripped.startswith(FUNCTION_END):
            self._send_arguments("{}" if not self._parameters else "}", result)
            self._state = "closing"
            return stripped[len(FUNCTION_END) :]
        if not final and any(marker.startswith(stripped) for marker in (PARAMETER, FUNCTION_END)):
            self._pending = stripped
            return ""
        self._send_arguments("{}" if not self._parameters else "}", result)  # the call ends where its syntax does
        self._state = "content"
        return stripped

    def _in_parameter_name(self, text: str, result: ParseResult, final: bool) -> str:
        end = text.find(">")
        if end == -1:
            self._parameter += text
            if len(self._parameter) > _MAX_NAME:
                raise ToolCallOverflow  # no parameter name is this long: stop reading
            return ""
        self._parameter += text[:end]
        key = json.dumps(self._parameter.strip(), ensure_ascii=False)
        self._send_arguments(("{" if not self._parameters else ", ") + key + ": ", result)
        self._parameters += 1
        self._schema = (self._schemas.get(self._name.strip()) or {}).get("properties", {}).get(self._parameter.strip())
        self._streams = schema_types(self._schema) <= {"string"}
        if self._streams:
            self._send_arguments('"', result)
        self._value, self._first_char, self._state = "", True, "value"
        return text[end + 1 :]

    def _in_value(self, text: str, result: ParseResult, final: bool) -> str:
        if self._first_char and text:
            self._first_char = False
            text = text.removeprefix("\n")
        found = [(index, marker) for marker in _VALUE_ENDS if (index := text.find(marker)) != -1]
        index, marker = min(found) if found else (-1, "")
        body, rest = (text[:index], text[index:]) if found else self._hold(text, _VALUE_ENDS, final)
        self._value += body
        self._bytes += len(body)
        if self._bytes > self.max_bytes:
            raise ToolCallOverflow
        if not found:
            self._pending = rest
            if self._streams:
                # Everything but a trailing newline, which is dropped if the value ends there.
                ready = self._value[:-1] if self._value.endswith("\n") and not final else self._value
                self._send_arguments(json.dumps(ready, ensure_ascii=False)[1:-1], result)
                self._value = self._value[len(ready) :]
            return ""
        value = self._value.removesuffix("\n")
        if self._streams:
            self._send_arguments(json.dumps(value, ensure_ascii=False)[1:-1] + '"', result)
        else:
            self._send_arguments(json.dumps(typed_value(value, self._schema), ensure_ascii=False), result)
        self._value, self._state = "", "parameters"
        return rest[len(PARAMETER_END) :] if marker == PARAMETER_END else rest

    def _in_closing(self, text: str, result: ParseResult, final: bool) -> str:
        stripped = text.lstrip()
        if stripped.startswith(CALL_END):
            self._state = "content"
            return stripped[len(CALL_END) :]
        if not final and stripped and CALL_END.startswith(stripped):
            self._pending = text
            return ""
        if not stripped:
            return ""
        self._state = "content"
        return stripped

    def _fall_back_to_content(self, rest: str, result: ParseResult) -> str:
        return self._fall_back(rest, result, state="content")  # a later <tool_call> may still be a call
