"""Access control, CORS, capacity, deadlines, request ids, metrics and graceful shutdown."""

from __future__ import annotations

import asyncio
import re
import signal
import time
import uuid
from dataclasses import replace
from typing import Any

import aiohttp
import pytest

from gateway.app import create_app
from tests.conftest import spawn_gateway, sse_events, stop_process, user

CHAT = {"model": "vllm_model", "messages": user("Hello there"), "temperature": 0}
SLOW = {"model": "vllm_slow", "messages": user("keep going " * 30), "max_tokens": 200}


async def app_client(aiohttp_client, settings, **changes: Any):  # type: ignore[no-untyped-def]
    return await aiohttp_client(create_app(replace(settings, **changes)))


async def error_code(response) -> str:  # type: ignore[no-untyped-def]
    return (await response.json())["error"]["code"]


async def test_api_keys(aiohttp_client, settings) -> None:  # type: ignore[no-untyped-def]
    client = await app_client(aiohttp_client, settings, api_keys=("first-key", "second-key"))
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "Basic second-key"}):
        response = await client.get("/v1/models", headers=headers)
        assert response.status == 401 and await error_code(response) == "invalid_api_key"
    assert (await client.get("/v1/models", headers={"Authorization": "Bearer second-key"})).status == 200
    ok = await client.post("/v1/chat/completions", json=CHAT, headers={"Authorization": "Bearer first-key"})
    assert ok.status == 200
    assert (await client.get("/health/live")).status == 200  # only /v1 routes need a key


async def test_restricted_api_groups(aiohttp_client, settings) -> None:  # type: ignore[no-untyped-def]
    client = await app_client(
        aiohttp_client, settings, restricted_apis=((("inference", "metrics"), "X-Admin-Key", "letmein"),)
    )
    response = await client.post("/v1/chat/completions", json=CHAT)
    assert response.status == 401 and await error_code(response) == "restricted_api"
    assert (await client.post("/v1/chat/completions", json=CHAT, headers={"X-Admin-Key": "letmein"})).status == 200
    assert (await client.get("/metrics")).status == 401
    assert (await client.get("/v1/models")).status == 200  # model-repository is not restricted here


async def test_cors_only_for_the_origins_the_flags_name(aiohttp_client, settings) -> None:  # type: ignore[no-untyped-def]
    closed = await app_client(aiohttp_client, settings)
    response = await closed.get("/v1/models", headers={"Origin": "https://app.example"})
    assert "Access-Control-Allow-Origin" not in response.headers
    preflight = {"Origin": "https://app.example", "Access-Control-Request-Method": "POST"}
    assert (await closed.options("/v1/chat/completions", headers=preflight)).status == 403

    client = await app_client(aiohttp_client, settings, cors_allowed_origins=("https://app.example",))
    response = await client.options("/v1/chat/completions", headers=preflight)
    assert response.status == 204
    assert response.headers["Access-Control-Allow-Origin"] == "https://app.example"
    assert "POST" in response.headers["Access-Control-Allow-Methods"]
    other = {"Origin": "https://evil.example", "Access-Control-Request-Method": "POST"}
    assert (await client.options("/v1/chat/completions", headers=other)).status == 403
    # The openai SDK in a browser sends its own headers; the default list lets them through.
    sdk_headers = "authorization, content-type, x-stainless-os, x-stainless-retry-count, openai-project, x-evil"
    response = await client.options(
        "/v1/chat/completions", headers={**preflight, "Access-Control-Request-Headers": sdk_headers}
    )
    allowed = {name.strip().lower() for name in response.headers["Access-Control-Allow-Headers"].split(",")}
    assert {"authorization", "content-type", "x-stainless-os", "x-stainless-retry-count", "openai-project"} <= allowed
    assert "x-evil" not in allowed and "*" not in allowed
    streamed = await client.post(
        "/v1/chat/completions", json={**CHAT, "stream": True}, headers={"Origin": "https://app.example"}
    )
    assert streamed.headers["Access-Control-Allow-Origin"] == "https://app.example"
    await streamed.read()


async def test_capacity_limit_answers_429_with_retry_after(aiohttp_client, settings) -> None:  # type: ignore[no-untyped-def]
    client = await app_client(aiohttp_client, settings, max_concurrent_requests=1)
    busy = await client.post("/v1/chat/completions", json={**SLOW, "stream": True})
    await busy.content.readline()  # the first request is in flight
    refused = await client.post("/v1/chat/completions", json=CHAT)
    assert refused.status == 429 and refused.headers["Retry-After"] == "1"
    assert (await refused.json())["error"]["type"] == "rate_limit_error"
    assert (await client.get("/v1/models")).status == 200  # only inference counts
    await busy.read()
    assert (await client.post("/v1/chat/completions", json=CHAT)).status == 200


async def _log_has(triton, text: str, timeout: float = 15) -> bool:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if text in triton.read_log():
            return True
        await asyncio.sleep(0.1)
    return False


async def test_deadline_cancels_the_triton_request(aiohttp_client, settings, triton) -> None:  # type: ignore[no-untyped-def]
    client = await app_client(aiohttp_client, settings, request_timeout=0.5)
    request_id = f"deadline-{uuid.uuid4().hex}"
    response = await client.post("/v1/chat/completions", json=SLOW, headers={"X-Request-Id": request_id})
    assert response.status == 504 and await error_code(response) == "timeout"
    assert await _log_has(triton, f"Cancelling the request {request_id}")
    streamed = f"deadline-stream-{uuid.uuid4().hex}"
    events = await sse_events(
        await client.post("/v1/chat/completions", json={**SLOW, "stream": True}, headers={"X-Request-Id": streamed})
    )
    assert events[-1] == "[DONE]" and events[-2]["error"]["code"] == "timeout"
    assert await _log_has(triton, f"Cancelling the request {streamed}")


async def test_request_ids(client) -> None:
    mine = (await client.get("/v1/models", headers={"X-Request-Id": "abc-123"})).headers["X-Request-Id"]
    assert mine == "abc-123"
    made = (await client.get("/v1/models")).headers["X-Request-Id"]
    assert re.fullmatch(r"[0-9a-f]{32}", made)
    unsafe = (await client.get("/v1/models", headers={"X-Request-Id": "no spaces allowed"})).headers["X-Request-Id"]
    assert unsafe != "no spaces allowed" and re.fullmatch(r"[0-9a-f]{32}", unsafe)
    stream = await client.post("/v1/chat/completions", json={**CHAT, "stream": True}, headers={"X-Request-Id": "s-1"})
    assert stream.headers["X-Request-Id"] == "s-1"
    await stream.read()


async def test_metrics_cover_requests_tokens_and_latency(aiohttp_client, settings, triton) -> None:  # type: ignore[no-untyped-def]
    client = await app_client(aiohttp_client, settings, triton_metrics_url=triton.metrics_url)
    await (await client.post("/v1/chat/completions", json=CHAT)).read()
    await (await client.post("/v1/chat/completions", json={**CHAT, "stream": True})).read()
    await (await client.post("/v1/chat/completions", json={**CHAT, "model": "nope"})).read()
    response = await client.get("/metrics")
    assert response.status == 200 and response.headers["Content-Type"].startswith("text/plain")
    text = await response.text()
    assert 'gateway_requests_total{model="vllm_model",route="/v1/chat/completions",status="200"} 2.0' in text
    assert 'gateway_requests_total{model="",route="/v1/chat/completions",status="404"} 1.0' in text
    assert re.search(r'gateway_time_to_first_token_seconds_count\{model="vllm_model"\} 1\.0', text)
    assert re.search(r'gateway_inter_token_latency_seconds_count\{model="vllm_model"\} [1-9]', text)
    assert re.search(r'gateway_completion_tokens_total\{model="vllm_model"\} [1-9]', text)
    assert "gateway_requests_in_flight" in text
    assert "nv_inference_request_success" in text  # Triton's own metrics, merged in
    assert not re.search(r"^gateway_\w+_created", text, re.MULTILINE)  # no _created twin of each series


def test_sigterm_lets_in_flight_streams_finish(triton, tmp_path) -> None:  # type: ignore[no-untyped-def]
    process, url = spawn_gateway(triton.grpc_url, tmp_path, "--shutdown-timeout=20")
    try:

        async def stream_then_terminate() -> bytes:
            async with aiohttp.ClientSession() as session:
                body = {**SLOW, "max_tokens": 40, "stream": True}
                async with session.post(f"{url}/v1/chat/completions", json=body) as response:
                    await response.content.readline()
                    process.send_signal(signal.SIGTERM)
                    return await response.read()

        rest = asyncio.run(stream_then_terminate())
        assert rest.endswith(b"data: [DONE]\n\n") and b'"error"' not in rest  # the stream was allowed to finish
        assert process.wait(30) == 0
    finally:
        stop_process(process)


@pytest.mark.parametrize("path", ["/v1/chat/completions", "/v1/completions", "/v1/embeddings"])
async def test_inference_routes_are_limited_but_health_is_not(aiohttp_client, settings, path: str) -> None:  # type: ignore[no-untyped-def]
    client = await app_client(aiohttp_client, settings, max_concurrent_requests=1, api_keys=("k",))
    assert (await client.get("/health/ready")).status == 200
    assert (await client.post(path, json={})).status == 401


def test_sigterm_cancels_what_outlives_the_shutdown_timeout(triton, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """Past --shutdown-timeout every open stream gets an error event and [DONE], a request
    not yet answered gets a 503 envelope, each Triton request is cancelled, and the process
    is gone soon after the timeout (not twice it)."""
    process, url = spawn_gateway(triton.grpc_url, tmp_path, "--shutdown-timeout=2")
    request_id = f"shutdown-{uuid.uuid4().hex}"
    started = asyncio.Semaphore(0)
    try:

        async def one_stream(session: aiohttp.ClientSession, index: int) -> bytes:
            body = {**SLOW, "stream": True}  # ~5 s of tokens: longer than the shutdown timeout
            headers = {"X-Request-Id": f"{request_id}-s{index}"}
            async with session.post(f"{url}/v1/chat/completions", json=body, headers=headers) as response:
                await response.content.readline()
                started.release()
                return await response.read()

        async def not_streamed(session: aiohttp.ClientSession) -> tuple[int, dict]:
            async with session.post(f"{url}/v1/chat/completions", json=SLOW) as response:
                return response.status, await response.json()

        async def scenario() -> tuple[list[bytes], tuple[int, dict]]:
            async with aiohttp.ClientSession() as session:
                streams = [asyncio.create_task(one_stream(session, index)) for index in range(3)]
                plain = asyncio.create_task(not_streamed(session))
                for _ in streams:
                    await started.acquire()
                process.send_signal(signal.SIGTERM)
                results = await asyncio.gather(*streams)
                answer = await plain
                await asyncio.to_thread(process.wait, 30)
                return results, answer

        bodies, (status, error) = asyncio.run(scenario())
        for body in bodies:
            assert body.endswith(b"data: [DONE]\n\n"), body[-200:]
            last_event = body.rsplit(b"data: ", 2)[-2]
            assert b'"code":"shutting_down"' in last_event  # cut at the timeout, before the stream's end
        assert status == 503 and error["error"]["code"] == "shutting_down"
        assert process.returncode == 0
        for index in range(3):
            assert asyncio.run(_log_has(triton, f"Cancelling the request {request_id}-s{index}"))
    finally:
        stop_process(process)
