"""LoRA adapters through the model name, and loading/unloading models on Triton."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from dataclasses import replace

import grpc
import pytest
from tritonclient.grpc import service_pb2 as pb
from tritonclient.grpc import service_pb2_grpc as pb_grpc

from gateway.app import create_app
from gateway.localtriton import LocalTriton
from tests.conftest import explicit_triton, sse_events, user


async def test_adapters_are_listed_with_their_parent(client) -> None:
    cards = {card["id"]: card for card in (await (await client.get("/v1/models")).json())["data"]}
    assert cards["vllm_model::doc-qa"]["parent"] == "vllm_model"
    assert cards["vllm_model::sql"]["parent"] == "vllm_model"
    assert cards["vllm_slow::extra"]["parent"] == "vllm_slow"  # from --lora-modules
    assert cards["vllm_model"]["parent"] is None
    card = await (await client.get("/v1/models/vllm_model::sql")).json()
    assert card["id"] == "vllm_model::sql" and card["parent"] == "vllm_model"


async def test_requests_reach_the_adapter(client) -> None:
    body = {"model": "vllm_model::doc-qa", "messages": user("Hello there"), "temperature": 0}
    full = await (await client.post("/v1/chat/completions", json=body)).json()
    assert full["choices"][0]["message"]["content"] == "[doc-qa] You said: Hello there"
    assert full["model"] == "vllm_model::doc-qa"
    events = await sse_events(await client.post("/v1/chat/completions", json={**body, "stream": True}))
    streamed = "".join(e["choices"][0]["delta"].get("content", "") for e in events[:-1] if e["choices"])
    assert streamed == "[doc-qa] You said: Hello there"
    body = {"model": "vllm_model::sql", "prompt": "select", "temperature": 0}
    completion = await (await client.post("/v1/completions", json=body)).json()
    assert completion["choices"][0]["text"] == "[sql] You said: select"


async def test_unknown_adapters_are_404s_before_triton(client, triton) -> None:  # type: ignore[no-untyped-def]
    before = triton.read_log().count("LoRA")
    response = await client.post("/v1/chat/completions", json={"model": "vllm_model::nope", "messages": user("x")})
    assert response.status == 404
    error = (await response.json())["error"]
    assert error["code"] == "adapter_not_found" and "nope" in error["message"] and "doc-qa" in error["message"]
    assert triton.read_log().count("LoRA") == before  # Triton never saw it


async def test_backend_lora_errors_are_translated(aiohttp_client, settings) -> None:  # type: ignore[no-untyped-def]
    # An adapter the gateway was told about but the backend does not have (LoRA not enabled there).
    client = await aiohttp_client(create_app(replace(settings, lora_modules=("vllm_legacy:ghost=/x",))))
    response = await client.post("/v1/chat/completions", json={"model": "vllm_legacy::ghost", "messages": user("x")})
    assert response.status == 400
    error = (await response.json())["error"]
    assert error["param"] == "model" and "LoRA feature is not enabled" in error["message"]


ADMIN = {"Authorization": "Bearer admin-secret"}
MODEL_CONTROL = {"enable_model_control": True, "admin_api_keys": ("admin-secret",), "api_keys": ("inference-key",)}
INFERENCE_KEY = {"Authorization": "Bearer inference-key"}


async def test_load_and_unload_are_off_by_default(client, triton) -> None:  # type: ignore[no-untyped-def]
    for path in ("/v1/models/vllm_model/unload", "/v1/models/vllm_model/load"):
        response = await client.post(path, headers=ADMIN)
        assert response.status == 403, await response.text()
        error = (await response.json())["error"]
        assert error["code"] == "endpoint_disabled" and "--enable-model-control" in error["message"]
    assert (await client.get("/v1/models/vllm_model")).status == 200  # still there


async def test_load_and_unload_need_the_admin_key(aiohttp_client, settings) -> None:  # type: ignore[no-untyped-def]
    client = await aiohttp_client(create_app(replace(settings, **MODEL_CONTROL)))
    for headers in ({}, INFERENCE_KEY, {"Authorization": "Bearer wrong"}):
        response = await client.post("/v1/models/vllm_model/unload", headers=headers)
        assert response.status == 401 and (await response.json())["error"]["code"] == "invalid_api_key"
    assert (await client.get("/v1/models/vllm_model", headers=ADMIN)).status == 401  # the admin key is not an API key
    assert (await client.get("/v1/models/vllm_model", headers=INFERENCE_KEY)).status == 200


async def test_load_and_unload_need_explicit_mode(aiohttp_client, settings) -> None:  # type: ignore[no-untyped-def]
    client = await aiohttp_client(create_app(replace(settings, **MODEL_CONTROL)))
    response = await client.post("/v1/models/vllm_model/unload", headers=ADMIN)
    assert response.status == 400
    assert (await response.json())["error"]["code"] == "model_control_disabled"


@pytest.fixture(scope="module")
def explicit_model_triton() -> Iterator[LocalTriton]:
    with explicit_triton("vllm_model") as server:
        yield server


async def test_load_unload_and_changes_made_on_triton_directly(aiohttp_client, settings, explicit_model_triton) -> None:  # type: ignore[no-untyped-def]
    client = await aiohttp_client(
        create_app(
            replace(settings, triton_url=explicit_model_triton.grpc_url, model_refresh_interval=0.3, **MODEL_CONTROL)
        )
    )

    async def listed() -> set[str]:
        response = await client.get("/v1/models", headers=INFERENCE_KEY)
        return {card["id"] for card in (await response.json())["data"] if "::" not in card["id"]}

    assert await listed() == {"vllm_model"}
    response = await client.post("/v1/models/vllm_legacy/load", headers=ADMIN)
    assert response.status == 200 and (await response.json())["status"] == "loaded"
    assert await listed() == {"vllm_model", "vllm_legacy"}
    chat = {"model": "vllm_legacy", "messages": user("hi"), "temperature": 0}
    assert (await client.post("/v1/chat/completions", json=chat, headers=INFERENCE_KEY)).status == 200
    assert (await client.post("/v1/models/vllm_legacy/unload", headers=ADMIN)).status == 200
    assert await listed() == {"vllm_model"}
    assert (await client.post("/v1/chat/completions", json=chat, headers=INFERENCE_KEY)).status == 404
    missing = await client.post("/v1/models/no_such_model/load", headers=ADMIN)
    assert missing.status == 404 and (await missing.json())["error"]["code"] == "model_not_found"

    # Loaded on Triton directly: a request naming it finds it (an unknown name refreshes the
    # registry, at most once a second so a burst of bogus names costs one refresh)...
    channel_stub = pb_grpc.GRPCInferenceServiceStub(grpc.aio.insecure_channel(explicit_model_triton.grpc_url))
    await channel_stub.RepositoryModelLoad(pb.RepositoryModelLoadRequest(model_name="vllm_slow"))
    await asyncio.sleep(1.1)
    fast = {"model": "vllm_slow", "messages": user("hi"), "max_tokens": 2}
    assert (await client.post("/v1/chat/completions", json=fast, headers=INFERENCE_KEY)).status == 200
    # ...and unloaded there, the list follows within the refresh interval.
    await channel_stub.RepositoryModelUnload(pb.RepositoryModelUnloadRequest(model_name="vllm_slow"))
    deadline = time.monotonic() + 10
    while "vllm_slow" in await listed() and time.monotonic() < deadline:
        await asyncio.sleep(0.2)
    assert "vllm_slow" not in await listed()


@pytest.fixture
def trtllm_adapters(tmp_path):  # type: ignore[no-untyped-def]
    import numpy as np

    folders = {}
    for name, rank in (("sql", 4), ("chat", 8)):
        folder = tmp_path / name
        folder.mkdir()
        np.save(folder / "model.lora_weights.npy", np.ones((1, 2, rank * 16), dtype=np.float16))
        np.save(folder / "model.lora_config.npy", np.array([[[0, 0, rank], [1, 0, rank]]], dtype=np.int32))
        folders[name] = folder
    return folders


async def test_trtllm_lora_sends_weights_once_and_again_when_forgotten(  # type: ignore[no-untyped-def]
    aiohttp_client, settings, trtllm_adapters
) -> None:
    from gateway.backends.trtllm import lora_task_id

    modules = tuple(
        f"{base}:{name}={folder}"
        for base in ("ensemble", "tensorrt_llm_bls", "llmapi")
        for name, folder in trtllm_adapters.items()
    )
    client = await aiohttp_client(create_app(replace(settings, lora_modules=modules)))

    async def ask(model: str) -> str:
        body = {"model": model, "messages": user("hi"), "temperature": 0, "max_tokens": 40}
        response = await client.post("/v1/chat/completions", json=body)
        assert response.status == 200, await response.text()
        return (await response.json())["choices"][0]["message"]["content"]

    sql, chat = lora_task_id("sql"), lora_task_id("chat")
    assert await ask("ensemble::sql") == f"[lora {sql}] You said: hi"  # weights sent with the first request
    assert await ask("ensemble::sql") == f"[lora {sql}] You said: hi"  # the task id alone
    assert await ask("ensemble::chat") == f"[lora {chat}] You said: hi"  # evicts sql (a cache of one task)
    assert await ask("ensemble::sql") == f"[lora {sql}] You said: hi"  # forgotten: sent again
    assert await ask("tensorrt_llm_bls::chat") == f"[lora {chat}] You said: hi"
    refused = await client.post("/v1/chat/completions", json={"model": "llmapi::sql", "messages": user("x")})
    assert refused.status == 400 and (await refused.json())["error"]["param"] == "model"


async def test_unloading_a_model_leaves_its_helpers_unless_they_are_named(aiohttp_client, settings) -> None:  # type: ignore[no-untyped-def]
    """The ensemble's composing models (preprocessing, tensorrt_llm, postprocessing) stay
    loaded when the ensemble is unloaded; one goes only when asked for by its own name."""
    with explicit_triton("ensemble") as server:
        client = await aiohttp_client(create_app(replace(settings, triton_url=server.grpc_url, **MODEL_CONTROL)))
        stub = pb_grpc.GRPCInferenceServiceStub(grpc.aio.insecure_channel(server.grpc_url))

        async def ready() -> set[str]:
            index = await stub.RepositoryIndex(pb.RepositoryIndexRequest(ready=True))
            return {model.name for model in index.models}

        helpers = {"preprocessing", "tensorrt_llm", "postprocessing"}
        assert await ready() >= {"ensemble", *helpers}
        # Through an adapter-style or unknown name nothing is unloaded.
        for name in ("ensemble::sql", "no_such_model"):
            response = await client.post(f"/v1/models/{name}/unload", headers=ADMIN)
            assert response.status == 404 and (await response.json())["error"]["code"] == "model_not_found"
        assert (await client.post("/v1/models/ensemble/unload", headers=ADMIN)).status == 200
        assert await ready() >= helpers and "ensemble" not in await ready()
        assert (await client.post("/v1/models/preprocessing/unload", headers=INFERENCE_KEY)).status == 401
        assert (await client.post("/v1/models/preprocessing/unload", headers=ADMIN)).status == 200
        assert "preprocessing" not in await ready() and {"tensorrt_llm", "postprocessing"} <= await ready()
