"""What the /v2 pass-through sends upstream, seen by a recording HTTP server in Triton's place:
the path exactly as received, never outside /v2 or the --triton-http-url prefix, and no
credentials, cookies or forwarding headers in either direction."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import replace

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from gateway.app import create_app
from gateway.localtriton import free_port


class Recorder:
    """An HTTP server standing in for Triton's HTTP endpoint, keeping what it was sent."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, str, dict[str, str]]] = []  # (method, raw target, headers)

    async def handle(self, request: web.Request) -> web.Response:
        self.requests.append((request.method, request.raw_path, dict(request.headers)))
        response = web.json_response({"ok": True}, headers={"X-Hop": "secret", "Connection": "X-Hop"})
        response.set_cookie("session", "upstream-cookie")
        return response


@pytest.fixture
async def recorder() -> AsyncIterator[tuple[Recorder, str]]:
    recorder = Recorder()
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", recorder.handle)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    try:
        yield recorder, f"http://127.0.0.1:{server.port}/triton-prefix"
    finally:
        await server.close()


@pytest.fixture
async def gateway(recorder, settings) -> AsyncIterator[tuple[str, int]]:  # type: ignore[no-untyped-def]
    _, upstream = recorder
    changed = replace(
        settings,
        enable_kserve_frontends=True,
        triton_http_url=upstream,
        kserve_grpc_port=free_port(),
        api_keys=("sekret",),
        restricted_apis=((("inference",), "X-Team", "blue"),),
    )
    server = TestServer(create_app(changed), host="127.0.0.1")
    await server.start_server()
    try:
        yield "127.0.0.1", server.port
    finally:
        await server.close()


async def raw_request(
    address: tuple[str, int], target: str, headers: dict[str, str] | None = None
) -> tuple[int, bytes]:
    """Send `target` byte for byte (no client library re-encodes it); (status, whole answer)."""
    reader, writer = await asyncio.open_connection(*address)
    lines = [f"POST {target} HTTP/1.1", "Host: gateway", "Content-Length: 2", "Connection: close"]
    lines += [f"{name}: {value}" for name, value in (headers or {}).items()]
    writer.write(("\r\n".join(lines) + "\r\n\r\n{}").encode())
    await writer.drain()
    answer = await asyncio.wait_for(reader.read(), timeout=20)
    writer.close()
    return int(answer.split(b" ", 2)[1]), answer


KEY = {"Authorization": "Bearer sekret", "X-Team": "blue"}


async def test_paths_are_forwarded_exactly_as_received(recorder, gateway) -> None:  # type: ignore[no-untyped-def]
    log, _ = recorder
    for target in (
        "/v2/models/my%20model/infer",
        "/v2/models/caf%C3%A9/versions/2/generate?note=%2F..%2F",
        "/v2/models/llama-3.1_8b/generate_stream",
    ):
        status, _ = await raw_request(gateway, target, KEY)
        assert status == 200
        assert log.requests[-1][:2] == ("POST", "/triton-prefix" + target)


@pytest.mark.parametrize(
    "target",
    [
        "/v2/models/../repository/index",
        "/v2/models/%2e%2e/repository/index",
        "/v2/models/%2E%2E/infer",
        "/v2/models/x/../../repository/models/m/load",
        "/v2/models/a%2fb/infer",
        "/v2/models/a%2Fb/infer",
        "/v2/models/..%2f..%2frepository/infer",
        "/v2/models/a%3fb/infer",
        "/v2/models/a%23b/infer",
        "/v2/models/a%5cb/infer",
        "/v2/models/a%00b/infer",
        "/v2/models/./infer",
        "/v2/../v1/chat/completions",
        "/v2/%2e%2e/triton-prefix/v2/repository/index",
    ],
)
async def test_dot_segments_and_encoded_separators_never_leave_v2(recorder, gateway, target: str) -> None:  # type: ignore[no-untyped-def]
    log, _ = recorder
    status, answer = await raw_request(gateway, target, KEY)
    assert 400 <= status < 500, answer
    assert log.requests == []  # nothing reached the upstream at all


async def test_credentials_cookies_and_forwarding_headers_stay_here(recorder, gateway) -> None:  # type: ignore[no-untyped-def]
    log, _ = recorder
    sent = {
        **KEY,
        "Cookie": "session=client",
        "X-Forwarded-For": "10.0.0.1",
        "X-Forwarded-Host": "internal",
        "Forwarded": "for=10.0.0.1",
        "X-Real-IP": "10.0.0.1",
        "Proxy-Authorization": "Basic eA==",
        "Connection": "close, X-Drop-Me",
        "X-Drop-Me": "1",
        "TE": "trailers",
        "X-Keep-Me": "yes",
    }
    status, answer = await raw_request(gateway, "/v2/models/m/infer", sent)
    assert status == 200
    upstream = {name.lower(): value for name, value in log.requests[-1][2].items()}
    for name in (
        "authorization",
        "x-team",
        "cookie",
        "x-forwarded-for",
        "x-forwarded-host",
        "forwarded",
        "x-real-ip",
        "proxy-authorization",
        "x-drop-me",
        "te",
    ):
        assert name not in upstream, name
    assert upstream["x-keep-me"] == "yes"
    head = answer.split(b"\r\n\r\n", 1)[0].lower()
    assert b"set-cookie" not in head and b"x-hop" not in head  # nor back from Triton


async def test_v2_keeps_the_keys_and_restrictions(recorder, gateway) -> None:  # type: ignore[no-untyped-def]
    log, _ = recorder
    assert (await raw_request(gateway, "/v2/models/m/infer"))[0] == 401
    assert (await raw_request(gateway, "/v2/models/m/infer", {"Authorization": "Bearer sekret"}))[0] == 401
    assert (await raw_request(gateway, "/v2/repository/index", KEY))[0] == 403
    assert log.requests == []
