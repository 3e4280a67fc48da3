"""TensorRT-LLM models through the openai SDK: the ensemble (a real Triton ensemble of
preprocessing -> tensorrt_llm -> postprocessing), the decoupled BLS (per-response and
accumulated text) and the LLM-API model."""

from __future__ import annotations

from collections.abc import Iterator

import openai
import pytest

from tests.conftest import sse_events, user

TRTLLM_MODELS = ["ensemble", "tensorrt_llm_bls", "tensorrt_llm_bls_accumulate", "llmapi"]
HELLO = [{"role": "user", "content": "Hello there"}]


@pytest.fixture(scope="module")
def sdk(gateway_process: str) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=f"{gateway_process}/v1", api_key="not-needed", max_retries=0) as client:
        yield client


def stream_chat(sdk: openai.OpenAI, **kwargs) -> tuple[str, list]:  # type: ignore[no-untyped-def]
    chunks = list(sdk.chat.completions.create(stream=True, **kwargs))
    text = "".join(chunk.choices[0].delta.content or "" for chunk in chunks if chunk.choices)
    return text, chunks


@pytest.mark.parametrize("model", TRTLLM_MODELS)
def test_chat_streamed_and_not(sdk: openai.OpenAI, tokenizer, model: str) -> None:  # type: ignore[no-untyped-def]
    full = sdk.chat.completions.create(model=model, messages=HELLO, temperature=0, max_tokens=40)
    assert full.choices[0].message.content == "You said: Hello there"
    assert full.choices[0].finish_reason == "stop"
    prompt = tokenizer.apply_chat_template(HELLO, tokenize=False, add_generation_prompt=True)
    assert full.usage is not None
    assert full.usage.prompt_tokens == len(tokenizer.encode(prompt, add_special_tokens=False))
    assert full.usage.completion_tokens >= len(tokenizer.encode("You said: Hello there", add_special_tokens=False))

    text, chunks = stream_chat(
        sdk, model=model, messages=HELLO, temperature=0, max_tokens=40, stream_options={"include_usage": True}
    )
    assert text == full.choices[0].message.content
    assert chunks[0].choices[0].delta.role == "assistant"
    with_choices = [chunk for chunk in chunks if chunk.choices]
    assert with_choices[-1].choices[0].finish_reason == "stop"
    # No empty extra chunks: every chunk before the finish carries text.
    assert all(chunk.choices[0].delta.content for chunk in with_choices[1:-1])
    assert chunks[-1].choices == [] and chunks[-1].usage is not None
    assert chunks[-1].usage.completion_tokens > 0


# ensemble and the BLS: `preprocessing` with add_special_tokens unfilled (so true);
# ensemble_guided: `preprocessing_verbatim` (false); llmapi and vllm_model add them.
EVERY_TOKENIZATION = [*TRTLLM_MODELS, "ensemble_guided", "vllm_model"]


@pytest.mark.parametrize("model", EVERY_TOKENIZATION)
def test_the_engine_gets_the_prompt_vllms_own_server_sends(sdk: openai.OpenAI, tokenizer, model: str) -> None:  # type: ignore[no-untyped-def]
    """vLLM's server tokenizes a rendered chat prompt (which starts with the BOS text) without
    adding special tokens: one BOS. Backends that add them would double it unless the gateway
    leaves the BOS text out, and must not lose it where they do not. The stand-in engines
    answer PROMPT_REPORT with what they received."""
    messages = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "/prompt-ids"},
    ]
    rendered = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    expected = len(tokenizer.encode(rendered, add_special_tokens=False))
    full = sdk.chat.completions.create(model=model, messages=messages, temperature=0, max_tokens=20)
    assert full.choices[0].message.content == f"{expected} tokens, 1 BOS"
    assert full.usage is not None and full.usage.prompt_tokens == expected
    text, chunks = stream_chat(
        sdk,
        model=model,
        messages=messages,
        temperature=0,
        max_tokens=20,
        stream_options={"include_usage": True},
    )
    assert text == f"{expected} tokens, 1 BOS"
    assert chunks[-1].usage is not None and chunks[-1].usage.prompt_tokens == expected


@pytest.mark.parametrize("model", ["ensemble", "ensemble_guided", "tensorrt_llm_bls"])
def test_token_id_prompts_reach_the_engine_as_given(sdk: openai.OpenAI, tokenizer, model: str) -> None:  # type: ignore[no-untyped-def]
    ids = [tokenizer.bos_token_id, *tokenizer.encode("Hello there", add_special_tokens=False)]
    completion = sdk.completions.create(model=model, prompt=ids, max_tokens=8, temperature=0)
    assert completion.usage is not None and completion.usage.prompt_tokens == len(ids)


@pytest.mark.parametrize("model", TRTLLM_MODELS)
def test_completions_do_not_echo_the_prompt(sdk: openai.OpenAI, model: str) -> None:
    # The BLS declares no exclude_input_in_output: the prompt comes back and the gateway removes it.
    completion = sdk.completions.create(model=model, prompt="Once upon a time", max_tokens=40, temperature=0)
    assert completion.choices[0].text == "You said: Once upon a time"
    streamed = "".join(
        chunk.choices[0].text
        for chunk in sdk.completions.create(
            model=model, prompt="Once upon a time", max_tokens=40, temperature=0, stream=True
        )
    )
    assert streamed == completion.choices[0].text


@pytest.mark.parametrize("model", TRTLLM_MODELS)
@pytest.mark.parametrize("stream", [False, True])
def test_finish_reason_length_is_inferred(sdk: openai.OpenAI, model: str, stream: bool) -> None:
    if stream:
        text, chunks = stream_chat(sdk, model=model, messages=HELLO, temperature=0, max_tokens=3)
        reason = [chunk for chunk in chunks if chunk.choices][-1].choices[0].finish_reason
    else:
        reply = sdk.chat.completions.create(model=model, messages=HELLO, temperature=0, max_tokens=3)
        text, reason = (
            reply.choices[0].message.content or "",
            reply.choices[0].finish_reason,
        )
    assert reason == "length"
    assert "You said: Hello there".startswith(text) and len(text) < len("You said: Hello there")


@pytest.mark.parametrize("model", TRTLLM_MODELS)
@pytest.mark.parametrize("stream", [False, True])
def test_stop_words_are_stripped(sdk: openai.OpenAI, model: str, stream: bool) -> None:
    kwargs = {"model": model, "messages": HELLO, "temperature": 0, "max_tokens": 40, "stop": ["there"]}
    if stream:
        text, chunks = stream_chat(sdk, **kwargs)
        reason = [chunk for chunk in chunks if chunk.choices][-1].choices[0].finish_reason
    else:
        reply = sdk.chat.completions.create(**kwargs)
        text, reason = reply.choices[0].message.content, reply.choices[0].finish_reason
    assert text == "You said: Hello "
    assert reason == "stop"


@pytest.mark.parametrize("model", ["ensemble", "tensorrt_llm_bls", "tensorrt_llm_bls_accumulate"])
def test_counts_without_count_outputs_match_the_engine(sdk: openai.OpenAI, model: str) -> None:
    """These configs predate num_input_tokens/num_output_tokens. `postprocessing` decodes each
    streamed response alone, so split characters arrive as U+FFFD per byte: re-tokenizing that
    text would count more tokens than the engine made. ensemble_guided runs the same engine and
    reports its counts: they are the truth."""
    messages = user("/raw naïve café, 日本語 — ünïcödé")
    truth = sdk.chat.completions.create(model="ensemble_guided", messages=messages, temperature=0, max_tokens=60)
    assert truth.usage is not None and truth.choices[0].finish_reason == "stop"
    generated = truth.usage.completion_tokens
    for max_tokens, finish in ((60, "stop"), (generated, "length")):
        full = sdk.chat.completions.create(model=model, messages=messages, temperature=0, max_tokens=max_tokens)
        assert full.usage is not None and full.usage.completion_tokens == generated
        assert full.choices[0].finish_reason == finish
        _, chunks = stream_chat(
            sdk,
            model=model,
            messages=messages,
            temperature=0,
            max_tokens=max_tokens,
            stream_options={"include_usage": True},
        )
        assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == generated
        assert [chunk.choices[0].finish_reason for chunk in chunks if chunk.choices][-1] == finish


@pytest.mark.parametrize("model", ["ensemble", "tensorrt_llm_bls", "llmapi"])
def test_seed_reaches_old_and_new_input_names(sdk: openai.OpenAI, model: str) -> None:
    replies = {
        sdk.chat.completions.create(model=model, messages=HELLO, temperature=1.0, seed=11, max_tokens=40)
        .choices[0]
        .message.content
        for _ in range(3)
    }
    assert len(replies) == 1


@pytest.mark.parametrize("model", ["tensorrt_llm_bls_accumulate", "llmapi"])
def test_streamed_multibyte_text_from_cumulative_models_is_intact(sdk: openai.OpenAI, model: str) -> None:
    # Each of these characters takes several tokens: cumulative text ends with U+FFFD
    # until the character is complete, and the gateway waits for it.
    messages = user("한국어 Ωß ñ 😀")
    full = sdk.chat.completions.create(model=model, messages=messages, temperature=0, max_tokens=60)
    text, _ = stream_chat(sdk, model=model, messages=messages, temperature=0, max_tokens=60)
    assert full.choices[0].message.content == text == "You said: 한국어 Ωß ñ 😀"
    assert "\ufffd" not in text


def test_parameters_a_model_cannot_honour_are_refused(sdk: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        sdk.chat.completions.create(model="llmapi", messages=HELLO, presence_penalty=0.5)
    assert caught.value.param == "presence_penalty"
    assert "sampling_param_presence_penalty" in caught.value.message
    with pytest.raises(openai.BadRequestError) as caught:
        sdk.chat.completions.create(model="ensemble", messages=HELLO, seed=-1)
    assert caught.value.param == "seed"


def test_penalties_reach_models_that_declare_them(sdk: openai.OpenAI) -> None:
    for model in ("ensemble", "tensorrt_llm_bls"):
        reply = sdk.chat.completions.create(
            model=model, messages=HELLO, temperature=0, presence_penalty=0.5, frequency_penalty=0.5, top_p=0.9
        )
        assert reply.choices[0].message.content


async def test_bls_empty_final_response_ends_the_stream_cleanly(client) -> None:
    # The BLS never flags its last data response; a separate flag-only response ends it.
    body = {"model": "tensorrt_llm_bls", "messages": HELLO, "temperature": 0, "stream": True, "max_tokens": 40}
    events = await sse_events(await client.post("/v1/chat/completions", json=body))
    assert events[-1] == "[DONE]"
    chunks = events[:-1]
    finish = [chunk["choices"][0]["finish_reason"] for chunk in chunks]
    assert finish.count("stop") == 1 and finish[-1] == "stop"
    assert chunks[-1]["choices"][0]["delta"] == {}
    assert all(chunk["choices"][0]["delta"].get("content") for chunk in chunks[1:-1])


async def test_an_abandoned_bls_request_runs_to_its_end(gateway_process, gateway_log, triton) -> None:  # type: ignore[no-untyped-def]
    """The real BLS never checks for cancellation and its inner request has an id of its own:
    the gateway cancels its call, the generation goes on to max_tokens, and the gateway's log
    says so (the README's cancellation table promises no more)."""
    import asyncio
    import time

    import aiohttp

    body = {
        "model": "tensorrt_llm_bls",
        "messages": user("keep going " * 30),
        "stream": True,
        "max_tokens": 120,
    }
    request_id = f"bls-abandoned-{time.monotonic_ns()}"
    async with aiohttp.ClientSession() as session:
        response = await session.post(
            f"{gateway_process}/v1/chat/completions", json=body, headers={"X-Request-Id": request_id}
        )
        await response.content.readline()
        response.close()
    ran_to_its_end = f"[bls] request {request_id} ran to its end: 120 tokens streamed"
    deadline = time.monotonic() + 30
    while ran_to_its_end not in triton.read_log() and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
    assert ran_to_its_end in triton.read_log()
    warning = f"request {request_id} left unfinished: the tensorrtllm-bls model 'tensorrt_llm_bls' does not stop"
    assert warning in gateway_log.read_text()


@pytest.mark.parametrize("model", ["ensemble", "tensorrt_llm_bls", "llmapi"])
def test_requests_without_sampling_fields_sample_as_openai_does(sdk: openai.OpenAI, model: str) -> None:
    """TensorRT-LLM decodes greedily when temperature, top_k and top_p are all unset; OpenAI
    samples at temperature 1. The stand-ins draw their opening at random only when sampling."""
    replies = set()
    for seed in range(6):
        reply = sdk.chat.completions.create(model=model, messages=user("Hello"), max_tokens=30, seed=seed)
        replies.add(reply.choices[0].message.content)
    assert len(replies) > 1, replies  # sampled
    greedy = sdk.chat.completions.create(model=model, messages=user("Hello"), max_tokens=30, temperature=0)
    assert greedy.choices[0].message.content == "You said: Hello"
