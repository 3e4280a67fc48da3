"""`--tool-call-parser auto`: a model's tool-call format, told by what its chat template writes
when it renders a call (the template and the parser must agree, so the template is the most
reliable witness there is). Most specific markers first; a template none of them fits leaves
the model without a parser (tool_choice "auto" is then refused with a clear message)."""

from __future__ import annotations

from typing import Any

# (every marker the template holds, the format); the first entry whose markers all appear wins.
_TEMPLATE_MARKERS: tuple[tuple[tuple[str, ...], str], ...] = (
    (("<|tool_calls_section_begin|>",), "kimi_k2"),
    (("<｜tool▁calls▁begin｜>",), "deepseek_v3"),
    (("[TOOL_CALLS]",), "mistral"),
    (("<function=", "<parameter="), "qwen3_coder"),
    (("<|tool_call|>",), "granite"),
    (("<|start_of_role|>", "<tool_call>"), "granite"),  # Granite 3.1+: <tool_call> and a JSON array
    (("<tool_call>",), "hermes"),
    (("<|python_start|>",), "pythonic"),  # Llama 4
    (("<|python_tag|>",), "llama3"),
)


def parser_for_template(template: Any) -> str | None:
    """The tool-call format a chat template writes, or None when it is none of the known ones.
    A template may be one string or several by name (a `tool_use` template among them)."""
    if isinstance(template, list):
        texts = [entry.get("template", "") for entry in template if isinstance(entry, dict)]
    elif isinstance(template, dict):
        texts = [text for text in template.values() if isinstance(text, str)]
    else:
        texts = [template] if isinstance(template, str) else []
    text = "\n".join(texts)
    return next((fmt for markers, fmt in _TEMPLATE_MARKERS if all(marker in text for marker in markers)), None)
