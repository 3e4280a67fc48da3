from __future__ import annotations

import json

from gateway.backends.vllm import parse_logprobs
from gateway.generation import TokenLogprob
from gateway.openai.logprobs import chat_logprobs, completion_logprobs


def test_vllm_logprobs_json_is_parsed_sampled_first_then_best() -> None:
    raw = json.dumps(
        [
            {
                "7": {"logprob": -0.5, "rank": 2, "decoded_token": "a"},
                "3": {"logprob": -0.1, "rank": 1, "decoded_token": "b"},
            },
            {"9": {"logprob": -0.2, "rank": 1, "decoded_token": " c"}},
        ]
    ).encode()
    tokens = parse_logprobs(raw, top=1)
    assert tokens == [TokenLogprob("a", -0.5, (("b", -0.1),)), TokenLogprob(" c", -0.2, ((" c", -0.2),))]
    assert parse_logprobs(b"null", top=0) is None
    assert parse_logprobs(raw, top=0)[0].top == ()  # type: ignore[index]


def test_openai_shapes() -> None:
    tokens = [TokenLogprob("Hé", -0.5, (("Hé", -0.5), ("x", -1.0))), TokenLogprob("!", -0.25, ())]
    chat = chat_logprobs(tokens)
    assert chat.content is not None and chat.content[0].bytes == list("Hé".encode())
    assert [top.token for top in chat.content[0].top_logprobs] == ["Hé", "x"]
    completion = completion_logprobs(tokens, offset=4)
    assert completion.tokens == ["Hé", "!"] and completion.text_offset == [4, 6]
    assert completion.top_logprobs == [{"Hé": -0.5, "x": -1.0}, {}]
