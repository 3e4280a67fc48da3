"""GET /v1/models and /v1/models/{id}"""

from __future__ import annotations

import pytest


async def test_lists_only_text_generation_models(client) -> None:
    response = await client.get("/v1/models")
    assert response.status == 200
    body = await response.json()
    assert body["object"] == "list"
    ids = [card["id"] for card in body["data"] if card["parent"] is None]  # adapters: test_lora_and_models
    assert ids == [
        "ensemble",
        "ensemble_guided",
        "llmapi",
        "plain_text",
        "tensorrt_llm_bls",
        "tensorrt_llm_bls_accumulate",
        "vllm_embed",
        "vllm_guided_legacy",
        "vllm_legacy",
        "vllm_model",
        "vllm_reasoning",
        "vllm_shaped",
        "vllm_slow",
    ]
    for card in body["data"]:
        assert card["object"] == "model"
        assert card["owned_by"] == "triton"
        assert isinstance(card["created"], int)


async def test_retrieve_model(client) -> None:
    response = await client.get("/v1/models/vllm_model")
    assert response.status == 200
    assert (await response.json())["id"] == "vllm_model"


async def test_retrieve_unknown_or_non_llm_model_is_404(client) -> None:
    helpers = ("preprocessing", "preprocessing_verbatim", "tensorrt_llm", "postprocessing")
    for name in ("no_such_model", "add_sub", *helpers):
        response = await client.get(f"/v1/models/{name}")
        assert response.status == 404
        error = (await response.json())["error"]
        assert error["param"] == "model"
        assert name in error["message"]


@pytest.mark.parametrize("name", ["add_sub", "preprocessing", "postprocessing", "tensorrt_llm"])
async def test_inference_on_a_helper_or_non_llm_model_is_a_clear_400(client, name: str) -> None:
    for path, body in (
        ("/v1/chat/completions", {"model": name, "messages": [{"role": "user", "content": "hi"}]}),
        ("/v1/completions", {"model": name, "prompt": "hi"}),
    ):
        response = await client.post(path, json=body)
        assert response.status == 400
        error = (await response.json())["error"]
        assert error["code"] == "model_not_supported"
        assert error["param"] == "model"
        assert name in error["message"]
