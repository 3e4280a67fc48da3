"""`--tool-call-parser auto`: the format a chat template writes for a call."""

from __future__ import annotations

import pytest

from gateway.chat.tools import FORMATS
from gateway.chat.tools.detect import parser_for_template


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("{% for tool_call in message.tool_calls %}<tool_call>\n{{ tool_call | tojson }}\n</tool_call>", "hermes"),
        ("<tool_call>\n<function={{ name }}>\n<parameter={{ key }}>\n{{ value }}\n</parameter>", "qwen3_coder"),
        ("[TOOL_CALLS]{{ call.name }}[ARGS]{{ call.arguments }}", "mistral"),
        ("<｜tool▁calls▁begin｜><｜tool▁call▁begin｜>{{ type }}<｜tool▁sep｜>", "deepseek_v3"),
        ("<|tool_calls_section_begin|><|tool_call_begin|>{{ id }}", "kimi_k2"),
        ("<|start_of_role|>assistant<|end_of_role|><tool_call>{{ calls | tojson }}", "granite"),
        ("<|tool_call|>{{ calls | tojson }}", "granite"),
        ("<|python_start|>[{{ name }}(...)]<|python_end|>", "pythonic"),
        ("{%- if builtin_tools %}<|python_tag|>{{ call }}{% endif %}", "llama3"),
        ("{{ bos_token }}{% for m in messages %}{{ m.content }}{% endfor %}", None),
        ([{"name": "default", "template": "plain"}, {"name": "tool_use", "template": "<tool_call>"}], "hermes"),
        (None, None),
    ],
)
def test_the_template_tells_the_format(template: object, expected: str | None) -> None:
    found = parser_for_template(template)
    assert found == expected
    assert found is None or found in FORMATS
