"""Health endpoints and Triton cancellation."""

from __future__ import annotations

import asyncio
import re
import time
import uuid

import aiohttp


async def test_live_and_ready(client) -> None:
    assert (await client.get("/health/live")).status == 200
    response = await client.get("/health/ready")
    assert response.status == 200
    assert (await response.json())["status"] == "ready"


async def _wait_for_log(triton, pattern: str, timeout: float = 15.0) -> bool:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if re.search(pattern, triton.read_log()):
            return True
        await asyncio.sleep(0.1)
    return False


LONG = [{"role": "user", "content": "please keep talking " * 20}]


async def test_disconnected_streaming_client_cancels_its_triton_request(gateway_process, triton) -> None:
    body = {"model": "vllm_slow", "messages": LONG, "stream": True, "max_tokens": 200}
    request_id = f"cancel-{uuid.uuid4().hex}"  # the client's X-Request-Id is Triton's request id
    async with aiohttp.ClientSession() as session:
        response = await session.post(
            f"{gateway_process}/v1/chat/completions", json=body, headers={"X-Request-Id": request_id}
        )
        assert response.headers["X-Request-Id"] == request_id
        await response.content.readline()
        response.close()  # the client goes away mid-stream
    assert await _wait_for_log(triton, rf"Cancelling the request {request_id}\b")


async def test_disconnected_non_streaming_client_cancels_its_triton_request(gateway_process, triton) -> None:
    before = triton.read_log().count("Cancelling the request")
    body = {"model": "vllm_slow", "messages": LONG, "max_tokens": 200}
    async with aiohttp.ClientSession() as session:
        try:
            await session.post(
                f"{gateway_process}/v1/chat/completions", json=body, timeout=aiohttp.ClientTimeout(total=1)
            )
        except TimeoutError:
            pass
    deadline = time.monotonic() + 15
    while triton.read_log().count("Cancelling the request") <= before and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
    assert triton.read_log().count("Cancelling the request") > before
