"""Image content parts: data: URLs to vLLM models' image input; remote URLs only when allowed."""

from __future__ import annotations

import base64
import struct
import zlib
from dataclasses import replace

from aiohttp import web

from gateway.app import create_app
from gateway.localtriton import free_port


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
        client = await aiohttp_client(
            create_app(replace(settings, allow_remote_images=True, remote_image_max_bytes=2048))
        )
        body = {"model": "vllm_model", "messages": image_message(f"http://127.0.0.1:{port}/cat.png"), "max_tokens": 80}
        response = await client.post("/v1/chat/completions", json={**body, "temperature": 0})
        assert response.status == 200, await response.text()
        assert (await response.json())["choices"][0]["message"]["content"].endswith("[1 image: png]")
        big = {**body, "messages": image_message(f"http://127.0.0.1:{port}/big.png")}
        response = await client.post("/v1/chat/completions", json=big)
        assert response.status == 400
        assert "2048" in (await response.json())["error"]["message"]
    finally:
        await runner.cleanup()
