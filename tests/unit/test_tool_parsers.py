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
    "granite": [
        (
            '<|tool_call|>[{"name": "get_weather", "arguments": {"city": "Boston"}}, {"name": "t", "arguments": {}}]',
            "",
            [("get_weather", {"city": "Boston"}), ("t", {})],
        ),
        ('Sure. <tool_call>[{"name": "a", "arguments": {"x": 1}}]', "Sure. ", [("a", {"x": 1})]),
    ],
    "pythonic": [
        (
            (
                '[get_weather(city="San Francisco", metric=\'celsius\'), register_user(name="John", age=37, '
                'address={"city": "SF"}, tags=("a", "b"), role=None, passed_test=True, score=-1.5, ok=true)]'
            ),
            "",
            [
                ("get_weather", {"city": "San Francisco", "metric": "celsius"}),
                (
                    "register_user",
                    {
                        "name": "John",
                        "age": 37,
                        "address": {"city": "SF"},
                        "tags": ["a", "b"],
                        "role": None,
                        "passed_test": True,
                        "score": -1.5,
                        "ok": True,
                    },
                ),
            ],
        ),
        ("<|python_start|>[get_time(zone='CET, (UTC+1)')]<|python_end|>", "", [("get_time", {"zone": "CET, (UTC+1)"})]),
        ("Just text [not(a=1)]", "Just text [not(a=1)]", []),
        ("[1, 2, 3]", "[1, 2, 3]", []),
        ("[f(x=y)]", "[f(x=y)]", []),
    ],
    "qwen3_coder": [
        (
            (
                "<tool_call>\n<function=get_weather>\n<parameter=city>\nParis\n</parameter>\n<parameter=days>\n3\n"
                "</parameter>\n</function>\n</tool_call>"
            ),
            "",
            [("get_weather", {"city": "Paris", "days": "3"})],
        ),
        (
            'Let me check.\n<tool_call>\n<function=get_time>\n</function>\n</tool_call><tool_call><function=q><parameter=s>a "quoted"\nline</parameter></function></tool_call>',
            "Let me check.\n",
            [("get_time", {}), ("q", {"s": 'a "quoted"\nline'})],
        ),
        ("<tool_call> no function here", "<tool_call> no function here", []),
    ],
    "deepseek_v3": [
        (
            (
                "<｜tool▁calls▁begin｜><｜tool▁call▁begin｜>function<｜tool▁sep｜>get_weather\n```json\n"
                '{"city": "Tokyo"}\n```<｜tool▁call▁end｜><｜tool▁calls▁end｜>'
            ),
            "",
            [("get_weather", {"city": "Tokyo"})],
        ),
        (
            (
                'normal text<｜tool▁calls▁begin｜><｜tool▁call▁begin｜>foo<｜tool▁sep｜>{"x":1}<｜tool▁call▁end｜>'
                '<｜tool▁call▁begin｜>bar<｜tool▁sep｜>{"y":2}<｜tool▁call▁end｜><｜tool▁calls▁end｜>'
            ),
            "normal text",
            [("foo", {"x": 1}), ("bar", {"y": 2})],
        ),
    ],
    "kimi_k2": [
        (
            (
                "Sure.<|tool_calls_section_begin|><|tool_call_begin|>functions.get_weather:0<|tool_call_argument_begin|>"
                '{"city": "Tokyo"}<|tool_call_end|><|tool_call_begin|> functions.get_time:1 <|tool_call_argument_begin|>'
                "<|tool_call_end|><|tool_calls_section_end|>"
            ),
            "Sure.",
            [("get_weather", {"city": "Tokyo"}), ("get_time", {})],
        ),
    ],
}


def splits(text: str) -> list[list[str]]:
    """One chunk, every two-way split, characters one by one, and multi-character chunks."""
    ways = [[text], list(text)] + [[text[:i], text[i:]] for i in range(1, len(text))]
    ways += [[text[i : i + 5] for i in range(0, len(text), 5)], [text[i : i + 13] for i in range(0, len(text), 13)]]
    return ways


def streamed(parser: ToolCallParser, pieces: list[str]) -> tuple[str, list[tuple[str, str]]]:
    """Content, and each call's name and arguments joined from its parts (the first part of a
    call, with its id and name, comes before any other part of it)."""
    content = ""
    parts = []
    for result in [*(parser.feed(piece) for piece in pieces), parser.finish()]:
        content += result.content
        parts += result.calls
    calls: dict[int, list[str]] = {}
    for part in parts:
        if part.id:
            assert part.index == len(calls) and part.name
            calls[part.index] = [part.name, part.arguments]
        else:
            assert not part.name and part.index in calls
            calls[part.index][1] += part.arguments
    return content, [(name, arguments) for name, arguments in calls.values()]


def run(parser: ToolCallParser, pieces: list[str]) -> tuple[str, list[tuple[str, dict]]]:
    content, calls = streamed(parser, pieces)
    return content, [(name, json.loads(arguments)) for name, arguments in calls]


@pytest.mark.parametrize(
    ("fmt", "text", "content", "calls"), [(f, *case) for f, cases in CASES.items() for case in cases]
)
def test_every_split_gives_the_same_result(fmt: str, text: str, content: str, calls: list) -> None:
    for pieces in splits(text):
        assert run(FORMATS[fmt].parser(), pieces) == (content, calls), pieces


def test_qwen3_coder_types_values_by_the_tools_schema() -> None:
    schemas = {"f": {"properties": {"n": {"type": "integer"}, "on": {"type": "boolean"}, "s": {"type": "string"}}}}
    text = "<tool_call><function=f><parameter=n>\n3\n</parameter><parameter=on>true</parameter><parameter=s>7</parameter></function></tool_call>"
    for pieces in splits(text):
        parser = FORMATS["qwen3_coder"].parser(schemas=schemas)
        assert run(parser, pieces) == ("", [("f", {"n": 3, "on": True, "s": "7"})])


def test_an_endless_xml_parameter_name_stops_the_parser() -> None:
    parser = FORMATS["qwen3_coder"].parser()
    parser.feed("<tool_call><function=f><parameter=")
    with pytest.raises(ToolCallOverflow):
        parser.feed("x" * 200)


def test_kimi_ids_are_its_own_headers() -> None:
    parser = FORMATS["kimi_k2"].parser()
    parser.feed("<|tool_calls_section_begin|><|tool_call_begin|>functions.f:3<|tool_call_argument_begin|>{}")
    assert [call.id for call in parser.calls] == ["functions.f:3"]


def test_a_call_the_reply_cuts_short_stays_a_call() -> None:
    """Its name went out when it was complete: the call keeps the arguments written so far."""
    for pieces in splits('{"name": "cut", "parameters": {"x": '):
        assert streamed(ToolCallParser(FORMATS["llama3"]), pieces) == ("", [("cut", '{"x": ')])
    for pieces in splits('<tool_call>{"name": "ge'):  # the name never completed: text after all
        assert streamed(ToolCallParser(FORMATS["hermes"]), pieces) == ('<tool_call>{"name": "ge', [])


def test_arguments_stream_as_written_and_join_to_the_whole() -> None:
    text = '<tool_call>{"arguments": {"q": "a b"}, "name": "late"}</tool_call><tool_call>{"name": "f", "arguments": "{\\"k\\": 1}"}</tool_call>'
    for pieces in splits(text):
        assert streamed(ToolCallParser(FORMATS["hermes"]), pieces) == (
            "",
            [("late", '{"q": "a b"}'), ("f", '{"k": 1}')],
        )
    parser = ToolCallParser(FORMATS["hermes"])
    first = parser.feed('<tool_call>{"name": "get_weather", "arguments": {"city": "Os')
    assert [(part.name, part.arguments) for part in first.calls] == [("get_weather", ""), ("", '{"city": "Os')]
    assert [part.arguments for part in parser.feed('lo"}}</tool_call>').calls] == ['lo"}']


def test_mistral_v11_writes_a_name_then_its_arguments() -> None:
    text = 'Checking. [TOOL_CALLS]get_weather[ARGS]{"city": "Paris"}[TOOL_CALLS]get_time[ARGS] {}'
    for pieces in splits(text):
        assert run(ToolCallParser(FORMATS["mistral"]), pieces) == (
            "Checking. ",
            [("get_weather", {"city": "Paris"}), ("get_time", {})],
        )
    for pieces in splits("[TOOL_CALLS]not a name[ARGS]{}"):
        assert run(ToolCallParser(FORMATS["mistral"]), pieces) == ("[TOOL_CALLS]not a name[ARGS]{}", [])


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
    # Fed one character at a time, a long call is scanned once and json-parsed at most once (a
    # parser that re-read the accumulated text per chunk would parse it thousands of times).
    import gateway.chat.tools.parser as module

    parses = []
    real_loads = json.loads
    monkeypatch.setattr(module.json, "loads", lambda text: parses.append(len(text)) or real_loads(text))
    body = '[TOOL_CALLS][{"name": "a", "arguments": {"x": "' + "z" * 20000 + '"}}]'
    parser = ToolCallParser(FORMATS["mistral"])
    for char in body:
        parser.feed(char)
    parser.finish()
    assert len(parser.calls) == 1 and len(parses) <= 1


@pytest.mark.parametrize("cut", range(1, 60))
def test_a_forced_call_cut_short_is_a_partial_call_never_content(cut: int) -> None:
    """Guided output the token limit ends: the calls so far, the last with its arguments up to
    the cut (their concatenation with the rest would be the whole call), and no content."""
    whole = '[{"name": "get_weather", "parameters": {"city": "Oslo"}}, {"name": "get_time", "parameters": {}}]'
    content, calls = streamed(ToolCallParser(REQUIRED_FORMAT), [whole[:cut]])
    assert content == ""
    names = [name for name, _ in calls]
    assert names == ["get_weather", "get_time"][: len(names)]
    if cut > len('[{"name": "get_weather"'):  # the name is complete: the call is there
        assert names and '{"city": "Oslo"}'.startswith(calls[0][1])
    assert streamed(ToolCallParser(named_format("f")), ['{"city": "Os']) == ("", [("f", '{"city": "Os')])
