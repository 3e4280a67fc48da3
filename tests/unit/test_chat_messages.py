from __future__ import annotations

from pathlib import Path

import pytest

from gateway.chat.template import TokenizerStore
from gateway.errors import InvalidRequest
from gateway.openai.chat import template_messages
from schemas.requests import AudioPart, ChatMessage, ImagePart, ImageURL, TextPart

TOKENIZER = str(Path(__file__).resolve().parents[2] / "standin" / "tokenizer")


def test_messages_become_template_dicts() -> None:
    messages = [
        ChatMessage(role="developer", content="rules"),
        ChatMessage(role="user", content=[TextPart("a"), TextPart("b")], name="ann"),
        ChatMessage(role="assistant", content=None),
        ChatMessage(role="tool", content="42", tool_call_id="call_1"),
    ]
    assert template_messages(messages)[0] == [
        {"role": "system", "content": "rules"},
        {"role": "user", "content": "a\nb", "name": "ann"},
        {"role": "assistant", "content": ""},
        {"role": "tool", "content": "42", "tool_call_id": "call_1"},
    ]


def test_unsupported_message_content_is_named() -> None:
    with pytest.raises(InvalidRequest) as caught:
        template_messages([ChatMessage(role="user", content=[TextPart("a"), AudioPart({"data": ""})])])
    assert caught.value.param == "messages[0].content[1]"
    with pytest.raises(InvalidRequest) as caught:
        template_messages([ChatMessage(role="system", content="s"), ChatMessage(role="user")])
    assert caught.value.param == "messages[1].content"


def test_image_parts_become_placeholders_and_references() -> None:
    messages = [ChatMessage(role="user", content=[TextPart("What is"), ImagePart(ImageURL("data:x")), TextPart("?")])]
    rendered, images = template_messages(messages)
    assert rendered[0]["content"] == [
        {"type": "text", "text": "What is"},
        {"type": "image"},
        {"type": "text", "text": "?"},
    ]
    assert [(image.url, image.param) for image in images] == [("data:x", "messages[0].content[1].image_url.url")]


def test_tokenizer_specs_per_model_and_default() -> None:
    store = TokenizerStore(["/default", "special=/other"])
    assert store.source_for("special") == "/other"
    assert store.source_for("anything") == "/default"
    assert TokenizerStore([]).source_for("x") is None


def test_render_and_count() -> None:
    store = TokenizerStore([TOKENIZER])
    prompt = store.render_chat("m", [{"role": "user", "content": "hi"}])
    assert prompt.endswith("<|user|>\nhi<|end|>\n<|assistant|>\n")
    tools = store.tools("m")
    assert tools is not None and tools.count_tokens("hi there") > 0
    assert tools.round_trip("<|user|>\nhi<|end|>") == "\nhi"  # special tokens dropped


async def test_long_conversations_render_in_a_thread(monkeypatch: pytest.MonkeyPatch) -> None:
    import asyncio

    from gateway.chat import template

    threads: list[str] = []
    to_thread = asyncio.to_thread

    async def recording_to_thread(function, /, *args, **kwargs):  # type: ignore[no-untyped-def]
        threads.append(function.__name__)
        return await to_thread(function, *args, **kwargs)

    monkeypatch.setattr(template.asyncio, "to_thread", recording_to_thread)
    store = TokenizerStore([TOKENIZER])
    store.tokenizer("m")  # loaded before, so only rendering is left
    short = [{"role": "user", "content": "hi"}]
    long = [{"role": "user" if i % 2 == 0 else "assistant", "content": f"turn {i}"} for i in range(101)]
    assert await store.render_chat_async("m", short) == store.render_chat("m", short)
    assert threads == []
    assert await store.render_chat_async("m", long) == store.render_chat("m", long)
    assert threads == ["render_chat"]


def test_chat_template_flag_replaces_the_tokenizers(tmp_path: Path) -> None:
    template = tmp_path / "t.jinja"
    template.write_text("{% for m in messages %}[{{ m['content'] }}]{% endfor %}")
    store = TokenizerStore([TOKENIZER], chat_template=template)
    assert store.render_chat("m", [{"role": "user", "content": "hi"}]) == "[hi]"


def test_template_errors_and_missing_tokenizer_are_400(tmp_path: Path) -> None:
    with pytest.raises(InvalidRequest) as caught:
        TokenizerStore([]).render_chat("m", [{"role": "user", "content": "hi"}])
    assert caught.value.code == "chat_template_unavailable"
    template = tmp_path / "t.jinja"
    template.write_text("{{ raise_exception('roles must alternate') }}")
    with pytest.raises(InvalidRequest) as caught:
        TokenizerStore([TOKENIZER], chat_template=template).render_chat("m", [{"role": "user", "content": "x"}])
    assert "roles must alternate" in caught.value.message


def test_tools_reach_the_chat_template(tmp_path: Path) -> None:
    template = tmp_path / "t.jinja"
    template.write_text("{% for t in tools %}[{{ t.function.name }}]{% endfor %}{{ messages[-1]['content'] }}")
    store = TokenizerStore([TOKENIZER], chat_template=template)
    tools = [{"type": "function", "function": {"name": "a", "parameters": {}}}]
    assert store.render_chat("m", [{"role": "user", "content": "hi"}], tools=tools) == "[a]hi"


def test_required_admits_any_tool_and_named_only_its_own() -> None:
    from gateway.openai.tools import plan_tools
    from schemas.requests import ChatCompletionRequest, FunctionDefinition, ToolDefinition

    tools = [
        ToolDefinition(FunctionDefinition("a", parameters={"type": "object"})),
        ToolDefinition(FunctionDefinition("b")),
    ]
    body = ChatCompletionRequest(model="m", messages=[ChatMessage("user", "x")], tools=tools, tool_choice="required")
    plan = plan_tools(body, None, 100)
    assert plan.guided is not None and plan.guided.schema is not None
    options = plan.guided.schema["items"]["anyOf"]
    assert [option["properties"]["name"]["enum"] for option in options] == [["a"], ["b"]]
    assert "maxItems" not in plan.guided.schema
    single = plan_tools(
        ChatCompletionRequest(
            model="m",
            messages=[ChatMessage("user", "x")],
            tools=tools,
            tool_choice="required",
            parallel_tool_calls=False,
        ),
        None,
        100,
    )
    assert single.guided is not None and single.guided.schema is not None and single.guided.schema["maxItems"] == 1
