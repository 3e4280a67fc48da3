"""`make soak`: streams at a steady concurrency for a bounded time, some clients walking away
mid-stream, then a report: requests served, errors, gateway RSS at start and end, and whether
every disconnect cancelled its request on Triton."""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import re
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp

from gateway.localtriton import LocalTriton, free_port
from tests.benchmarks.harness import BENCH_BACKEND, chat_body, model_name, model_repository, start_gateway
from tests.benchmarks.load import peak_rss_bytes


def rss_bytes(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=300.0)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--disconnect-fraction", type=float, default=0.1)
    parser.add_argument("--tokens", type=int, default=64)
    parser.add_argument("--token-delay-ms", type=float, default=5.0)
    parser.add_argument("--output", type=Path, default=Path(__file__).resolve().parents[2] / "bench-results")
    return parser.parse_args(argv)


async def soak(args: argparse.Namespace, url: str, gateway_pid: int) -> dict[str, Any]:
    body = chat_body(model_name(args.token_delay_ms), args.tokens, stream=True)
    served = errors = disconnected = 0
    dropped_ids: list[str] = []
    rss_start = rss_bytes(gateway_pid)
    deadline = time.monotonic() + args.seconds
    rng = random.Random(7)
    counter = 0
    connector = aiohttp.TCPConnector(limit=args.concurrency)
    async with aiohttp.ClientSession(connector=connector, headers={"Content-Type": "application/json"}) as session:

        async def worker() -> None:
            nonlocal served, errors, disconnected, counter
            while time.monotonic() < deadline:
                counter += 1
                drop = rng.random() < args.disconnect_fraction
                request_id = f"soak-{'drop' if drop else 'keep'}-{counter}"
                try:
                    async with session.post(
                        f"{url}/v1/chat/completions", data=body, headers={"X-Request-Id": request_id}
                    ) as response:
                        if drop:
                            await response.content.readline()
                            await response.content.readline()
                            response.close()  # walk away mid-stream
                            disconnected += 1
                            dropped_ids.append(request_id)
                            continue
                        payload = await response.read()
                        if (
                            response.status == 200
                            and payload.endswith(b"data: [DONE]\n\n")
                            and b'"error"' not in payload
                        ):
                            served += 1
                        else:
                            errors += 1
                except aiohttp.ClientError:
                    errors += 1

        await asyncio.gather(*(worker() for _ in range(args.concurrency)))
    await asyncio.sleep(2)  # let the last cancellations reach the model
    return {
        "served": served,
        "errors": errors,
        "disconnected": disconnected,
        "dropped_ids": dropped_ids,
        "rss_start_mib": rss_start / 2**20,
        "rss_end_mib": rss_bytes(gateway_pid) / 2**20,
        "rss_peak_mib": peak_rss_bytes(gateway_pid) / 2**20,
    }


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    workdir = Path(tempfile.mkdtemp(prefix="gateway-soak-"))
    harness_args = argparse.Namespace(delays=f"{args.token_delay_ms:g}", model_instances=2, open_stream_delay_ms=1000.0)
    model_repository(workdir / "models", harness_args)
    triton = LocalTriton(model_repository=workdir / "models", python_backends=[BENCH_BACKEND])
    await asyncio.to_thread(triton.start)
    port = free_port()
    gateway = start_gateway(triton.grpc_url, port, workdir / "gateway.log")
    try:
        result = await soak(args, f"http://127.0.0.1:{port}", gateway.pid)
        log = triton.read_log()
    finally:
        gateway.terminate()
        gateway.wait(30)
        await asyncio.to_thread(triton.stop)
        shutil.rmtree(workdir, ignore_errors=True)
    cancelled = set(re.findall(r"\[bench\] cancelled (soak-drop-\d+)", log))
    dropped = result.pop("dropped_ids")
    # A client that left after the model's last token has nothing left to cancel.
    result["triton_cancelled"] = len(cancelled)
    result["disconnects_not_cancelled"] = len(set(dropped) - cancelled)
    result["seconds"] = args.seconds
    result["concurrency"] = args.concurrency
    return result


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    result = asyncio.run(main_async(args))
    args.output.mkdir(parents=True, exist_ok=True)
    (args.output / "soak.json").write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
