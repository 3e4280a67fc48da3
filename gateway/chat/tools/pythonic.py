"""Pythonic tool calls (Llama 3.2 and Llama 4): the whole reply is a Python list of calls with
keyword arguments, `[get_weather(city="Paris"), get_time()]`, optionally wrapped in
`<|python_start|>` … `<|python_end|>` (Llama 4).

Read once, left to right. The first call goes out whole when it closes and parses (until then
the reply may still be text); each later call's id and name at its "(", its arguments (the
keyword values as JSON: str, numbers, True/False/None and the JSON spellings true/false/null,
lists, tuples and sets as arrays, dicts) at its ")"; a later call whose arguments are no literals
gets "{}". A reply that does not start with "[" is content; so is one whose first call does
not parse. Positional arguments are ignored, as vLLM's parser ignores them.
"""

from __future__ import annotations

import ast
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from gateway.chat.tools.base import CallReader, ParseResult, ToolCallOverflow

_WRAPPER_START, _WRAPPER_END = "<|python_start|>", "<|python_end|>"
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*")
_JSON_NAMES = {"true": True, "false": False, "null": None}


@dataclass(frozen=True)
class PythonicFormat:
    name: str = "pythonic"

    def parser(
        self, max_bytes: int = 131072, max_calls: int | None = None, schemas: Mapping[str, Any] | None = None
    ) -> PythonicParser:
        return PythonicParser(max_bytes, max_calls)


class NotALiteral(Exception):
    pass


def literal(node: ast.expr) -> Any:
    """A keyword argument's value as JSON data, or NotALiteral."""
    if isinstance(node, ast.Constant) and (node.value is None or isinstance(node.value, (str, int, float, bool))):
        return node.value
    if isinstance(node, ast.Name) and node.id in _JSON_NAMES:
        return _JSON_NAMES[node.id]
    if isinstance(node, (ast.List, ast.Tuple, ast.Set)):
        return [literal(element) for element in node.elts]
    if isinstance(node, ast.Dict) and all(key is not None for key in node.keys):
        keys = [literal(key) for key in node.keys if key is not None]
        if not all(isinstance(key, (str, int, float, bool)) for key in keys):
            raise NotALiteral
        return {str(key) if not isinstance(key, str) else key: literal(value) for key, value in zip(keys, node.values)}
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
        value = literal(node.operand)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return -value if isinstance(node.op, ast.USub) else value
    if isinstance(node, ast.JoinedStr) and all(isinstance(part, ast.Constant) for part in node.values):
        return "".join(str(part.value) for part in node.values if isinstance(part, ast.Constant))
    raise NotALiteral


def call_arguments(source: str) -> str | None:
    """The JSON arguments of one `name(k=v, …)` call, or None when it is not such a call."""
    try:
        expression = ast.parse(source.strip(), mode="eval").body
    except (SyntaxError, ValueError):
        return None
    if not isinstance(expression, ast.Call):
        return None
    try:
        values = {keyword.arg: literal(keyword.value) for keyword in expression.keywords if keyword.arg}
    except (NotALiteral, RecursionError):
        return None
    return json.dumps(values, ensure_ascii=False)


class PythonicParser(CallReader):
    def __init__(self, max_bytes: int = 131072, max_calls: int | None = None) -> None:
        super().__init__("start", max_bytes, max_calls)
        self._element = ""  # the call being read
        self._depth = 0  # brackets open inside the list
        self._quote = ""  # the open string's quote, if any
        self._escaped = False
        self._name: str | None = None  # the current call's name, once its "(" came
        self._confirmed = False  # the first call closed and parsed: the reply is calls

    def _at_end(self, result: ParseResult) -> None:
        if self._state == "calls" and not self._confirmed:
            result.content += self._raw  # never a complete call: it was text
        elif self._state == "calls" and self._name is not None:
            self._end_call(result, cut_short=True)

    def _consume(self, text: str, result: ParseResult, final: bool) -> None:
        self._pending = ""
        if self._state == "start":
            stripped = text.lstrip()
            if not stripped or (not final and _WRAPPER_START.startswith(stripped)):
                if final:
                    result.content += text
                else:
                    self._pending = text
                return
            if stripped.startswith(_WRAPPER_START):
                stripped = stripped[len(_WRAPPER_START) :].lstrip()
                if not stripped and not final:
                    self._pending = text
                    return
            if not stripped.startswith("["):
                self._state = "text"
            else:
                self._state, self._raw = "calls", text[: len(text) - len(stripped)]
                self._raw += "["
                text = stripped[1:]
        if self._state == "text":
            result.content += text
            return
        if self._state == "after":
            return  # after the list (and its wrapper's end): nothing more is parsed
        for position, char in enumerate(text):
            if not self._read(char, result):
                self._state = "after" if self._confirmed else "text"
                if self._state == "text":
                    result.content += self._raw + text[position + 1 :]
                    self._raw = ""
                return
            if self._state == "after":
                return

    def _read(self, char: str, result: ParseResult) -> bool:
        """One character of the list; False when the text turns out not to be calls."""
        if not self._confirmed:
            self._raw += char
        if len(self._element) > self.max_bytes:
            raise ToolCallOverflow
        if self._quote:
            self._element += char
            if self._escaped:
                self._escaped = False
            elif char == "\\":
                self._escaped = True
            elif char == self._quote:
                self._quote = ""
            return True
        if char in "\"'":
            self._quote = char
        elif char in "([{":
            opens_call = char == "(" and self._depth == 0 and self._name is None
            if opens_call and not self._name_call(result):
                return False
            self._depth += 1
        elif char in ")]}":
            if self._depth == 0:
                if char != "]":
                    return False
                if self._element.strip():
                    return self._end_call(result)
                self._state = "after"
                return True
            self._depth -= 1
        elif char == "," and self._depth == 0:
            return self._end_call(result)
        self._element += char
        return True

    def _name_call(self, result: ParseResult) -> bool:
        name = self._element.strip()
        if not _NAME.fullmatch(name):
            return False
        self._name = name
        if self._confirmed:
            self._open_call(name, result)
        return True

    def _end_call(self, result: ParseResult, cut_short: bool = False) -> bool:
        source, self._element = self._element, ""
        name, self._name = self._name, None
        if name is None:
            return not source.strip()  # "[ ]" or a trailing comma
        arguments = None if cut_short else call_arguments(source)
        if not self._confirmed:
            if arguments is None:
                return False  # the first call does not parse: the reply is text
            self._confirmed, self._raw = True, ""
            self._open_call(name, result)
        if not cut_short:
            self._send_arguments(arguments or "{}", result)
        return True
