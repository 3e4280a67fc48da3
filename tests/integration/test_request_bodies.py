"""Bodies refused from their headers alone, before any of them is read: a declared length past
--http-max-input-size (413) and, on the gateway's own routes, a compressed body (415, with the
codings it does take; the /v2 pass-through hands those to Triton instead: test_kserve). Each
answer is the error envelope, `Expect: 100-continue` gets it instead of a "continue", and the
gateway serves on afterwards."""

from __future__ import annotations

import asyncio
import gzip
import json
import zlib
from collections.abc import AsyncIterator, Iterator
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import pytest

from tests.conftest import spawn_gateway, stop_process, user

LIMIT = 4096  # --http-max-input-size of the `small_limit` gateway

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


async def raw_exchange(base_url: str, head: str, body: bytes) -> bytes:
    """Send the request `head` (its lines, no blank line) and `body` byte for byte; the whole
    answer, up to the gateway closing the connection."""
    address = urlsplit(base_url)
    reader, writer = await asyncio.open_connection(address.hostname, address.port)
    writer.write(head.encode() + b"\r\n\r\n" + body)
    await writer.drain()
    answer = await asyncio.wait_for(reader.read(), timeout=30)  # EOF: the gateway closed it
    writer.close()
    return answer


def chat_head(length: int, *extra: str) -> str:
    lines = ["POST /v1/chat/completions HTTP/1.1", "Host: gateway", "Content-Type: application/json"]
    return "\r\n".join([*lines, f"Content-Length: {length}", *extra])


async def test_a_compression_bomb_is_refused_before_its_body_arrives(gateway_process: str) -> None:
    """A gzip body that would inflate to 1 GiB: the answer comes while most of it is still
    unsent, and the connection ends there (nothing is read or inflated)."""
    bomb = gzip.compress(b"\0" * 2**30, compresslevel=9)
    answer = await raw_exchange(gateway_process, chat_head(len(bomb), "Content-Encoding: gzip"), bomb[:65536])
    assert len(bomb) > 4 * 65536
    assert answer.startswith(b"HTTP/1.1 415 "), answer[:200]
    assert b'"code":"unsupported_content_encoding"' in answer
    async with (
        aiohttp.ClientSession() as session,
        session.post(f"{gateway_process}/v1/chat/completions", json=CHAT) as response,
    ):
        assert response.status == 200


@pytest.fixture(scope="module")
def small_limit(triton, tmp_path_factory) -> Iterator[str]:  # type: ignore[no-untyped-def]
    process, url = spawn_gateway(triton.grpc_url, tmp_path_factory.mktemp("limit"), f"--http-max-input-size={LIMIT}")
    try:
        yield url
    finally:
        stop_process(process)


def padded_chat(size: int) -> bytes:
    """The chat request as exactly `size` bytes (trailing whitespace is still JSON)."""
    body = json.dumps(CHAT).encode()
    return body + b" " * (size - len(body))


async def error_in(answer: bytes, status: int, code: str) -> dict[str, Any]:
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(f"HTTP/1.1 {status} ".encode()), answer[:300]
    if b"transfer-encoding: chunked" in head.lower():
        body = body.split(b"\r\n", 1)[1].rsplit(b"\r\n0\r\n", 1)[0]
    error: dict[str, Any] = json.loads(body)["error"]
    assert set(error) == {"message", "type", "param", "code"} and error["code"] == code
    return error


async def test_a_declared_length_past_the_limit_is_a_413_before_the_body(small_limit: str) -> None:
    # Far less than the limit is sent: only the declared length can be refusing it.
    answer = await raw_exchange(small_limit, chat_head(10_000_000_000), b" " * 100)
    error = await error_in(answer, 413, "request_too_large")
    assert str(LIMIT) in error["message"]


async def test_the_limit_is_exact(small_limit: str) -> None:
    async with aiohttp.ClientSession(headers={"Content-Type": "application/json"}) as session:
        async with session.post(f"{small_limit}/v1/chat/completions", data=padded_chat(LIMIT)) as response:
            assert response.status == 200, await response.text()
        async with session.post(f"{small_limit}/v1/chat/completions", data=padded_chat(LIMIT + 1)) as response:
            assert response.status == 413
            assert (await response.json())["error"]["code"] == "request_too_large"


async def test_a_chunked_body_past_the_limit_is_a_413(small_limit: str) -> None:
    """No declared length: the limit applies while the body is read."""

    async def pieces() -> AsyncIterator[bytes]:
        body = padded_chat(3 * LIMIT)
        for start in range(0, len(body), 1024):
            yield body[start : start + 1024]

    async with (
        aiohttp.ClientSession() as session,
        session.post(f"{small_limit}/v1/chat/completions", data=pieces()) as response,
    ):
        assert response.status == 413
        assert (await response.json())["error"]["code"] == "request_too_large"


@pytest.mark.parametrize(
    ("extra", "status", "code"),
    [((), 413, "request_too_large"), (("Content-Encoding: gzip",), 415, "unsupported_content_encoding")],
)
async def test_expect_continue_gets_the_refusal_instead(
    small_limit: str, extra: tuple[str, ...], status: int, code: str
) -> None:
    """A client waiting for "100 Continue" before sending a body that would be refused gets the
    refusal straight away, never a "continue"."""
    length = LIMIT + 1 if status == 413 else 100
    answer = await raw_exchange(small_limit, chat_head(length, "Expect: 100-continue", *extra), b"")
    assert b"100 Continue" not in answer
    await error_in(answer, status, code)


async def test_expect_continue_for_a_body_that_is_taken(small_limit: str) -> None:
    body = json.dumps(CHAT).encode()
    address = urlsplit(small_limit)
    reader, writer = await asyncio.open_connection(address.hostname, address.port)
    writer.write((chat_head(len(body), "Expect: 100-continue", "Connection: close") + "\r\n\r\n").encode())
    await writer.drain()
    interim = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout=30)
    assert interim == b"HTTP/1.1 100 Continue\r\n\r\n"
    writer.write(body)
    await writer.drain()
    answer = await asyncio.wait_for(reader.read(), timeout=30)
    writer.close()
    assert answer.startswith(b"HTTP/1.1 200 "), answer[:300]
