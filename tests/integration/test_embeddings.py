"""POST /v1/embeddings for vLLM embedding models."""

from __future__ import annotations

import base64
import math
import struct
from collections.abc import Iterator

import openai
import pytest

from tests.conftest import user


@pytest.fixture(scope="module")
def sdk(gateway_process: str) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=f"{gateway_process}/v1", api_key="not-needed", max_retries=0) as client:
        yield client


def test_embeddings_of_text_token_ids_and_lists(sdk: openai.OpenAI, tokenizer) -> None:  # type: ignore[no-untyped-def]
    single = sdk.embeddings.create(model="vllm_embed", input="hello world")
    [item] = single.data
    assert item.index == 0 and len(item.embedding) == 16
    assert math.isclose(math.fsum(v * v for v in item.embedding), 1.0, rel_tol=1e-6)
    assert single.usage.prompt_tokens == len(tokenizer.encode("hello world", add_special_tokens=False))
    several = sdk.embeddings.create(model="vllm_embed", input=["hello world", "something else"])
    assert [d.index for d in several.data] == [0, 1]
    assert several.data[0].embedding == item.embedding and several.data[1].embedding != item.embedding
    ids = tokenizer.encode("hello world", add_special_tokens=False)
    assert sdk.embeddings.create(model="vllm_embed", input=ids).data[0].embedding == item.embedding
    assert sdk.embeddings.create(model="vllm_embed", input=[ids, ids]).usage.prompt_tokens == 2 * len(ids)


def test_dimensions_and_base64(sdk: openai.OpenAI) -> None:
    assert len(sdk.embeddings.create(model="vllm_embed", input="hi", dimensions=8).data[0].embedding) == 8
    floats = sdk.embeddings.create(model="vllm_embed", input="hi", encoding_format="float").data[0].embedding
    raw = sdk.with_raw_response.embeddings.create(model="vllm_embed", input="hi", encoding_format="base64")
    encoded = raw.http_response.json()["data"][0]["embedding"]
    decoded = struct.unpack(f"<{len(floats)}f", base64.b64decode(encoded))
    assert all(math.isclose(a, b, rel_tol=1e-6, abs_tol=1e-7) for a, b in zip(decoded, floats, strict=True))


@pytest.mark.parametrize("model", ["vllm_model", "ensemble"])
def test_models_that_do_not_embed_refuse(sdk: openai.OpenAI, model: str) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        sdk.embeddings.create(model=model, input="hi")
    assert caught.value.param == "model" and caught.value.code == "model_not_supported"


def test_chat_on_an_embedding_model_points_to_embeddings(sdk: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        sdk.chat.completions.create(model="vllm_embed", messages=user("hi"))
    assert "/v1/embeddings" in caught.value.message


@pytest.mark.parametrize(
    ("payload", "param"),
    [("", "input"), ([], "input"), (["a", [1]], "input"), (["a", ""], "input[1]"), (["x"] * 2049, "input")],
)
async def test_bad_inputs(client, payload, param: str) -> None:  # type: ignore[no-untyped-def]
    response = await client.post("/v1/embeddings", json={"model": "vllm_embed", "input": payload})
    assert response.status == 400
    assert (await response.json())["error"]["param"] == param


async def test_dimensions_are_bounded(client) -> None:
    # An unbounded size would let one request make the backend allocate without limit.
    response = await client.post("/v1/embeddings", json={"model": "vllm_embed", "input": "hi", "dimensions": 2**40})
    assert response.status == 400
    assert (await response.json())["error"]["param"] == "dimensions"
