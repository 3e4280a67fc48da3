"""Tool-call formats, by parser name (`--tool-call-parser`). A new format is one entry here:
a ToolFormat saying how its calls are marked and laid out."""

from __future__ import annotations

from gateway.chat.tools.parser import ToolCallOverflow, ToolCallParser, ToolFormat
from gateway.generation import ToolCall

FORMATS: dict[str, ToolFormat] = {
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
    # Mistral: text, then [TOOL_CALLS] and a JSON array of {"name", "arguments"}; 9-character ids.
    "mistral": ToolFormat(name="mistral", start_markers=("[TOOL_CALLS]",), payload="array", id_style="mistral"),
    # Hermes / Qwen: <tool_call>{"name", "arguments"}</tool_call>, possibly several, among text.
    "hermes": ToolFormat(name="hermes", start_markers=("<tool_call>",), payload="object", end_marker="</tool_call>"),
}

# What guided decoding makes the model write for tool_choice "required" and a named tool.
REQUIRED_FORMAT = ToolFormat(name="required", begin_in_calls=True, payload="array")


def named_format(function: str) -> ToolFormat:
    return ToolFormat(name="named", begin_in_calls=True, payload="object", fixed_name=function)


__all__ = ["FORMATS", "REQUIRED_FORMAT", "ToolCall", "ToolCallOverflow", "ToolCallParser", "ToolFormat", "named_format"]
