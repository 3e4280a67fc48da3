"""The gateway starts without Triton, reports it, and recovers when Triton comes and goes."""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import Iterator

import pytest

from gateway.app import create_app
from gateway.demo import stand_in_triton
from gateway.localtriton import LocalTriton, free_port
from tests.conftest import MODEL_REPOSITORY, TOKENIZER_DIR, sse_events, user


@pytest.fixture
def offline_triton() -> Iterator[LocalTriton]:
    """A tritonserver whose ports are fixed but which is not started yet."""
    server = stand_in_triton(
        MODEL_REPOSITORY,
        grpc_port=free_port(),
        http_port=free_port(),
        metrics_port=free_port(),
    )
    yield server
    server.cleanup()


async def _eventually(check, timeout: float = 30.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if await check():
            return
        await asyncio.sleep(0.2)
    raise AssertionError("condition not reached in time")


async def test_gateway_survives_triton_absence_and_restarts(aiohttp_client, offline_triton) -> None:  # type: ignore[no-untyped-def]
    from gateway.settings import Settings

    settings = Settings(triton_url=offline_triton.grpc_url, tokenizer=(str(TOKENIZER_DIR),), model_refresh_interval=0.3)
    client = await aiohttp_client(create_app(settings))
    chat = {"model": "vllm_model", "messages": user("Hello there"), "temperature": 0}

    # Triton is not there: alive, not ready, requests get 503 envelopes.
    assert (await client.get("/health/live")).status == 200
    assert (await client.get("/health/ready")).status == 503
    response = await client.post("/v1/chat/completions", json=chat)
    assert response.status == 503
    assert (await response.json())["error"]["code"] == "backend_unavailable"
    assert (await client.get("/v1/models")).status == 503
    # A stream that cannot start is an ordinary error response, not an event stream.
    response = await client.post("/v1/chat/completions", json={**chat, "stream": True})
    assert response.status == 503
    assert response.headers["Content-Type"].startswith("application/json")

    # Triton comes up: ready, and requests work without restarting the gateway.
    await asyncio.to_thread(offline_triton.start)

    async def serving() -> bool:
        response = await client.post("/v1/chat/completions", json=chat)
        return response.status == 200

    await _eventually(serving)
    assert (await client.get("/health/ready")).status == 200

    # Triton dies mid-stream: the stream ends with an error event and [DONE].
    slow = {"model": "vllm_slow", "messages": user("keep talking " * 20), "stream": True, "max_tokens": 200}
    response = await client.post("/v1/chat/completions", json=slow)
    assert response.status == 200
    await response.content.readline()
    assert offline_triton.process is not None
    offline_triton.process.send_signal(signal.SIGKILL)
    events = await sse_events(response)
    assert events[-1] == "[DONE]"
    assert "error" in events[-2]
    assert events[-2]["error"]["type"] == "server_error"
    offline_triton.stop()

    response = await client.post("/v1/chat/completions", json=chat)
    assert response.status == 503
    assert (await client.get("/health/ready")).status == 503

    # Triton is back on the same address: the gateway serves again by itself.
    await asyncio.to_thread(offline_triton.start)
    await _eventually(serving)
    assert (await client.get("/health/ready")).status == 200


async def test_a_frozen_triton_gives_errors_not_hangs(aiohttp_client, offline_triton) -> None:  # type: ignore[no-untyped-def]
    """SIGSTOP: the server's sockets stay open but nothing answers. Keepalive pings notice it
    within seconds, the request deadline bounds the rest; thawed, it serves again."""
    from gateway.settings import Settings

    settings = Settings(
        triton_url=offline_triton.grpc_url,
        tokenizer=(str(TOKENIZER_DIR),),
        model_refresh_interval=0.3,
        request_timeout=4,
        grpc_keepalive_time=1,
    )
    client = await aiohttp_client(create_app(settings))
    await asyncio.to_thread(offline_triton.start)
    chat = {"model": "vllm_model", "messages": user("Hello there"), "temperature": 0}

    async def serving() -> bool:
        return (await client.post("/v1/chat/completions", json=chat)).status == 200

    await _eventually(serving)
    slow = {"model": "vllm_slow", "messages": user("keep talking " * 20), "stream": True, "max_tokens": 400}
    response = await client.post("/v1/chat/completions", json=slow)
    await response.content.readline()
    assert offline_triton.process is not None
    offline_triton.process.send_signal(signal.SIGSTOP)
    try:
        events = await asyncio.wait_for(sse_events(response), timeout=20)
        assert events[-1] == "[DONE]" and events[-2]["error"]["code"] in ("backend_unavailable", "timeout")
        answer = await asyncio.wait_for(client.post("/v1/chat/completions", json=chat), timeout=20)
        assert answer.status in (503, 504)
        assert set((await answer.json())["error"]) == {"message", "type", "param", "code"}
        ready = await asyncio.wait_for(client.get("/health/ready"), timeout=20)
        assert ready.status == 503
    finally:
        offline_triton.process.send_signal(signal.SIGCONT)
    await _eventually(serving)
    assert (await client.get("/health/ready")).status == 200


async def test_requests_racing_a_killed_triton_get_envelopes(aiohttp_client, offline_triton) -> None:  # type: ignore[no-untyped-def]
    """Requests sent while Triton is killed: every one gets a 503/502/504 envelope (or an
    error event), never a 500 or a traceback, and none is left hanging."""
    from gateway.settings import Settings

    settings = Settings(triton_url=offline_triton.grpc_url, tokenizer=(str(TOKENIZER_DIR),), request_timeout=10)
    client = await aiohttp_client(create_app(settings))
    await asyncio.to_thread(offline_triton.start)
    chat = {"model": "vllm_slow", "messages": user("Hello there"), "max_tokens": 20}

    async def one(stream: bool) -> str:
        response = await client.post("/v1/chat/completions", json={**chat, "stream": stream})
        if response.headers["Content-Type"].startswith("text/event-stream"):
            events = await sse_events(response)
            return "ok" if "error" not in events[-2] else f"event-{events[-2]['error']['code']}"
        body = await response.json()
        return "ok" if response.status == 200 else f"{response.status}-{body['error']['code']}"

    async def serving() -> bool:
        return await one(False) == "ok"

    outcomes: list[str] = []
    for round_ in range(3):
        await _eventually(serving)
        tasks = [asyncio.create_task(one(index % 2 == 0)) for index in range(12)]
        await asyncio.sleep(0.05 * round_)
        assert offline_triton.process is not None
        offline_triton.process.send_signal(signal.SIGKILL)
        outcomes += await asyncio.wait_for(asyncio.gather(*tasks), timeout=30)
        offline_triton.stop()
        await asyncio.to_thread(offline_triton.start)
    assert not [outcome for outcome in outcomes if outcome.startswith("500") or "internal_error" in outcome], outcomes
