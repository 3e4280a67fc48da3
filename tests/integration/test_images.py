"""Image content parts: data: URLs to vLLM models' image input; remote URLs only when allowed."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import struct
import zlib
from collections.abc import AsyncIterator
from dataclasses import replace
from typing import Any, Self

import pytest
from aiohttp import web

from gateway.app import create_app
from gateway.errors import InvalidRequest
from gateway.localtriton import free_port
from gateway.media.images import MAX_REDIRECTS, ImageLoader


def png(width: int = 1, height: int = 1) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    rows = b"".join(b"\x00" + b"\xff\x00\x00" * width for _ in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")


DATA_URL = "data:image/png;base64," + base64.b64encode(png()).decode()


def image_message(*urls: str) -> list[dict]:
    parts: list[dict] = [{"type": "text", "text": "What is this?"}]
    parts += [{"type": "image_url", "image_url": {"url": url}} for url in urls]
    return [{"role": "user", "content": parts}]


async def test_data_url_images_reach_the_model(client) -> None:
    body = {"model": "vllm_model", "messages": image_message(DATA_URL, DATA_URL), "temperature": 0, "max_tokens": 80}
    response = await client.post("/v1/chat/completions", json=body)
    assert response.status == 200, await response.text()
    content = (await response.json())["choices"][0]["message"]["content"]
    # The placeholders went into the prompt, the images into the image input.
    assert content == "You said: What is this?<|image|><|image|> [2 images: png, png]"


async def test_bad_images_are_400s_naming_the_part(client) -> None:
    cases = [
        ("data:image/png;base64,***", "messages[0].content[1].image_url.url"),
        ("data:text/plain;base64,aGk=", "messages[0].content[1].image_url.url"),
        ("ftp://example/x.png", "messages[0].content[1].image_url.url"),
        ("http://127.0.0.1:9/x.png", "messages[0].content[1].image_url.url"),
    ]
    for url, param in cases:
        body = {"model": "vllm_model", "messages": image_message(url)}
        response = await client.post("/v1/chat/completions", json=body)
        assert response.status == 400, url
        assert (await response.json())["error"]["param"] == param


async def test_models_without_an_image_input_refuse_images(client) -> None:
    for model in ("vllm_legacy", "ensemble"):
        response = await client.post("/v1/chat/completions", json={"model": model, "messages": image_message(DATA_URL)})
        assert response.status == 400
        assert (await response.json())["error"]["param"] == "messages[0].content[1]"


async def test_text_only_models_refuse_images_although_they_declare_the_input(aiohttp_client, settings) -> None:  # type: ignore[no-untyped-def]
    """vllm_slow declares `image` (as the real backend's auto-complete does on every model) but
    nothing in the deployment says it is multimodal: a 400 from the gateway, not vLLM's
    empty-message failure. Named in --image-models, its images go through (and the stand-in,
    like vLLM, fails on them)."""
    body = {"model": "vllm_slow", "messages": image_message(DATA_URL), "max_tokens": 5}
    client = await aiohttp_client(create_app(settings))
    response = await client.post("/v1/chat/completions", json=body)
    assert response.status == 400
    error = (await response.json())["error"]
    assert error["param"] == "messages[0].content[1]" and "--image-models" in error["message"]
    named = await aiohttp_client(create_app(replace(settings, image_models=("vllm_slow",))))
    response = await named.post("/v1/chat/completions", json=body)
    assert response.status == 500
    assert "Triton's log" in (await response.json())["error"]["message"]  # vLLM said nothing more


def test_what_the_deployment_says_decides(tmp_path) -> None:  # type: ignore[no-untyped-def]
    import json

    from gateway.backends import vllm
    from gateway.model_files import ModelFiles
    from gateway.model_info import ModelInfo, TensorSpec
    from gateway.multimodal import ImageModels

    def info(name: str) -> ModelInfo:
        image = TensorSpec("image", "BYTES", (-1,), True)
        return ModelInfo(name, "1", vllm.VLLM, "vllm", "", 0, True, {"image": image}, frozenset(), {})

    (tmp_path / "repo" / "vision" / "1").mkdir(parents=True)
    (tmp_path / "repo" / "vision" / "1" / "model.json").write_text(json.dumps({"limit_mm_per_prompt": {"image": 2}}))
    (tmp_path / "repo" / "text" / "1").mkdir(parents=True)
    (tmp_path / "repo" / "text" / "1" / "model.json").write_text(json.dumps({"model": "x"}))
    (tmp_path / "processor").mkdir()
    (tmp_path / "processor" / "preprocessor_config.json").write_text("{}")
    sources = {"with_processor": str(tmp_path / "processor")}
    models = ImageModels(["named"], ModelFiles(tmp_path / "repo"), sources.get)
    assert models.takes_images(info("vision")) and models.takes_images(info("named"))
    assert models.takes_images(info("with_processor"))
    assert not models.takes_images(info("text")) and not models.takes_images(info("unknown"))


async def test_remote_images_when_allowed(aiohttp_client, settings) -> None:  # type: ignore[no-untyped-def]
    image_server = web.Application()

    async def serve_png(request: web.Request) -> web.Response:
        return web.Response(body=png(), content_type="image/png")

    async def serve_big(request: web.Request) -> web.Response:
        return web.Response(body=png(64, 64) + b"\0" * 4096, content_type="image/png")

    image_server.router.add_get("/cat.png", serve_png)
    image_server.router.add_get("/big.png", serve_big)
    runner = web.AppRunner(image_server)
    await runner.setup()
    port = free_port()
    site = web.TCPSite(runner, "127.0.0.1", port)
    await site.start()
    try:
        allowed = replace(
            settings, allow_remote_images=True, remote_image_max_bytes=2048, allowed_media_networks=("127.0.0.1/32",)
        )
        client = await aiohttp_client(create_app(allowed))
        body = {"model": "vllm_model", "messages": image_message(f"http://127.0.0.1:{port}/cat.png"), "max_tokens": 80}
        response = await client.post("/v1/chat/completions", json={**body, "temperature": 0})
        assert response.status == 200, await response.text()
        assert (await response.json())["choices"][0]["message"]["content"].endswith("[1 image: png]")
        big = {**body, "messages": image_message(f"http://127.0.0.1:{port}/big.png")}
        response = await client.post("/v1/chat/completions", json=big)
        assert response.status == 400
        error = (await response.json())["error"]
        assert "2048" in error["message"]
        assert error["code"] == "image_too_large"
    finally:
        await runner.cleanup()


# Remote fetches against the address policy. Every server here listens on 127.0.0.0/8 (all of it
# is loopback on Linux) and no test names a host that needs real DNS.

PARAM = "messages[0].content[1].image_url.url"
GENERIC = f"The image at {PARAM} could not be fetched."
MiB = 1024 * 1024


def image_bytes(size: int) -> bytes:
    """`size` bytes that start like a PNG, with a pattern that shows truncation or reordering."""
    return (png() + bytes(range(256)) * (size // 256 + 1))[:size]


class ImageServer:
    """A local image server on `host` that records the paths it was asked for."""

    def __init__(self, host: str = "127.0.0.1") -> None:
        self.host = host
        self.hits: list[str] = []
        self.url = ""
        self._release = asyncio.Event()  # lets stalled handlers end at cleanup
        app = web.Application(middlewares=[self._record])
        app.router.add_get("/cat.png", self._cat)
        app.router.add_get("/bytes", self._bytes)
        app.router.add_get("/endless.png", self._endless)
        app.router.add_get("/stalled.png", self._stalled)
        app.router.add_get("/redirect", self._redirect)
        app.router.add_get("/hops/{n}", self._hops)
        app.router.add_get("/loop", self._loop)
        app.router.add_get("/missing.png", self._missing)
        app.router.add_get("/page.html", self._page)
        self._runner = web.AppRunner(app)

    async def __aenter__(self) -> Self:
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, 0)
        await site.start()
        self.url = f"http://{self.host}:{self._runner.addresses[0][1]}"
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        self._release.set()
        await self._runner.cleanup()

    @property
    def port(self) -> int:
        return int(self.url.rpartition(":")[2])

    @web.middleware
    async def _record(self, request: web.Request, handler: Any) -> web.StreamResponse:
        self.hits.append(request.path)
        return await handler(request)  # type: ignore[no-any-return]

    async def _cat(self, request: web.Request) -> web.Response:
        return web.Response(body=png(), content_type="image/png")

    async def _bytes(self, request: web.Request) -> web.StreamResponse:
        """?size=N bytes in ?chunk=N pieces, with a Content-Length when ?length=1 (else chunked)."""
        body = image_bytes(int(request.query["size"]))
        step = int(request.query.get("chunk", "16384"))
        response = web.StreamResponse(headers={"Content-Type": "image/png"})
        if request.query.get("length") == "1":
            response.content_length = len(body)
        else:
            response.enable_chunked_encoding()
        await response.prepare(request)
        for start in range(0, len(body), step):
            await response.write(body[start : start + step])
            await asyncio.sleep(0)  # separate writes, so the client sees several chunks
        await response.write_eof()
        return response

    async def _endless(self, request: web.Request) -> web.StreamResponse:
        """Chunked image bytes until the client goes away."""
        response = web.StreamResponse(headers={"Content-Type": "image/png"})
        response.enable_chunked_encoding()
        await response.prepare(request)
        with contextlib.suppress(ConnectionError):
            while not self._release.is_set():
                await response.write(image_bytes(16384))
        return response

    async def _stalled(self, request: web.Request) -> web.StreamResponse:
        """Declares a large body, sends a little, then stalls."""
        response = web.StreamResponse(headers={"Content-Type": "image/png"})
        response.content_length = 50 * MiB
        await response.prepare(request)
        await response.write(png())
        await self._release.wait()
        return response

    async def _redirect(self, request: web.Request) -> web.Response:
        raise web.HTTPFound(request.query["to"])

    async def _hops(self, request: web.Request) -> web.Response:
        """/hops/N redirects N times (to /hops/N-1), each after ?delay= seconds, then serves a PNG."""
        await asyncio.sleep(float(request.query.get("delay", "0")))
        n = int(request.match_info["n"])
        if n == 0:
            return web.Response(body=png(), content_type="image/png")
        raise web.HTTPFound(f"/hops/{n - 1}?{request.query_string}")

    async def _loop(self, request: web.Request) -> web.Response:
        raise web.HTTPFound("/loop")

    async def _missing(self, request: web.Request) -> web.Response:
        return web.Response(status=404, text="no such image")

    async def _page(self, request: web.Request) -> web.Response:
        return web.Response(text="<html></html>", content_type="text/html")


@contextlib.asynccontextmanager
async def remote_loader(
    *, max_bytes: int = 10 * MiB, timeout: float = 10.0, **policy: tuple[str, ...]
) -> AsyncIterator[ImageLoader]:
    """An ImageLoader that fetches remote images, with the given allow-lists."""
    images = ImageLoader(allow_remote=True, max_bytes=max_bytes, timeout=timeout, **policy)
    try:
        yield images
    finally:
        await images.close()


async def fetched(images: ImageLoader, url: str) -> bytes:
    return base64.b64decode(await images.load(url, PARAM))


async def refusal(images: ImageLoader, url: str) -> InvalidRequest:
    with pytest.raises(InvalidRequest) as caught:
        await images.load(url, PARAM)
    return caught.value


async def assert_refused(images: ImageLoader, url: str) -> None:
    """Refused with the one generic message, code and param."""
    error = await refusal(images, url)
    assert (error.message, error.param, error.code) == (GENERIC, PARAM, "image_fetch_failed"), url


async def test_loopback_is_refused_by_default_without_details(aiohttp_client, settings) -> None:  # type: ignore[no-untyped-def]
    async with ImageServer() as server:
        client = await aiohttp_client(create_app(replace(settings, allow_remote_images=True)))
        body = {"model": "vllm_model", "messages": image_message(f"{server.url}/cat.png")}
        response = await client.post("/v1/chat/completions", json=body)
        assert response.status == 400
        error = (await response.json())["error"]
        assert error == {
            "message": GENERIC,
            "type": "invalid_request_error",
            "param": PARAM,
            "code": "image_fetch_failed",
        }
        assert str(server.port) not in error["message"] and "127.0.0.1" not in error["message"]
        assert server.hits == []


async def test_upstream_failures_are_not_described_to_the_client(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="gateway.media.images")
    async with ImageServer() as server, remote_loader(allowed_networks=("127.0.0.1/32",)) as images:
        for path in ("/missing.png", "/page.html"):
            error = await refusal(images, server.url + path)
            assert error.message == GENERIC
            assert "404" not in error.message and "text/html" not in error.message
        unreachable = f"http://127.0.0.1:{free_port()}/x.png"
        assert (await refusal(images, unreachable)).message == GENERIC
    # The operator's log has the reasons.
    assert "HTTP 404" in caplog.text and "text/html" in caplog.text


async def test_an_allowed_network_is_fetched_from() -> None:
    async with ImageServer() as server, remote_loader(allowed_networks=("127.0.0.1/32",)) as images:
        assert await fetched(images, f"{server.url}/cat.png") == png()
        assert server.hits == ["/cat.png"]


async def test_literal_and_named_loopback_forms_are_refused() -> None:
    async with ImageServer() as server, remote_loader() as images:
        for host in ("127.0.0.1", "[::ffff:127.0.0.1]", "[::1]", "0.0.0.0", "127.1", "localhost"):
            await assert_refused(images, f"http://{host}:{server.port}/cat.png")
        assert server.hits == []


async def test_0_0_0_0_is_refused_even_when_loopback_is_allowed() -> None:
    # Connecting to 0.0.0.0 reaches this host on Linux: it must not slip past as "not loopback".
    async with ImageServer() as server, remote_loader(allowed_networks=("127.0.0.1/32",)) as images:
        await assert_refused(images, f"http://0.0.0.0:{server.port}/cat.png")
        assert server.hits == []


async def test_a_mapped_address_is_allowed_exactly_when_its_ipv4_address_is() -> None:
    async with ImageServer() as server:
        mapped = f"http://[::ffff:127.0.0.1]:{server.port}/cat.png"
        async with remote_loader(allowed_networks=("127.0.0.2/32",)) as images:
            await assert_refused(images, mapped)
        assert server.hits == []
        async with remote_loader(allowed_networks=("127.0.0.1/32",)) as images:
            assert await fetched(images, mapped) == png()
        assert server.hits == ["/cat.png"]


async def test_a_resolved_name_is_judged_by_its_addresses() -> None:
    # localhost resolves (from /etc/hosts) to 127.0.0.1: refused, unless that network is allowed.
    async with ImageServer() as server:
        url = f"http://localhost:{server.port}/cat.png"
        async with remote_loader(allowed_networks=("127.0.0.2/32",)) as images:
            await assert_refused(images, url)
        assert server.hits == []
        async with remote_loader(allowed_networks=("127.0.0.0/8", "::1/128")) as images:
            assert await fetched(images, url) == png()
        assert server.hits == ["/cat.png"]


async def test_every_redirect_hop_is_checked() -> None:
    async with ImageServer("127.0.0.1") as first, ImageServer("127.0.0.2") as second:
        url = f"{first.url}/redirect?to={second.url}/cat.png"
        async with remote_loader(allowed_networks=("127.0.0.1/32",)) as images:
            await assert_refused(images, url)
        assert second.hits == []
        # The same redirect is followed when both ends are allowed.
        async with remote_loader(allowed_networks=("127.0.0.1/32", "127.0.0.2/32")) as images:
            assert await fetched(images, url) == png()
        assert second.hits == ["/cat.png"]


async def test_redirects_to_other_schemes_are_refused() -> None:
    async with ImageServer() as server, remote_loader(allowed_networks=("127.0.0.1/32",)) as images:
        await assert_refused(images, f"{server.url}/redirect?to=file:///etc/passwd")
        await assert_refused(images, f"{server.url}/redirect?to=ftp://127.0.0.1/cat.png")


async def test_the_hop_limit() -> None:
    async with ImageServer() as server, remote_loader(allowed_networks=("127.0.0.1/32",)) as images:
        assert await fetched(images, f"{server.url}/hops/{MAX_REDIRECTS}") == png()
        await assert_refused(images, f"{server.url}/hops/{MAX_REDIRECTS + 1}")
        server.hits.clear()
        await assert_refused(images, f"{server.url}/loop")
        assert server.hits == ["/loop"] * (MAX_REDIRECTS + 1)


async def test_the_timeout_covers_all_hops() -> None:
    # Each hop takes well under the timeout; together they take longer.
    async with ImageServer() as server:
        url = f"{server.url}/hops/3?delay=0.4"
        async with remote_loader(allowed_networks=("127.0.0.1/32",), timeout=1.0) as images:
            await assert_refused(images, url)
        async with remote_loader(allowed_networks=("127.0.0.1/32",), timeout=5.0) as images:
            assert await fetched(images, url) == png()


async def test_userinfo_is_refused() -> None:
    async with ImageServer() as server, remote_loader(allowed_networks=("127.0.0.1/32",)) as images:
        await assert_refused(images, f"http://user:secret@127.0.0.1:{server.port}/cat.png")
        await assert_refused(images, f"http://user@127.0.0.1:{server.port}/cat.png")
        assert server.hits == []


async def test_the_domain_allow_list_refuses_other_hosts_before_connecting(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="gateway.media.images")
    async with ImageServer() as server:
        async with remote_loader(allowed_domains=("images.example",), allowed_networks=("127.0.0.0/8",)) as images:
            await assert_refused(images, f"http://localhost:{server.port}/cat.png")
            await assert_refused(images, f"{server.url}/cat.png")  # an address literal is not a listed name
        assert server.hits == []
        assert "not in --allowed-media-domains" in caplog.text
        # A listed name is fetched from.
        async with remote_loader(allowed_domains=("LOCALHOST",), allowed_networks=("127.0.0.0/8",)) as images:
            assert await fetched(images, f"http://localhost:{server.port}/cat.png") == png()


async def test_the_domain_allow_list_applies_to_redirects() -> None:
    async with ImageServer("127.0.0.1") as first, ImageServer("127.0.0.2") as second:
        url = f"http://localhost:{first.port}/redirect?to={second.url}/cat.png"
        async with remote_loader(allowed_domains=("localhost",), allowed_networks=("127.0.0.0/8",)) as images:
            await assert_refused(images, url)
        assert first.hits == ["/redirect"] and second.hits == []


@pytest.mark.parametrize(
    "query",
    [
        "size=100001&chunk=16384&length=1",  # a correct Content-Length over the limit, several chunks
        "size=100001&chunk=16384",  # chunked, one byte over the limit
        "size=300000&chunk=65536",  # chunked, well over
    ],
)
async def test_images_over_the_limit_are_refused(query: str) -> None:
    async with ImageServer() as server, remote_loader(max_bytes=100_000, allowed_networks=("127.0.0.1/32",)) as images:
        error = await refusal(images, f"{server.url}/bytes?{query}")
    assert error.code == "image_too_large" and "100000" in error.message


async def test_an_endless_image_is_cut_off_at_the_limit() -> None:
    # Counting bytes as they arrive ends this well before the timeout would.
    async with (
        ImageServer() as server,
        remote_loader(max_bytes=100_000, timeout=5.0, allowed_networks=("127.0.0.1/32",)) as images,
    ):
        error = await refusal(images, f"{server.url}/endless.png")
    assert error.code == "image_too_large"


async def test_a_declared_length_over_the_limit_is_refused_before_the_body() -> None:
    # The body stalls after a few bytes: only the Content-Length check can answer in time.
    async with (
        ImageServer() as server,
        remote_loader(max_bytes=100_000, timeout=3.0, allowed_networks=("127.0.0.1/32",)) as images,
    ):
        error = await refusal(images, f"{server.url}/stalled.png")
    assert error.code == "image_too_large"


@pytest.mark.parametrize("length", ["1", "0"])
async def test_images_arrive_complete(length: str) -> None:
    async with ImageServer() as server, remote_loader(allowed_networks=("127.0.0.1/32",)) as images:
        assert await fetched(images, f"{server.url}/bytes?size=300000&chunk=16384&length={length}") == image_bytes(
            300_000
        )
        # Exactly at the limit is still accepted.
        async with remote_loader(max_bytes=100_000, allowed_networks=("127.0.0.1/32",)) as limited:
            assert await fetched(limited, f"{server.url}/bytes?size=100000&length={length}") == image_bytes(100_000)
