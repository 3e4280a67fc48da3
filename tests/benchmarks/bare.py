"""The bare server: the least a gateway built on aiohttp and grpc.aio can spend, relaying one
fixed Triton request's stream as chat completion chunks and doing nothing else.

It reads the model and max_tokens from each request's body, sends the bench's request for
them as it is (the one the direct client sends) and writes one frame per token: no planning,
chat template, checks, metrics, logging, pipeline or usage. Measured beside the gateway in the
same run, it splits the gateway's cost above the floor (a client that only reads the streams)
in two: what serving the streams over HTTP costs any such gateway, and what is the gateway's own.

    python -m tests.benchmarks.bare --triton-url URL --port PORT --prompt-file F
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import itertools
import signal
from pathlib import Path

import msgspec
from aiohttp import web
from tritonclient.grpc import service_pb2 as pb

from gateway.app import new_event_loop
from gateway.settings import Settings
from gateway.triton import tensors
from gateway.triton.client import TritonClient
from tests.benchmarks.load import triton_request

_ENCODE = msgspec.json.encode


class _Body(msgspec.Struct):
    model: str
    max_tokens: int


_DECODE_BODY = msgspec.json.Decoder(_Body).decode
_CHUNK_END = b'},"finish_reason":null}]}\n\n'
_DONE = b"data: [DONE]\n\n"


def chunk_prefix(model: str) -> bytes:
    """A chat completion chunk up to its delta's fields (the bare server's chunks differ only in their text)."""
    envelope = {"id": "chatcmpl-bare", "object": "chat.completion.chunk", "created": 0, "model": model}
    return b"data: " + _ENCODE(envelope)[:-1] + b',"choices":[{"index":0,"delta":{"content":'


def token_frame(prefix: bytes, text: str) -> bytes:
    """The chunk carrying `text`, after its `chunk_prefix`."""
    return prefix + _ENCODE(text) + _CHUNK_END


def bare_app(client: TritonClient, prompt: str) -> web.Application:
    ids = itertools.count()

    @functools.lru_cache(maxsize=64)  # one per (model, max_tokens) the bench sends
    def template(model: str, tokens: int) -> tuple[pb.ModelInferRequest, bytes]:
        return triton_request(model, prompt, tokens), chunk_prefix(model)

    async def stream(request: web.Request) -> web.StreamResponse:
        body = _DECODE_BODY(await request.read())
        request_template, prefix = template(body.model, body.max_tokens)
        infer = pb.ModelInferRequest()
        infer.CopyFrom(request_template)
        infer.id = f"bare-{next(ids)}"
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"})
        async with client.stream(infer) as responses:
            async for message in responses:
                raw = message.raw_output_contents
                text = tensors.decode_first_bytes(raw[0]).decode("utf-8", "replace") if raw else ""
                if not response.prepared:
                    await response.prepare(request)
                if text:
                    await response.write(token_frame(prefix, text))
        if not response.prepared:
            await response.prepare(request)
        await response.write(_DONE)
        return response

    async def ready(request: web.Request) -> web.Response:
        return web.Response(text="ready")

    app = web.Application()
    app.router.add_post("/v1/chat/completions", stream)
    app.router.add_get("/health/ready", ready)
    return app


async def serve(args: argparse.Namespace) -> None:
    client = TritonClient(args.triton_url)
    app = bare_app(client, args.prompt_file.read_text())
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    # The gateway's listen queue, so a cell's connections opened at once connect alike to both.
    await web.TCPSite(runner, "127.0.0.1", args.port, backlog=Settings.backlog).start()
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    try:
        await stop.wait()
    finally:
        await runner.cleanup()
        await client.close()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--triton-url", required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--prompt-file", type=Path, required=True)
    args = parser.parse_args(argv)
    with asyncio.Runner(loop_factory=new_event_loop) as runner:
        runner.run(serve(args))


if __name__ == "__main__":
    main()
