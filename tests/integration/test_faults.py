"""Faults under load: a model that raises mid-generation, deadlines, disconnects, a model
unloaded under load. Nothing hangs, every client gets an answer, nothing leaks."""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import aiohttp
import pytest

from gateway.app import create_app
from gateway.localtriton import LocalTriton
from tests.conftest import explicit_triton, spawn_gateway, sse_events, stop_process, user

SLOW = {"model": "vllm_slow", "messages": user("keep going " * 30), "max_tokens": 200}


async def test_a_model_that_raises_mid_generation(client) -> None:
    body = {"model": "vllm_model", "messages": user("/fail please"), "temperature": 0, "max_tokens": 40}
    response = await client.post("/v1/chat/completions", json=body)
    assert response.status == 500
    error = (await response.json())["error"]
    assert error["code"] == "backend_error" and "stand-in failure" in error["message"]
    events = await sse_events(await client.post("/v1/chat/completions", json={**body, "stream": True}))
    assert events[-1] == "[DONE]" and events[-2]["error"]["code"] == "backend_error"
    assert any(event.get("choices") for event in events[:-2])  # it failed midway, after some text
    assert (await client.post("/v1/chat/completions", json={**body, "messages": user("fine")})).status == 200


@pytest.fixture
def gateway_pid_and_url(triton: LocalTriton, tmp_path: Path) -> Iterator[tuple[int, str]]:
    process, url = spawn_gateway(triton.grpc_url, tmp_path, "--request-timeout=1.5")
    try:
        yield process.pid, url
    finally:
        stop_process(process)


def resources(pid: int) -> tuple[int, int]:
    threads = next(
        int(line.split()[1])
        for line in Path(f"/proc/{pid}/status").read_text().splitlines()
        if line.startswith("Threads:")
    )
    return len(os.listdir(f"/proc/{pid}/fd")), threads


async def fault_mix(url: str) -> list[str]:
    """Normal streams, clients that leave, deadlines, failures and bad requests, all at once."""
    async with aiohttp.ClientSession() as session:

        async def stream(body: dict, leave: bool = False) -> str:
            async with session.post(f"{url}/v1/chat/completions", json={**body, "stream": True}) as response:
                if leave:
                    await response.content.readline()
                    return "left"
                payload = await response.read()
                return "error-event" if b'"error"' in payload else f"http-{response.status}"

        async def plain(body: dict) -> str:
            async with session.post(f"{url}/v1/chat/completions", json=body) as response:
                await response.read()
                return f"http-{response.status}"

        jobs = [stream({"model": "vllm_model", "messages": user("hello"), "max_tokens": 20}) for _ in range(10)]
        jobs += [stream(SLOW, leave=True) for _ in range(5)]
        jobs += [plain(SLOW) for _ in range(3)]  # deadline
        jobs += [stream({"model": "vllm_model", "messages": user("/fail now"), "max_tokens": 20}) for _ in range(3)]
        jobs += [plain({"model": "vllm_model", "messages": user("word " * 400)}) for _ in range(3)]
        return await asyncio.wait_for(asyncio.gather(*jobs), timeout=60)


def test_nothing_leaks_after_faults(gateway_pid_and_url: tuple[int, str]) -> None:
    pid, url = gateway_pid_and_url
    first = asyncio.run(fault_mix(url))
    assert first.count("http-200") == 10 and first.count("left") == 5
    assert first.count("http-504") == 3 and first.count("error-event") == 3 and first.count("http-400") == 3
    asyncio.run(asyncio.sleep(2))
    baseline = resources(pid)
    for _ in range(2):
        asyncio.run(fault_mix(url))
        asyncio.run(asyncio.sleep(2))  # let cancellations and closed sockets settle
        assert resources(pid) == baseline  # file descriptors and threads back where they were

    async def in_flight() -> str:
        async with aiohttp.ClientSession() as session, session.get(f"{url}/metrics") as response:
            return await response.text()

    assert "gateway_requests_in_flight 1.0" in asyncio.run(in_flight())  # just this /metrics request


@pytest.fixture(scope="module")
def explicit_slow_triton() -> Iterator[LocalTriton]:
    with explicit_triton("vllm_slow") as server:
        yield server


async def test_unloading_a_model_under_load(aiohttp_client, settings, explicit_slow_triton) -> None:  # type: ignore[no-untyped-def]
    admin = replace(settings, enable_model_control=True, admin_api_keys=("admin-secret",))
    client = await aiohttp_client(create_app(replace(admin, triton_url=explicit_slow_triton.grpc_url)))

    async def one() -> int:
        response = await client.post("/v1/chat/completions", json={**SLOW, "max_tokens": 30, "stream": True})
        await response.read()
        return response.status

    streams = [asyncio.create_task(one()) for _ in range(5)]
    await asyncio.sleep(0.3)
    unloaded = await client.post("/v1/models/vllm_slow/unload", headers={"Authorization": "Bearer admin-secret"})
    assert unloaded.status == 200
    statuses = await asyncio.wait_for(asyncio.gather(*streams), timeout=30)  # every client gets an answer
    assert all(status == 200 for status in statuses)  # Triton lets in-flight requests finish
    after = await client.post("/v1/chat/completions", json=SLOW)
    assert after.status == 404


def test_a_stream_past_the_deadline_ends_with_a_timeout_event(gateway_pid_and_url: tuple[int, str], triton) -> None:  # type: ignore[no-untyped-def]
    _, url = gateway_pid_and_url

    async def slow_stream() -> bytes:
        async with aiohttp.ClientSession() as session:
            headers = {"X-Request-Id": "deadline-stream"}
            async with session.post(f"{url}/v1/chat/completions", json={**SLOW, "stream": True}, headers=headers) as r:
                assert r.status == 200  # it started within the deadline
                return await r.read()

    body = asyncio.run(asyncio.wait_for(slow_stream(), timeout=30))
    assert body.endswith(b"data: [DONE]\n\n")
    last = json.loads(body.rsplit(b"data: ", 2)[-2])
    assert last["error"]["code"] == "timeout"
    assert b'"content":"' in body  # text came before the deadline
    asyncio.run(asyncio.sleep(1))
    assert "Cancelling the request deadline-stream" in triton.read_log()  # and Triton stopped it
