"""POST /tokenize and /detokenize as vLLM shapes them, GET /version and --version."""

from __future__ import annotations

import subprocess
import sys

from gateway.version import VERSION


async def test_a_prompt_tokenizes_as_the_model_tokenizer_does(client, tokenizer) -> None:  # type: ignore[no-untyped-def]
    response = await client.post("/tokenize", json={"model": "vllm_model", "prompt": "Hello world"})
    assert response.status == 200
    body = await response.json()
    expected = tokenizer.encode("Hello world", add_special_tokens=True)
    assert body == {"count": len(expected), "max_model_len": 256, "tokens": expected}
    plain = await client.post(
        "/tokenize",
        json={"model": "vllm_model", "prompt": "Hello world", "add_special_tokens": False, "return_token_strs": True},
    )
    body = await plain.json()
    assert body["tokens"] == tokenizer.encode("Hello world", add_special_tokens=False)
    assert body["token_strs"] == tokenizer.convert_ids_to_tokens(body["tokens"])


async def test_messages_are_rendered_with_the_chat_template(client, tokenizer) -> None:  # type: ignore[no-untyped-def]
    messages = [{"role": "user", "content": "Hi"}]
    for generation in (True, False):
        response = await client.post(
            "/tokenize", json={"model": "vllm_model", "messages": messages, "add_generation_prompt": generation}
        )
        text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=generation)
        assert (await response.json())["tokens"] == tokenizer.encode(text, add_special_tokens=False)


async def test_detokenize_is_the_way_back(client, tokenizer) -> None:  # type: ignore[no-untyped-def]
    ids = tokenizer.encode("Round trip", add_special_tokens=False)
    response = await client.post("/detokenize", json={"model": "vllm_model", "tokens": ids})
    assert (await response.json()) == {"prompt": "Round trip"}
    outside = await client.post("/detokenize", json={"model": "vllm_model", "tokens": [1, len(tokenizer) + 5]})
    error = (await outside.json())["error"]
    assert outside.status == 400 and error["param"] == "tokens[1]"


async def test_bad_tokenize_requests_are_clear(client) -> None:  # type: ignore[no-untyped-def]
    both = await client.post(
        "/tokenize", json={"model": "vllm_model", "prompt": "a", "messages": [{"role": "user", "content": "b"}]}
    )
    assert both.status == 400 and (await both.json())["error"]["param"] == "messages"
    neither = await client.post("/tokenize", json={"model": "vllm_model"})
    assert neither.status == 400 and (await neither.json())["error"]["param"] == "prompt"
    unknown = await client.post("/tokenize", json={"model": "no_such_model", "prompt": "a"})
    assert unknown.status == 404


async def test_version_names_the_gateway_and_triton(client) -> None:  # type: ignore[no-untyped-def]
    body = await (await client.get("/version")).json()
    assert body["version"] == VERSION and body["triton"]["version"] and "name" not in body["triton"]


def test_the_version_flag() -> None:
    printed = subprocess.run(
        [sys.executable, "-m", "gateway", "--version"], capture_output=True, text=True, check=False
    )
    assert printed.returncode == 0 and printed.stdout.strip() == f"triton-openai-gateway {VERSION}"


async def test_the_openapi_document_is_served(client) -> None:  # type: ignore[no-untyped-def]
    response = await client.get("/openapi.json")
    document = await response.json()
    assert response.status == 200 and document["openapi"] == "3.1.0"
    assert "/v1/chat/completions" in document["paths"] and "/tokenize" in document["paths"]
    assert not any(path.startswith("/v2") for path in document["paths"])  # KServe frontends off here
