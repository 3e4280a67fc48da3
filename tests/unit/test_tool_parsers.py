"""Tool-call parsing does not depend on where the text is split."""

from __future__ import annotations

import json

import pytest

from gateway.chat.tools import FORMATS, REQUIRED_FORMAT, ToolCallOverflow, ToolCallParser, named_format

WEATHER = {"city": "Paris", "unit": "°C", "note": 'a "quoted" } brace'}
CASES = {
    "llama3": [
        ('{"name": "get_weather", "parameters": ' + json.dumps(WEATHER) + "}", "", [("get_weather", WEATHER)]),
        (
            '  <|python_tag|>{"name": "a", "parameters": {}}; {"name": "b", "parameters": {"x": [1, {"y": 2}]}}',
            "",
            [("a", {}), ("b", {"x": [1, {"y": 2}]})],
        ),
        ("Just text with {braces} later.", "Just text with {braces} later.", []),
        ('{"not": "a call"}', '{"not": "a call"}', []),
        ('{"name": "cut", "parameters": {"x": ', '{"name": "cut", "parameters": {"x": ', []),
    ],
    "mistral": [
        (
            '  [TOOL_CALLS] [{"name": "get_weather", "arguments": ' + json.dumps(WEATHER) + "}]",
            "  ",
            [("get_weather", WEATHER)],
        ),
        (
            'Let me check. [TOOL_CALLS][{"name": "a", "arguments": {}}, {"name": "b", "arguments": {"k": "v"}}]',
            "Let me check. ",
            [("a", {}), ("b", {"k": "v"})],
        ),
        ("[TOOL_CALLS] not json", "[TOOL_CALLS] not json", []),
        ("No calls [TOOL_CALL here", "No calls [TOOL_CALL here", []),
    ],
    "hermes": [
        (
            '<tool_call>\n{"name": "get_weather", "arguments": ' + json.dumps(WEATHER) + "}\n</tool_call>",
            "",
            [("get_weather", WEATHER)],
        ),
        (
            'Sure.\n<tool_call>{"name": "a", "arguments": {}}</tool_call>\n<tool_call>{"name": "b", "arguments": {"q": 1}}</tool_call> done',
            "Sure.\n\n done",
            [("a", {}), ("b", {"q": 1})],
        ),
        ('<tool_call>{"name": broken}</tool_call>', '<tool_call>{"name": broken}</tool_call>', []),
    ],
}


def splits(text: str) -> list[list[str]]:
    """One chunk, every two-way split, characters one by one, and multi-character chunks."""
    ways = [[text], list(text)] + [[text[:i], text[i:]] for i in range(1, len(text))]
    ways += [[text[i : i + 5] for i in range(0, len(text), 5)], [text[i : i + 13] for i in range(0, len(text), 13)]]
    return ways


def run(parser: ToolCallParser, pieces: list[str]) -> tuple[str, list[tuple[str, dict]]]:
    content = ""
    calls = []
    for piece in pieces:
        result = parser.feed(piece)
        content += result.content
        calls += result.calls
    result = parser.finish()
    content += result.content
    calls += result.calls
    assert [call.index for call in calls] == list(range(len(calls)))
    return content, [(call.name, json.loads(call.arguments)) for call in calls]


@pytest.mark.parametrize(
    ("fmt", "text", "content", "calls"), [(f, *case) for f, cases in CASES.items() for case in cases]
)
def test_every_split_gives_the_same_result(fmt: str, text: str, content: str, calls: list) -> None:
    for pieces in splits(text):
        assert run(ToolCallParser(FORMATS[fmt]), pieces) == (content, calls), pieces


def test_ids() -> None:
    mistral = ToolCallParser(FORMATS["mistral"]).feed('[TOOL_CALLS][{"name": "a", "arguments": {}}]').calls[0].id
    assert len(mistral) == 9 and mistral.isalnum()
    hermes = ToolCallParser(FORMATS["hermes"]).feed('<tool_call>{"name": "a", "arguments": {}}</tool_call>').calls[0]
    assert hermes.id.startswith("call_")


def test_guided_outputs() -> None:
    text = '[{"name": "a", "parameters": {"x": 1}}, {"name": "b", "parameters": {}}]'
    for pieces in splits(text):
        assert run(ToolCallParser(REQUIRED_FORMAT), pieces)[1] == [("a", {"x": 1}), ("b", {})]
    assert run(ToolCallParser(named_format("f")), ['{"city": ', '"Oslo"}']) == ("", [("f", {"city": "Oslo"})])


def test_at_most_max_calls() -> None:
    parser = ToolCallParser(FORMATS["mistral"], max_calls=1)
    _, calls = run(parser, ['[TOOL_CALLS][{"name": "a", "arguments": {}}, {"name": "b", "arguments": {}}]'])
    assert [name for name, _ in calls] == ["a"]


def test_overflow() -> None:
    parser = ToolCallParser(FORMATS["hermes"], max_bytes=64)
    with pytest.raises(ToolCallOverflow):
        parser.feed('<tool_call>{"name": "a", "arguments": {"x": "' + "y" * 100)


def test_each_call_is_parsed_once(monkeypatch: pytest.MonkeyPatch) -> None:
    # Fed one character at a time, a long call is scanned once and json-parsed once (a parser
    # that re-read the accumulated text per chunk would parse it thousands of times).
    import gateway.chat.tools.parser as module

    parses = []
    real_loads = json.loads
    monkeypatch.setattr(module.json, "loads", lambda text: parses.append(len(text)) or real_loads(text))
    body = '[TOOL_CALLS][{"name": "a", "arguments": {"x": "' + "z" * 20000 + '"}}]'
    parser = ToolCallParser(FORMATS["mistral"])
    for char in body:
        parser.feed(char)
    parser.finish()
    assert len(parser.calls) == 1 and len(parses) == 1


@pytest.mark.parametrize("cut", range(1, 60))
def test_a_forced_call_cut_short_is_a_partial_call_never_content(cut: int) -> None:
    """Guided output the token limit ends: the calls so far, the last with its arguments up to
    the cut (their concatenation with the rest would be the whole call), and no content."""
    whole = '[{"name": "get_weather", "parameters": {"city": "Oslo"}}, {"name": "get_time", "parameters": {}}]'
    parser = ToolCallParser(REQUIRED_FORMAT)
    content = parser.feed(whole[:cut]).content + parser.finish().content
    assert content == ""
    names = [call.name for call in parser.calls]
    assert names == ["get_weather", "get_time"][: len(names)]
    if cut > len('[{"name": "get_weather"'):  # the name is complete: the call is there
        assert names and '{"city": "Oslo"}'.startswith(parser.calls[0].arguments)
    named = ToolCallParser(named_format("f"))
    assert named.feed('{"city": "Os').content + named.finish().content == ""
    assert [(call.name, call.arguments) for call in named.calls] == [("f", '{"city": "Os')]
