"""`make bench-routing`: --routing round_robin against --routing prefix, side by side in one run.

Two real tritonservers serve a vLLM stand-in whose simulated prefix cache (standin/prefix_cache.py)
makes each block of a prompt it has not seen cost prefill time before the first token. A
multi-turn chat load (each turn resends the conversation so far; the first turn of each
carries a document of its own) runs through a gateway in front of both Tritons, once per routing policy, with conversations of its own each time; the
report gives the time to first token and the cache-hit rate (blocks found over blocks asked,
from the Tritons' logs). Last, a skewed mix of conversation keys (a Zipf law: one conversation
takes a large share) shows how the bound on load spreads a hot key.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import random
import re
import shutil
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from gateway.demo import stand_in_triton
from gateway.localtriton import LocalTriton, free_port
from tests.benchmarks.harness import start_gateway
from tests.benchmarks.load import percentile

ROOT = Path(__file__).resolve().parents[2]
VLLM_CONFIG = ROOT / "tests" / "model_repository" / "vllm_model" / "config.pbtxt"
TOKENIZER = ROOT / "standin" / "tokenizer"
MODEL = "cached_chat"
SYSTEM_PROMPT = "You are a careful travel assistant. " * 8  # shared by the conversations of a run
_CACHE_LINE = re.compile(r"prefix cache: (\d+) of (\d+) blocks for (\S+)")


def prefix_cache_repository(directory: Path, miss_ms_per_block: float = 4.0) -> Path:
    """A model repository with one vLLM stand-in whose prefix cache is simulated."""
    model = directory / MODEL
    (model / "1").mkdir(parents=True)
    shutil.copy(VLLM_CONFIG, model / "config.pbtxt")
    knobs = {"prefix_cache": {"block_chars": 32, "miss_ms_per_block": miss_ms_per_block, "capacity_blocks": 100_000}}
    engine = {"model": str(TOKENIZER), "max_model_len": 8192, "stand_in": knobs}
    (model / "1" / "model.json").write_text(json.dumps(engine))
    return directory


@contextlib.contextmanager
def two_cached_tritons(directory: Path, miss_ms_per_block: float = 4.0) -> Iterator[tuple[LocalTriton, LocalTriton]]:
    repository = prefix_cache_repository(directory, miss_ms_per_block)
    first, second = stand_in_triton(repository), stand_in_triton(repository)
    with first.running(), second.running():
        yield first, second


def cache_hits(tritons: tuple[LocalTriton, ...], request_prefix: str) -> tuple[int, int, dict[str, str]]:
    """(blocks found, blocks asked, Triton of each request) over the requests whose id starts
    with `request_prefix`, from the Tritons' logs."""
    found = asked = 0
    where: dict[str, str] = {}
    for triton in tritons:
        for hit, total, request_id in _CACHE_LINE.findall(triton.read_log()):
            if request_id.startswith(request_prefix):
                found += int(hit)
                asked += int(total)
                where[request_id] = triton.grpc_url
    return found, asked, where


@dataclass
class Conversation:
    name: str
    messages: list[dict[str, str]] = field(default_factory=list)


@dataclass
class TurnResult:
    conversation: str
    turn: int
    request_id: str
    ttft_ms: float


def document(name: str, chars: int) -> str:
    """A conversation's own long context (a pasted document, a tool's output), `chars` long."""
    rng = random.Random(name)
    words = ["fjord", "ferry", "glacier", "harbour", "museum", "island", "train", "cabin", "summit", "market"]
    text = ""
    while len(text) < chars:
        text += rng.choice(words) + " "
    return text[:chars]


async def one_turn(
    session: aiohttp.ClientSession,
    url: str,
    conversation: Conversation,
    turn: int,
    request_id: str,
    document_chars: int = 0,
) -> TurnResult:
    asked = f"Turn {turn} of {conversation.name}: what next?"
    if turn == 1 and document_chars:
        asked = f"{asked}\n{document(conversation.name, document_chars)}"
    conversation.messages.append({"role": "user", "content": asked})
    body = {"model": MODEL, "messages": conversation.messages, "max_tokens": 16, "temperature": 0, "stream": True}
    started = time.perf_counter()
    first: float | None = None
    text = []
    async with session.post(f"{url}/v1/chat/completions", json=body, headers={"X-Request-Id": request_id}) as answer:
        assert answer.status == 200, await answer.text()
        async for line in answer.content:
            if not line.startswith(b"data: {"):
                continue
            for choice in json.loads(line[6:]).get("choices", ()):
                piece = choice["delta"].get("content")
                if piece:
                    first = first or time.perf_counter()
                    text.append(piece)
    conversation.messages.append({"role": "assistant", "content": "".join(text)})
    return TurnResult(conversation.name, turn, request_id, ((first or time.perf_counter()) - started) * 1000)


async def multi_turn_load(
    url: str, label: str, conversations: int, turns: int, concurrency: int, document_chars: int = 0
) -> list[TurnResult]:
    """`conversations` chats of `turns` turns each, `concurrency` conversations at a time, each
    turn after the previous one's answer (as a chat client does); the first turn of each
    carries a document of its own, `document_chars` long."""
    results: list[TurnResult] = []
    queue: asyncio.Queue[Conversation] = asyncio.Queue()
    for index in range(conversations):
        # The run's own system prompt (shared by its conversations): each run starts cold.
        chat = Conversation(f"{label}-{index}", [{"role": "system", "content": f"[{label}] {SYSTEM_PROMPT}"}])
        queue.put_nowait(chat)

    async def worker(session: aiohttp.ClientSession) -> None:
        while not queue.empty():
            chat = queue.get_nowait()
            for turn in range(1, turns + 1):
                request_id = f"{chat.name}-t{turn}"
                results.append(await one_turn(session, url, chat, turn, request_id, document_chars))

    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=120)) as session:
        await asyncio.gather(*(worker(session) for _ in range(concurrency)))
    return results


async def skewed_load(url: str, label: str, requests: int, concurrency: int, keys: int = 20) -> None:
    """Requests whose conversation keys (the `user` field) follow a Zipf law over `keys` keys."""
    rng = random.Random(7)
    weights = [1 / (rank + 1) for rank in range(keys)]
    users = rng.choices([f"{label}-user-{rank}" for rank in range(keys)], weights, k=requests)
    queue: asyncio.Queue[tuple[int, str]] = asyncio.Queue()
    for index, user in enumerate(users):
        queue.put_nowait((index, user))

    async def worker(session: aiohttp.ClientSession) -> None:
        while not queue.empty():
            index, user = queue.get_nowait()
            body = {"model": MODEL, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 24, "user": user}
            headers = {"X-Request-Id": f"{label}-{index}"}
            async with session.post(f"{url}/v1/chat/completions", json=body, headers=headers) as answer:
                assert answer.status == 200, await answer.text()
                await answer.read()

    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=concurrency)) as session:
        await asyncio.gather(*(worker(session) for _ in range(concurrency)))


def summary(results: list[TurnResult], found: int, asked: int) -> dict[str, Any]:
    later = [result.ttft_ms for result in results if result.turn > 1]
    return {
        "requests": len(results),
        "ttft_p50_ms": round(percentile([r.ttft_ms for r in results], 0.5), 2),
        "ttft_p50_later_turns_ms": round(percentile(later, 0.5), 2) if later else None,
        "ttft_mean_later_turns_ms": round(sum(later) / len(later), 2) if later else None,
        "ttft_p90_later_turns_ms": round(percentile(later, 0.9), 2) if later else None,
        "ttft_p90_ms": round(percentile([r.ttft_ms for r in results], 0.9), 2),
        "cache_hit_rate": round(found / asked, 3) if asked else None,
    }


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    report: dict[str, Any] = {
        "conversations": args.conversations,
        "turns": args.turns,
        "concurrency": args.concurrency,
        "document_chars": args.document_chars,
        "miss_ms_per_block": args.miss_ms_per_block,
    }
    with tempfile.TemporaryDirectory() as scratch, two_cached_tritons(Path(scratch), args.miss_ms_per_block) as tritons:
        target = "ipv4:" + ",".join(triton.grpc_url for triton in tritons)
        for policy in ("round_robin", "prefix"):
            port = free_port()
            log = Path(scratch) / f"gateway-{policy}.log"
            gateway = start_gateway(target, port, log, f"--routing {policy} --model-refresh-interval 1")
            try:
                url = f"http://127.0.0.1:{port}"
                results = await multi_turn_load(
                    url, policy, args.conversations, args.turns, args.concurrency, args.document_chars
                )
                found, asked, _ = cache_hits(tritons, f"{policy}-")
                report[policy] = summary(results, found, asked)
                print(policy, report[policy], flush=True)
                await skewed_load(url, f"skew-{policy}", args.skewed_requests, args.concurrency)
                _, _, where = cache_hits(tritons, f"skew-{policy}-")
                shares = sorted(list(where.values()).count(t.grpc_url) / max(1, len(where)) for t in tritons)
                report[policy]["skewed_mix_shares"] = [round(share, 3) for share in shares]
            finally:
                gateway.terminate()
                gateway.wait(30)
    return report


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--conversations", type=int, default=32)
    parser.add_argument("--turns", type=int, default=4)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--skewed-requests", type=int, default=200)
    parser.add_argument("--document-chars", type=int, default=1500, help="each conversation's own first-turn context")
    parser.add_argument("--miss-ms-per-block", type=float, default=4.0, help="simulated prefill per uncached block")
    parser.add_argument("--output", type=Path, default=ROOT / "bench-results" / "routing.json")
    args = parser.parse_args(argv)
    report = asyncio.run(main_async(args))
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(report, indent=2))
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
