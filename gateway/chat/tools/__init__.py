"""Tool-call formats, by parser name (`--tool-call-parser`). A new format is one entry here:
a ToolFormat saying how its JSON calls are marked and laid out, a MarkedFormat for calls framed
by special tokens, or a module with a parser of its own (pythonic, XML)."""

from __future__ import annotations

from gateway.chat.tools.base import CallFormat, CallParser, ToolCallOverflow
from gateway.chat.tools.marked import MarkedFormat, deepseek_header, kimi_header
from gateway.chat.tools.parser import ToolCallParser, ToolFormat
from gateway.chat.tools.pythonic import PythonicFormat
from gateway.chat.tools.xml import XmlFormat
from gateway.generation import ToolCall

FORMATS: dict[str, CallFormat] = {
    # Llama 3.x: the whole reply is calls, `{"name", "parameters"}` objects separated by ";",
    # optionally after <|python_tag|>.
    "llama3": ToolFormat(
        name="llama3",
        start_markers=("<|python_tag|>",),
        markers_only_at_start=True,
        start_on_brace=True,
        payload="objects",
        separators=";",
    ),
    # Mistral: text, then [TOOL_CALLS] and a JSON array of {"name", "arguments"} (v3/v7 tokenizers),
    # or [TOOL_CALLS]NAME[ARGS]{…} once per call (v11+); 9-character ids.
    "mistral": ToolFormat(
        name="mistral",
        start_markers=("[TOOL_CALLS]",),
        payload="array",
        id_style="mistral",
        name_then_arguments="[ARGS]",
    ),
    # Hermes / Qwen: <tool_call>{"name", "arguments"}</tool_call>, possibly several, among text.
    "hermes": ToolFormat(name="hermes", start_markers=("<tool_call>",), payload="object", end_marker="</tool_call>"),
    # IBM Granite 3.x: <|tool_call|> (3.0) or <tool_call> (3.1+), then a JSON array of calls.
    "granite": ToolFormat(name="granite", start_markers=("<|tool_call|>", "<tool_call>"), payload="array"),
    # Llama 3.2 / Llama 4: the reply is a Python list of calls, [f(a=1), g(b="x")].
    "pythonic": PythonicFormat(),
    # Qwen3-Coder: <tool_call><function=NAME><parameter=P>value</parameter></function></tool_call>.
    "qwen3_coder": XmlFormat(),
    # DeepSeek-V3 / R1 (`function<｜tool▁sep｜>NAME` and a ```json fence) and V3.1+ (`NAME<｜tool▁sep｜>{…}`).
    "deepseek_v3": MarkedFormat(
        name="deepseek_v3",
        section_start="<｜tool▁calls▁begin｜>",
        section_end="<｜tool▁calls▁end｜>",
        call_start="<｜tool▁call▁begin｜>",
        call_end="<｜tool▁call▁end｜>",
        header=deepseek_header,
    ),
    # Kimi K2: <|tool_call_begin|>functions.NAME:IDX<|tool_call_argument_begin|>{…}<|tool_call_end|>,
    # whose header is the call's id.
    "kimi_k2": MarkedFormat(
        name="kimi_k2",
        section_start="<|tool_calls_section_begin|>",
        section_end="<|tool_calls_section_end|>",
        call_start="<|tool_call_begin|>",
        call_end="<|tool_call_end|>",
        header=kimi_header,
    ),
}

# What guided decoding makes the model write for tool_choice "required" and a named tool.
REQUIRED_FORMAT = ToolFormat(name="required", begin_in_calls=True, payload="array")


def named_format(function: str) -> ToolFormat:
    return ToolFormat(name="named", begin_in_calls=True, payload="object", fixed_name=function)


__all__ = [
    "FORMATS",
    "REQUIRED_FORMAT",
    "CallFormat",
    "CallParser",
    "ToolCall",
    "ToolCallOverflow",
    "ToolCallParser",
    "ToolFormat",
    "named_format",
]
