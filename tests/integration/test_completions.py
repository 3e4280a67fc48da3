"""POST /v1/completions"""

from __future__ import annotations

import pytest

from tests.conftest import sse_events


async def complete(client, **body):  # type: ignore[no-untyped-def]
    body.setdefault("model", "vllm_model")
    body.setdefault("prompt", "Once upon a time")
    return await client.post("/v1/completions", json=body)


async def test_completion_has_openai_shape(client, tokenizer) -> None:
    response = await complete(client, temperature=0)
    assert response.status == 200
    body = await response.json()
    assert body["object"] == "text_completion"
    assert body["id"].startswith("cmpl-")
    [choice] = body["choices"]
    assert choice["text"] == "You said: Once upon a time"
    assert choice["finish_reason"] == "stop"
    assert choice["index"] == 0
    # As vLLM's engine counts it: the text tokenized with special tokens added (the BOS too).
    assert body["usage"]["prompt_tokens"] == len(tokenizer.encode("Once upon a time"))


async def test_completion_prompt_is_not_echoed(client) -> None:
    # The vLLM backend prepends the prompt unless told not to; the gateway tells it.
    body = await (await complete(client, temperature=0, prompt="Tell me")).json()
    assert not body["choices"][0]["text"].startswith("Tell me")


async def test_completion_length_and_single_element_prompt_list(client) -> None:
    body = await (await complete(client, temperature=0, prompt=["Once upon a time"], max_tokens=2)).json()
    assert body["choices"][0]["finish_reason"] == "length"
    assert body["usage"]["completion_tokens"] == 2


async def test_streamed_completion_equals_non_streamed(client) -> None:
    full = await (await complete(client, temperature=0, stop=["time"])).json()
    events = await sse_events(
        await complete(client, temperature=0, stop=["time"], stream=True, stream_options={"include_usage": True})
    )
    assert events[-1] == "[DONE]"
    chunks = events[:-1]
    assert all(chunk["object"] == "text_completion" for chunk in chunks)
    text = "".join(chunk["choices"][0]["text"] for chunk in chunks if chunk["choices"])
    assert text == full["choices"][0]["text"] == "You said: Once upon a "
    assert chunks[-2]["choices"][0]["finish_reason"] == "stop"
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"] == full["usage"]


@pytest.mark.parametrize(
    ("field", "value"),
    [("suffix", "the end"), ("best_of", 0), ("n", 0)],
)
async def test_unsupported_fields_are_refused_by_name(client, field, value) -> None:  # type: ignore[no-untyped-def]
    response = await complete(client, **{field: value})
    assert response.status == 400
    error = (await response.json())["error"]
    assert error["param"] == field
    assert error["type"] == "invalid_request_error"


@pytest.mark.parametrize(
    ("prompt", "param"),
    [([], "prompt"), (["text", 5], "prompt"), ([[1, 2], []], "prompt[1]"), ([10**6], "prompt"), (["x"] * 65, "prompt")],
)
async def test_bad_prompts_are_refused(client, prompt, param: str) -> None:  # type: ignore[no-untyped-def]
    response = await complete(client, prompt=prompt)
    assert response.status == 400
    assert (await response.json())["error"]["param"] == param
