"""Micro-benchmark of the SSE encoding path: the gateway's chunk framing (msgspec, envelope
pre-encoded, choice encoded into a reused buffer) against the obvious json.dumps of a dict."""

from __future__ import annotations

import json
import time

from gateway.generation import Delta
from gateway.openai.chat import ChatStreamFormatter


def _obvious(request_id: str, created: int, model: str, text: str) -> bytes:
    chunk = {
        "id": request_id,
        "object": "chat.completion.chunk",
        "created": created,
        "model": model,
        "choices": [{"index": 0, "delta": {"content": text}, "finish_reason": None, "logprobs": None}],
    }
    return b"data: " + json.dumps(chunk).encode() + b"\n\n"


def chunks_per_second(count: int = 200_000) -> dict[str, float]:
    """Frames per second for each encoder; both produce the same JSON."""
    request_id, created, model, text = "chatcmpl-0123456789abcdef", 1_700_000_000, "bench_vllm", "tok "
    formatter = ChatStreamFormatter(request_id, created, model, None)
    assert json.loads(formatter.chunk(0, Delta(text))[6:]) == json.loads(_obvious(request_id, created, model, text)[6:])
    results = {}
    for name, encode in (
        ("msgspec_framer", lambda: formatter.chunk(0, Delta(text))),
        ("json_dumps_dict", lambda: _obvious(request_id, created, model, text)),
    ):
        started = time.perf_counter()
        for _ in range(count):
            encode()
        results[name] = count / (time.perf_counter() - started)
    return results


if __name__ == "__main__":
    for name, rate in chunks_per_second().items():
        print(f"{name}: {rate:,.0f} chunks/s")
