"""A gateway whose log nobody reads keeps serving: its stderr is a pipe left full."""

from __future__ import annotations

import asyncio
import os
import subprocess
import threading
from collections.abc import Iterator

import aiohttp
import pytest

from gateway.localtriton import LocalTriton, free_port
from tests.conftest import gateway_command, stop_process, user, wait_for_http


@pytest.fixture
def unread_gateway(triton: LocalTriton) -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    """A gateway whose stderr is a pipe nobody reads (until the end, so that it can exit)."""
    port = free_port()
    process = subprocess.Popen(
        gateway_command(triton.grpc_url, port), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    assert process.stderr is not None
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for_http(f"{url}/health/live", process)
        yield process, url
    finally:
        # Read the rest, so the gateway can write out its queued lines and exit.
        os.set_blocking(process.stderr.fileno(), True)
        reader = threading.Thread(target=process.stderr.read, daemon=True)
        reader.start()
        stop_process(process)
        reader.join(10)


async def test_a_full_log_pipe_does_not_hold_up_requests(unread_gateway: tuple[subprocess.Popen[bytes], str]) -> None:
    process, url = unread_gateway
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60)) as session:

        async def probe() -> None:
            async with session.get(f"{url}/health/live") as response:
                assert response.status == 200

        # An access line each, about 100 bytes: three times what the pipe holds (64 KiB).
        for _ in range(20):
            await asyncio.gather(*(probe() for _ in range(100)))
        body = {"model": "vllm_model", "messages": user("Hello there"), "max_tokens": 8, "stream": True}
        async with session.post(f"{url}/v1/chat/completions", json=body) as response:
            assert response.status == 200 and (await response.text()).endswith("data: [DONE]\n\n")
    assert process.stderr is not None
    os.set_blocking(process.stderr.fileno(), False)
    assert len(process.stderr.read(1 << 20) or b"") >= 60_000  # the pipe was full all along
