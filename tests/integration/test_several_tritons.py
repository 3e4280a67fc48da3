"""One gateway in front of two real tritonservers named by one gRPC target: gRPC spreads the
requests, a model only one Triton has goes only there, and a Triton that dies takes no
request with it that had not started on it."""

from __future__ import annotations

import asyncio
import json
import re
import signal
import time
import urllib.request
from collections.abc import Iterator

import pytest

from gateway.app import create_app
from gateway.demo import stand_in_triton
from gateway.localtriton import LocalTriton
from gateway.settings import Settings
from tests.conftest import MODEL_REPOSITORY, TOKENIZER_DIR, user

SHARED = ("vllm_model", "vllm_slow")
ONLY_ON_B = "vllm_legacy"


@pytest.fixture(scope="module")
def two_tritons() -> Iterator[tuple[LocalTriton, LocalTriton]]:
    first = stand_in_triton(MODEL_REPOSITORY, model_control_mode="explicit", load_models=SHARED)
    second = stand_in_triton(MODEL_REPOSITORY, model_control_mode="explicit", load_models=(*SHARED, ONLY_ON_B))
    with first.running(), second.running():
        yield first, second


def successes(triton: LocalTriton, model: str) -> int:
    """Triton's own count of requests `model` completed on that server."""
    with urllib.request.urlopen(triton.metrics_url, timeout=5) as response:
        text = response.read().decode()
    pattern = rf'^nv_inference_request_success\{{model="{model}",version="1"\}} (\S+)$'
    match = re.search(pattern, text, re.MULTILINE)
    return int(float(match.group(1))) if match else 0


def settings_for(*tritons: LocalTriton) -> Settings:
    target = "ipv4:" + ",".join(triton.grpc_url for triton in tritons)
    return Settings(triton_url=target, tokenizer=(str(TOKENIZER_DIR),), model_refresh_interval=0.5)


async def test_requests_spread_over_both_and_follow_the_model(aiohttp_client, two_tritons) -> None:  # type: ignore[no-untyped-def]
    first, second = two_tritons
    client = await aiohttp_client(create_app(settings_for(first, second)))

    listed = {model["id"] for model in (await (await client.get("/v1/models")).json())["data"]}
    assert {*SHARED, ONLY_ON_B} <= listed

    before = successes(first, "vllm_model"), successes(second, "vllm_model")
    chat = {"model": "vllm_model", "messages": user("spread me"), "max_tokens": 4}
    for _ in range(20):
        response = await client.post("/v1/chat/completions", json=chat)
        assert response.status == 200, await response.text()
    served = successes(first, "vllm_model") - before[0], successes(second, "vllm_model") - before[1]
    assert sum(served) == 20
    assert min(served) >= 5, f"round_robin should spread the load, got {served}"

    # Only the second Triton has this model: every request must land there.
    before_only = successes(second, ONLY_ON_B)
    for stream in (False, True) * 5:
        response = await client.post("/v1/chat/completions", json={**chat, "model": ONLY_ON_B, "stream": stream})
        assert response.status == 200, await response.text()
        await response.read()
    assert successes(second, ONLY_ON_B) - before_only == 10


async def test_killing_one_triton_loses_only_requests_it_had_started(aiohttp_client, two_tritons) -> None:  # type: ignore[no-untyped-def]
    first, second = two_tritons
    client = await aiohttp_client(create_app(settings_for(first, second)))
    chat = {"model": "vllm_slow", "messages": user("tell me more"), "max_tokens": 8, "stream": True}
    outcomes: list[tuple[float, bool, int]] = []  # (started at, completed, content chunks before the end)
    stop_at = time.monotonic() + 6.0

    async def one_request() -> None:
        started = time.monotonic()
        response = await client.post("/v1/chat/completions", json=chat)
        if response.status != 200:
            outcomes.append((started, False, 0))
            return
        chunks, completed = 0, False
        async for line in response.content:
            payload = line.decode().strip().removeprefix("data: ")
            if not payload or payload == "[DONE]":
                continue
            event = json.loads(payload)
            if "error" in event:
                break
            chunks += 1 if event["choices"] and event["choices"][0]["delta"].get("content") else 0
            completed = completed or event["choices"][0].get("finish_reason") is not None
        outcomes.append((started, completed, chunks))

    async def keep_asking() -> None:
        while time.monotonic() < stop_at:
            await one_request()

    async def kill_first() -> float:
        await asyncio.sleep(2.0)
        assert first.process is not None
        first.process.send_signal(signal.SIGKILL)
        return time.monotonic()

    *_, killed_at = await asyncio.gather(*(keep_asking() for _ in range(6)), kill_first())
    first.stop()

    failed = [outcome for outcome in outcomes if not outcome[1]]
    after_kill = [outcome for outcome in outcomes if outcome[0] > killed_at + 0.5]
    assert len(outcomes) > 20 and after_kill
    # A request that failed had already streamed text, so it had started on the Triton that died.
    assert all(chunks > 0 for _, _, chunks in failed), failed
    assert all(completed for _, completed, _ in after_kill), after_kill
