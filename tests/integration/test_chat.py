"""POST /v1/chat/completions against the stand-in vLLM backend on a real tritonserver."""

from __future__ import annotations

import asyncio
import time

from tests.conftest import sse_events, user

REPLY = "You said: Hello there"


async def chat(client, **body):  # type: ignore[no-untyped-def]
    body.setdefault("model", "vllm_model")
    body.setdefault("messages", user("Hello there"))
    return await client.post("/v1/chat/completions", json=body)


async def test_chat_completion_has_openai_shape_and_backend_usage(client, tokenizer) -> None:
    response = await chat(client, temperature=0)
    assert response.status == 200
    body = await response.json()
    assert body["object"] == "chat.completion"
    assert body["id"].startswith("chatcmpl-")
    assert body["model"] == "vllm_model"
    [choice] = body["choices"]
    assert choice["index"] == 0
    assert choice["message"] == {"role": "assistant", "content": REPLY}
    assert choice["finish_reason"] == "stop"
    prompt = tokenizer.apply_chat_template(user("Hello there"), tokenize=False, add_generation_prompt=True)
    # The end-of-sequence token is counted by the backend although it adds no text:
    # usage must come from Triton's counts, not from re-tokenizing the reply.
    reply_tokens = len(tokenizer.encode(REPLY, add_special_tokens=False))
    assert body["usage"] == {
        "prompt_tokens": len(tokenizer.encode(prompt, add_special_tokens=False)),
        "completion_tokens": reply_tokens + 1,
        "total_tokens": len(tokenizer.encode(prompt, add_special_tokens=False)) + reply_tokens + 1,
    }


async def test_max_tokens_gives_length_finish_reason(client) -> None:
    body = await (await chat(client, temperature=0, max_tokens=3)).json()
    assert body["choices"][0]["finish_reason"] == "length"
    assert body["usage"]["completion_tokens"] == 3
    assert REPLY.startswith(body["choices"][0]["message"]["content"])
    assert len(body["choices"][0]["message"]["content"]) < len(REPLY)


async def test_max_completion_tokens_wins_over_max_tokens(client) -> None:
    body = await (await chat(client, temperature=0, max_tokens=50, max_completion_tokens=2)).json()
    assert body["usage"]["completion_tokens"] == 2
    assert body["choices"][0]["finish_reason"] == "length"


async def test_default_max_tokens_applies_when_unset(aiohttp_client, settings) -> None:  # type: ignore[no-untyped-def]
    from dataclasses import replace

    from gateway.app import create_app

    # Chat: the default applies to models whose context length is not known (the ensemble's);
    # text completions keep their own default.
    client = await aiohttp_client(create_app(replace(settings, default_chat_max_tokens=4, default_max_tokens=3)))
    body = await (await chat(client, model="ensemble", temperature=0)).json()
    assert body["usage"]["completion_tokens"] == 4
    assert body["choices"][0]["finish_reason"] == "length"
    completion = await client.post("/v1/completions", json={"model": "vllm_model", "prompt": "Hi", "temperature": 0})
    body = await completion.json()
    assert body["usage"]["completion_tokens"] == 3 and body["choices"][0]["finish_reason"] == "length"


async def test_stop_strings_end_the_reply_before_the_stop(client) -> None:
    for stop in ("there", ["nothing-like-this", "there"]):
        body = await (await chat(client, temperature=0, stop=stop)).json()
        assert body["choices"][0]["message"]["content"] == "You said: Hello "
        assert body["choices"][0]["finish_reason"] == "stop"


async def test_roles_and_text_parts_reach_the_chat_template(client) -> None:
    messages = [
        {"role": "system", "content": "Be brief."},
        {"role": "developer", "content": [{"type": "text", "text": "Answer in English."}]},
        {"role": "user", "content": "first question"},
        {"role": "assistant", "content": "first answer"},
        {"role": "user", "content": [{"type": "text", "text": "second"}, {"type": "text", "text": "question"}]},
    ]
    body = await (await chat(client, messages=messages, temperature=0, user="someone")).json()
    assert body["choices"][0]["message"]["content"] == "You said: second\nquestion"


async def test_seed_makes_sampling_reproducible(client) -> None:
    replies = set()
    for _ in range(3):
        body = await (await chat(client, temperature=1.0, seed=1234)).json()
        replies.add(body["choices"][0]["message"]["content"])
    assert len(replies) == 1


async def test_sampling_values_within_range_are_accepted(client) -> None:
    response = await chat(client, temperature=0.7, top_p=0.9, presence_penalty=0.5, frequency_penalty=-0.5, seed=7)
    assert response.status == 200, await response.text()


async def test_streaming_matches_non_streaming_and_follows_openai_chunks(client) -> None:
    full = await (await chat(client, temperature=0)).json()
    response = await chat(client, temperature=0, stream=True, stream_options={"include_usage": True})
    assert response.status == 200
    events = await sse_events(response)
    assert events[-1] == "[DONE]"
    chunks = events[:-1]
    assert all(chunk["object"] == "chat.completion.chunk" for chunk in chunks)
    assert len({chunk["id"] for chunk in chunks}) == 1
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    usage_chunk = chunks[-1]
    assert usage_chunk["choices"] == []
    assert usage_chunk["usage"] == full["usage"]
    content_chunks = chunks[:-1]
    assert all("usage" not in chunk for chunk in content_chunks)
    text = "".join(chunk["choices"][0]["delta"].get("content", "") for chunk in content_chunks)
    assert text == full["choices"][0]["message"]["content"]
    finish = [chunk["choices"][0]["finish_reason"] for chunk in content_chunks]
    assert finish[-1] == "stop"
    assert set(finish[:-1]) == {None}
    assert len(content_chunks) > 3  # really streamed, token by token


async def test_streaming_without_usage_option_sends_no_usage_chunk(client) -> None:
    events = await sse_events(await chat(client, temperature=0, stream=True, max_tokens=5))
    chunks = events[:-1]
    assert all(chunk["choices"] for chunk in chunks)
    assert chunks[-1]["choices"][0]["finish_reason"] == "length"


async def test_streamed_multibyte_text_is_intact(client) -> None:
    messages = user("Café 東京 😀")
    events = await sse_events(await chat(client, messages=messages, temperature=0, stream=True))
    text = "".join(e["choices"][0]["delta"].get("content", "") for e in events[:-1] if e["choices"])
    assert text == "You said: Café 東京 😀"
    assert "\ufffd" not in text


async def test_legacy_backend_without_counts_gets_inferred_finish_and_tokenizer_usage(client, tokenizer) -> None:
    body = await (await chat(client, model="vllm_legacy", temperature=0)).json()
    assert body["choices"][0]["message"]["content"] == REPLY
    assert body["choices"][0]["finish_reason"] == "stop"
    assert body["usage"]["completion_tokens"] == len(tokenizer.encode(REPLY, add_special_tokens=False))
    short = await (await chat(client, model="vllm_legacy", temperature=0, max_tokens=3, stream=True)).read()
    assert b'"finish_reason":"length"' in short


async def test_every_value_the_gateway_accepts_is_accepted_by_the_backend(client) -> None:
    edges = [
        {"temperature": 0.0, "top_p": 1.0},
        {"temperature": 2.0, "top_p": 1e-6},
        {"presence_penalty": -2.0, "frequency_penalty": 2.0},
        {"presence_penalty": 2.0, "frequency_penalty": -2.0},
        {"seed": -(2**63)},
        {"seed": 2**63 - 1},
        {"max_tokens": 1},
        {"stop": ["x"] * 16},
        {"stop": ""},
    ]
    for edge in edges:
        response = await chat(client, **edge)
        assert response.status == 200, (edge, await response.text())


async def test_inputs_go_in_the_shape_the_model_declares(client) -> None:  # type: ignore[no-untyped-def]
    """vllm_shaped declares its scalar inputs [1, 1] (max_batch_size 0); Triton refuses any
    other shape ("unexpected shape for input …")."""
    for stream in (False, True):
        body = {"model": "vllm_shaped", "messages": [{"role": "user", "content": "Hello there"}], "stream": stream}
        response = await client.post("/v1/chat/completions", json={**body, "temperature": 0})
        assert response.status == 200, await response.text()
        if not stream:
            assert (await response.json())["choices"][0]["message"]["content"] == "You said: Hello there"


async def test_the_model_gets_the_prompt_vllms_own_server_sends(client, tokenizer) -> None:  # type: ignore[no-untyped-def]
    """vLLM's server renders the chat template (which writes the BOS text) and tokenizes it
    without adding special tokens; Triton's vLLM backend tokenizes its text WITH them, which
    adds the BOS again. The gateway leaves the BOS text out, so the engine sees one BOS: its
    prompt token count equals what vLLM's server would send."""
    messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hello there"}]
    rendered = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    as_vllm_serves = tokenizer.encode(rendered, add_special_tokens=False)
    assert as_vllm_serves.count(tokenizer.bos_token_id) == 1
    assert tokenizer.encode(rendered).count(tokenizer.bos_token_id) == 2  # what sending it as-is would give
    for stream in (False, True):
        body = {"model": "vllm_model", "messages": messages, "temperature": 0, "stream": stream}
        if stream:
            body["stream_options"] = {"include_usage": True}
        response = await client.post("/v1/chat/completions", json=body)
        if stream:
            events = await sse_events(response)
            usage = events[-2]["usage"]
        else:
            usage = (await response.json())["usage"]
        assert usage["prompt_tokens"] == len(as_vllm_serves)


async def test_token_id_prompts_reach_vllm_as_given(client, tokenizer) -> None:  # type: ignore[no-untyped-def]
    ids = [tokenizer.bos_token_id, *tokenizer.encode("Hello there", add_special_tokens=False)]
    body = {"model": "vllm_model", "prompt": ids, "max_tokens": 5}
    response = await client.post("/v1/completions", json=body)
    assert response.status == 200
    assert (await response.json())["usage"]["prompt_tokens"] == len(ids)


async def test_a_chat_request_without_a_limit_runs_to_the_end_of_the_context(client, settings) -> None:  # type: ignore[no-untyped-def]
    """vllm_model's model.json says max_model_len 256: a chat request that sets no max_tokens
    may use what the prompt leaves of it, as on vLLM's own server (not 16 tokens)."""
    messages = [{"role": "user", "content": "Hello there"}]
    body = {"model": "vllm_model", "messages": messages, "temperature": 0, "ignore_eos": True}
    response = await client.post("/v1/chat/completions", json=body)
    assert response.status == 200, await response.text()
    usage = (await response.json())["usage"]
    assert usage["prompt_tokens"] + usage["completion_tokens"] == 256
    completion = await client.post("/v1/completions", json={"model": "vllm_model", "prompt": "Hi", "ignore_eos": True})
    # The legacy API keeps its own default (OpenAI's 16; the tests' settings say 64).
    assert (await completion.json())["usage"]["completion_tokens"] == settings.default_max_tokens


async def test_the_access_line_carries_the_request_id_and_the_usage(gateway_process, gateway_log) -> None:  # type: ignore[no-untyped-def]
    import aiohttp

    body = {"model": "vllm_model", "messages": user("Hello there"), "max_tokens": 8}
    async with aiohttp.ClientSession() as session:
        for stream in (False, True):
            request_id = f"access-{int(stream)}-{id(session)}"
            response = await session.post(
                f"{gateway_process}/v1/chat/completions",
                json={**body, "stream": stream},
                headers={"X-Request-Id": request_id},
            )
            await response.read()
            access: list[str] = []
            deadline = time.monotonic() + 10  # lines are written by the gateway's log thread
            while not access and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
                lines = [line for line in gateway_log.read_text().splitlines() if f"[{request_id}]" in line]
                access = [line for line in lines if "gateway.access" in line]
            assert len(access) == 1 and "POST /v1/chat/completions 200" in access[0]
            assert "model=vllm_model tokens=" in access[0]
