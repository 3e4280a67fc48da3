"""Compressed request bodies on the gateway's own routes: a 415 before the body is read, with
the error envelope and the codings it does take, and the gateway serving on afterwards (the
/v2 pass-through hands them to Triton instead: test_kserve)."""

from __future__ import annotations

import asyncio
import gzip
import json
import zlib
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import pytest

from tests.conftest import user

CHAT = {"model": "vllm_model", "max_tokens": 4, "messages": user("hi")}
BODIES: dict[str, dict[str, Any]] = {
    "/v1/chat/completions": CHAT,
    "/v1/completions": {"model": "vllm_model", "max_tokens": 4, "prompt": "hi"},
    "/tokenize": {"model": "vllm_model", "prompt": "hi"},
}


def encoded(body: bytes, coding: str) -> bytes:
    if coding.startswith("gzip"):
        return gzip.compress(body)
    if coding == "deflate":
        return zlib.compress(body)
    return body  # the gateway must refuse these unread, whatever the bytes


@pytest.mark.parametrize("path", list(BODIES))
@pytest.mark.parametrize("coding", ["gzip", "deflate", "br", "zstd", "gzip, identity", "x-" + "z" * 100])
async def test_compressed_bodies_are_415s_naming_the_header(gateway_process: str, path: str, coding: str) -> None:
    body = encoded(json.dumps(BODIES[path]).encode(), coding)
    headers = {"Content-Type": "application/json", "Content-Encoding": coding}
    async with aiohttp.ClientSession() as session:
        async with session.post(f"{gateway_process}{path}", data=body, headers=headers) as response:
            assert response.status == 415, await response.text()
            assert response.headers["Accept-Encoding"] == "identity"
            assert response.headers["Connection"] == "close"
            error = (await response.json())["error"]
        assert set(error) == {"message", "type", "param", "code"}
        assert (error["type"], error["param"], error["code"]) == (
            "invalid_request_error",
            None,
            "unsupported_content_encoding",
        )
        assert "Content-Encoding" in error["message"] and len(error["message"]) < 200
        async with session.post(f"{gateway_process}{path}", json=BODIES[path]) as response:
            assert response.status == 200, await response.text()


@pytest.mark.parametrize("coding", ["identity", "Identity", ""])
async def test_identity_is_no_compression(gateway_process: str, coding: str) -> None:
    headers = {"Content-Type": "application/json", "Content-Encoding": coding}
    async with (
        aiohttp.ClientSession() as session,
        session.post(
            f"{gateway_process}/v1/chat/completions", data=json.dumps(CHAT).encode(), headers=headers
        ) as response,
    ):
        assert response.status == 200, await response.text()
        assert (await response.json())["choices"][0]["message"]["content"]


async def test_a_compression_bomb_is_refused_before_its_body_arrives(gateway_process: str) -> None:
    """A gzip body that would inflate to 1 GiB: the answer comes while most of it is still
    unsent, and the connection ends there (nothing is read or inflated)."""
    bomb = gzip.compress(b"\0" * 2**30, compresslevel=9)
    address = urlsplit(gateway_process)
    reader, writer = await asyncio.open_connection(address.hostname, address.port)
    head = (
        "POST /v1/chat/completions HTTP/1.1\r\nHost: gateway\r\nContent-Type: application/json\r\n"
        f"Content-Encoding: gzip\r\nContent-Length: {len(bomb)}\r\n\r\n"
    )
    writer.write(head.encode() + bomb[:65536])
    await writer.drain()
    answer = await asyncio.wait_for(reader.read(), timeout=30)  # EOF: the gateway closed it
    writer.close()
    assert len(bomb) > 4 * 65536
    assert answer.startswith(b"HTTP/1.1 415 "), answer[:200]
    assert b'"code":"unsupported_content_encoding"' in answer
    async with (
        aiohttp.ClientSession() as session,
        session.post(f"{gateway_process}/v1/chat/completions", json=CHAT) as response,
    ):
        assert response.status == 200
