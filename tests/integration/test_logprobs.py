"""Token logprobs in OpenAI's chat and completions shapes, and best_of: from vLLM's own tokens,
and from TensorRT-LLM's output_log_probs paired with the re-tokenized text."""

from __future__ import annotations

from collections.abc import Iterator

import openai
import pytest

from standin.text import token_logprob
from tests.conftest import sse_events, user

TRTLLM_MODELS = ["ensemble", "tensorrt_llm_bls", "tensorrt_llm_bls_accumulate"]
HELLO = user("Hello there")


@pytest.fixture(scope="module")
def sdk(gateway_process: str) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=f"{gateway_process}/v1", api_key="not-needed", max_retries=0) as client:
        yield client


def test_chat_logprobs(sdk: openai.OpenAI) -> None:
    reply = sdk.chat.completions.create(
        model="vllm_model", messages=user("Hello there"), temperature=0, logprobs=True, top_logprobs=2, max_tokens=40
    )
    choice = reply.choices[0]
    assert choice.logprobs is not None and choice.logprobs.content is not None
    entries = choice.logprobs.content
    assert reply.usage is not None and len(entries) == reply.usage.completion_tokens  # EOS included
    assert "".join(entry.token for entry in entries) == choice.message.content
    for entry in entries:
        assert entry.logprob <= 0 and entry.bytes == list(entry.token.encode())
        assert len(entry.top_logprobs) == 2
        assert entry.top_logprobs[0].logprob >= entry.top_logprobs[1].logprob
        assert entry.top_logprobs[0].token == entry.token  # the stand-in samples greedily


def test_chat_logprobs_streamed_match(sdk: openai.OpenAI) -> None:
    kwargs = {
        "model": "vllm_model",
        "messages": user("Hello there"),
        "temperature": 0,
        "logprobs": True,
        "max_tokens": 40,
    }
    full = sdk.chat.completions.create(**kwargs)
    streamed = []
    for chunk in sdk.chat.completions.create(stream=True, **kwargs):
        if chunk.choices and chunk.choices[0].logprobs and chunk.choices[0].logprobs.content:
            streamed += chunk.choices[0].logprobs.content
    assert full.choices[0].logprobs is not None
    assert [(e.token, e.logprob) for e in streamed] == [
        (e.token, e.logprob) for e in full.choices[0].logprobs.content or []
    ]
    assert all(entry.top_logprobs == [] for entry in streamed)  # top_logprobs not asked for


async def test_completion_logprobs_have_offsets(client) -> None:
    body = {"model": "vllm_model", "prompt": "Once upon a time", "temperature": 0, "logprobs": 3, "max_tokens": 40}
    full = await (await client.post("/v1/completions", json=body)).json()
    choice = full["choices"][0]
    logprobs = choice["logprobs"]
    assert "".join(logprobs["tokens"]) == choice["text"]
    assert len(logprobs["tokens"]) == len(logprobs["token_logprobs"]) == len(logprobs["top_logprobs"])
    assert logprobs["text_offset"][0] == 0
    for offset, token, nxt in zip(logprobs["text_offset"], logprobs["tokens"], logprobs["text_offset"][1:]):
        assert nxt == offset + len(token)
    assert all(len(top) <= 3 for top in logprobs["top_logprobs"])
    events = await sse_events(await client.post("/v1/completions", json={**body, "stream": True}))
    offsets = [
        o
        for e in events[:-1]
        if e["choices"] and e["choices"][0]["logprobs"]
        for o in e["choices"][0]["logprobs"]["text_offset"]
    ]
    assert offsets == logprobs["text_offset"]


@pytest.mark.parametrize("model", ["vllm_model", "ensemble", "tensorrt_llm_bls"])
def test_best_of_returns_n_of_the_candidates_and_counts_them_all(sdk: openai.OpenAI, model: str) -> None:
    single = sdk.completions.create(model=model, prompt="Once upon a time", temperature=0, max_tokens=40)
    best = sdk.completions.create(model=model, prompt="Once upon a time", temperature=0, max_tokens=40, best_of=3)
    assert len(best.choices) == 1 and best.choices[0].text == single.choices[0].text
    assert best.usage is not None and single.usage is not None
    assert best.usage.completion_tokens == 3 * single.usage.completion_tokens


@pytest.mark.parametrize(
    ("model", "kwargs", "param"),
    [
        ("llmapi", {"logprobs": True}, "logprobs"),
        ("vllm_legacy", {"logprobs": True}, "logprobs"),
    ],
)
def test_models_that_cannot_report_logprobs_refuse_them(
    sdk: openai.OpenAI, model: str, kwargs: dict, param: str
) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        sdk.chat.completions.create(model=model, messages=user("x"), **kwargs)
    assert caught.value.param == param


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"model": "llmapi", "best_of": 2}, "best_of"),
        ({"model": "vllm_model", "best_of": 2, "stream": True}, "best_of"),
        ({"model": "vllm_model", "best_of": 1, "n": 2}, "best_of"),
        ({"model": "vllm_model", "echo": True, "logprobs": 1}, "logprobs"),
    ],
)
async def test_completion_combinations_refused(client, body: dict, param: str) -> None:  # type: ignore[no-untyped-def]
    response = await client.post("/v1/completions", json={"prompt": "x", **body})
    assert response.status == 400
    assert (await response.json())["error"]["param"] == param


def streamed_chat_logprobs(sdk: openai.OpenAI, **kwargs) -> list[list]:  # type: ignore[no-untyped-def]
    """The logprob entries of each chunk of a streamed chat reply, checking that each chunk's
    tokens join to its text."""
    chunks = []
    for chunk in sdk.chat.completions.create(stream=True, **kwargs):
        if not chunk.choices:
            continue
        choice = chunk.choices[0]
        tokens = (choice.logprobs.content or []) if choice.logprobs else []
        assert "".join(token.token for token in tokens) == (choice.delta.content or "")
        chunks.append(tokens)
    return chunks


@pytest.mark.parametrize("model", TRTLLM_MODELS)
def test_trtllm_chat_logprobs_pair_the_retokenized_text_with_output_log_probs(
    sdk: openai.OpenAI,
    tokenizer,  # type: ignore[no-untyped-def]
    model: str,
) -> None:
    kwargs = {"model": model, "messages": HELLO, "temperature": 0, "logprobs": True, "top_logprobs": 0}
    reply = sdk.chat.completions.create(max_tokens=40, **kwargs)
    content = reply.choices[0].message.content or ""
    assert content == "You said: Hello there"
    assert reply.choices[0].logprobs is not None
    entries = reply.choices[0].logprobs.content or []
    assert "".join(entry.token for entry in entries) == content
    # The stand-in's logprob of each generated token, derived from its id.
    assert [entry.logprob for entry in entries] == [
        token_logprob(token) for token in tokenizer.encode(content, add_special_tokens=False)
    ]
    assert len({entry.logprob for entry in entries}) > 2
    for entry in entries:
        assert entry.bytes == list(entry.token.encode()) and entry.top_logprobs == []
    chunks = streamed_chat_logprobs(sdk, max_tokens=40, **kwargs)
    assert len([tokens for tokens in chunks if tokens]) > 1  # per chunk, not all at the end
    streamed = [entry for tokens in chunks for entry in tokens]
    assert [(entry.token, entry.logprob) for entry in streamed] == [(entry.token, entry.logprob) for entry in entries]


@pytest.mark.parametrize("stream", [False, True])
def test_trtllm_logprobs_end_with_the_text_the_stop_string_left(
    sdk: openai.OpenAI,
    tokenizer,  # type: ignore[no-untyped-def]
    stream: bool,
) -> None:
    # The model generated "... Hello there"; the gateway cut at "there", leaving "... Hello ".
    kwargs = {"model": "ensemble", "messages": HELLO, "temperature": 0, "logprobs": True, "stop": ["there"]}
    if stream:
        entries = [entry for tokens in streamed_chat_logprobs(sdk, **kwargs) for entry in tokens]
    else:
        reply = sdk.chat.completions.create(**kwargs)
        assert reply.choices[0].message.content == "You said: Hello " and reply.choices[0].logprobs is not None
        entries = reply.choices[0].logprobs.content or []
    assert "".join(entry.token for entry in entries) == "You said: Hello "
    assert len(entries) == len(tokenizer.encode("You said: Hello ", add_special_tokens=False))
    generated = tokenizer.encode("You said: Hello there", add_special_tokens=False)
    # Paired by position: the trailing " " (the visible part of " there") has that token's value.
    assert [entry.logprob for entry in entries] == [token_logprob(token) for token in generated[: len(entries)]]


@pytest.mark.parametrize("model", TRTLLM_MODELS)
def test_trtllm_completion_logprobs(sdk: openai.OpenAI, tokenizer, model: str) -> None:  # type: ignore[no-untyped-def]
    kwargs = {"model": model, "prompt": "Once upon a time", "temperature": 0, "logprobs": 1, "max_tokens": 40}
    choice = sdk.completions.create(**kwargs).choices[0]
    logprobs = choice.logprobs
    assert logprobs is not None and logprobs.tokens and logprobs.token_logprobs
    assert choice.text == "You said: Once upon a time" == "".join(logprobs.tokens)
    ids = tokenizer.encode(choice.text, add_special_tokens=False)
    assert logprobs.token_logprobs == [token_logprob(token) for token in ids]
    # No alternatives: logprobs=1 lists the sampled token only.
    assert logprobs.top_logprobs == [
        {token: value} for token, value in zip(logprobs.tokens, logprobs.token_logprobs, strict=True)
    ]
    offsets = [sum(len(token) for token in logprobs.tokens[:i]) for i in range(len(ids))]
    assert logprobs.text_offset == offsets
    streamed, carrying = [], 0
    for chunk in sdk.completions.create(stream=True, **kwargs):
        if not chunk.choices:
            continue
        part = chunk.choices[0].logprobs
        tokens = (part.tokens or []) if part else []
        assert "".join(tokens) == chunk.choices[0].text  # each chunk carries its own tokens
        if part:
            streamed += zip(tokens, part.token_logprobs or [], part.text_offset or [], strict=True)
            carrying += bool(tokens)
    assert carrying > 1
    assert streamed == list(zip(logprobs.tokens, logprobs.token_logprobs, offsets, strict=True))


@pytest.mark.parametrize(
    ("path", "body", "param"),
    [
        ("/v1/chat/completions", {"messages": HELLO, "logprobs": True, "top_logprobs": 2}, "top_logprobs"),
        ("/v1/chat/completions", {"messages": HELLO, "logprobs": True, "top_logprobs": 1}, "top_logprobs"),
        ("/v1/completions", {"prompt": "x", "logprobs": 2}, "logprobs"),
    ],
)
async def test_trtllm_alternatives_are_refused_by_name(client, path: str, body: dict, param: str) -> None:  # type: ignore[no-untyped-def]
    for stream in (False, True):
        response = await client.post(path, json={"model": "ensemble", "stream": stream, **body})
        assert response.status == 400
        error = (await response.json())["error"]
        assert set(error) == {"message", "type", "param", "code"}
        assert (error["param"], error["code"], error["type"]) == (
            param,
            "unsupported_parameter",
            "invalid_request_error",
        )
        assert "alternatives" in error["message"]
