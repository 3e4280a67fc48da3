"""`make bench`: the gateway against direct gRPC, side by side in one run.

Starts a real tritonserver with benchmark models (the vLLM protocol, a fixed token, a
configurable token count and delay) and the gateway as its own process, then at each
concurrency runs the same load four ways: straight to Triton over gRPC, through the gateway
streamed and not streamed, and through the bare server (tests.benchmarks.bare: what aiohttp
and grpc.aio cost without the gateway's own work), streamed. Last, it holds thousands of slow streams open
at once. Results go to bench-results/ as JSON, Markdown and a PNG plot; with --profile, a
flame graph of a gateway serving the streamed load too.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections import Counter
from pathlib import Path
from typing import Any

import aiohttp

from gateway.app import new_event_loop
from gateway.localtriton import LocalTriton, free_port
from tests.benchmarks import flame, report
from tests.benchmarks.load import Cell, DirectClient, GatewayClient, peak_rss_bytes, run_cell
from tests.benchmarks.sse_micro import chunks_per_second
from tests.benchmarks.stream_client import StreamClient

ROOT = Path(__file__).resolve().parents[2]
BENCH_BACKEND = Path(__file__).resolve().parent / "backends" / "vllm"
VLLM_CONFIG = ROOT / "tests" / "model_repository" / "vllm_model" / "config.pbtxt"
TOKENIZER = ROOT / "standin" / "tokenizer"
PROMPT_MESSAGES = [{"role": "user", "content": "Benchmark prompt."}]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokens", type=int, default=64, help="tokens streamed per request")
    parser.add_argument(
        "--delays",
        default="0,10",
        help="model delays before each token, in ms, one profile each: 0 saturates the machine, "
        "a GPU-like pace makes streaming and non-streaming cost the model the same",
    )
    parser.add_argument("--concurrency", default="1,16,64,256", help="comma-separated concurrencies")
    parser.add_argument("--seconds", type=float, default=4.0, help="measured seconds per cell")
    parser.add_argument("--warmup", type=float, default=1.0, help="unmeasured seconds before each cell")
    parser.add_argument(
        "--rounds",
        type=int,
        default=1,
        help="measure each concurrency's cells this many times, in a rotated order each round; the ratios "
        "are the median of the rounds' own (each round's cells ran one after another)",
    )
    parser.add_argument("--open-streams", type=int, default=5000, help="slow streams held open at once (0: skip)")
    parser.add_argument("--open-stream-tokens", type=int, default=4)
    parser.add_argument("--open-stream-delay-ms", type=float, default=2000.0)
    parser.add_argument("--model-instances", type=int, default=2, help="Python-backend instances of the model")
    parser.add_argument("--output", type=Path, default=ROOT / "bench-results")
    parser.add_argument("--gateway-flags", default="", help='extra gateway flags, e.g. "--workers 2 --grpc-channels 4"')
    parser.add_argument(
        "--compare-flags",
        default="",
        help='a second gateway with these flags (e.g. "--workers 2"), measured streamed in the same run',
    )
    parser.add_argument(
        "--compare-source",
        type=Path,
        default=None,
        help="a second gateway run from this checkout (e.g. a `git worktree` of the previous commit), "
        "measured streamed in the same run: one change against its parent",
    )
    parser.add_argument(
        "--profile",
        action="store_true",
        help="also, per delay, a flame graph (py-spy) of a gateway of its own serving the streamed load at "
        "the highest concurrency, in OUTPUT/flame-<delay>ms-c<concurrency>.svg; that run is not measured",
    )
    args = parser.parse_args(argv)
    args.compare_label = " ".join(
        part for part in (args.compare_flags, args.compare_source and f"@{args.compare_source.name}") if part
    )
    return args


def delays(args: argparse.Namespace) -> list[float]:
    return [float(delay) for delay in args.delays.split(",")]


def concurrencies(args: argparse.Namespace) -> list[int]:
    return [int(concurrency) for concurrency in args.concurrency.split(",")]


def chat_body(model: str, tokens: int, stream: bool) -> bytes:
    """The bench's chat completion request."""
    return json.dumps({"model": model, "messages": PROMPT_MESSAGES, "max_tokens": tokens, "stream": stream}).encode()


def model_name(delay: float) -> str:
    return f"bench_{delay:g}ms".replace(".", "_")


def model_repository(directory: Path, args: argparse.Namespace) -> None:
    """A model per delay (the load) and bench_slow (the open-streams test), vLLM-declared."""
    config = VLLM_CONFIG.read_text().replace("count: 1 kind: KIND_CPU", f"count: {args.model_instances} kind: KIND_CPU")
    models = [(model_name(delay), delay) for delay in delays(args)] + [("bench_slow", args.open_stream_delay_ms)]
    for name, delay in models:
        (directory / name / "1").mkdir(parents=True)
        (directory / name / "config.pbtxt").write_text(config)
        (directory / name / "1" / "model.json").write_text(json.dumps({"bench": {"token_delay_ms": delay}}))


def start_gateway(
    triton_url: str,
    port: int,
    log: Path,
    flags: str = "",
    source: Path | None = None,
    flame_graph: Path | None = None,
) -> subprocess.Popen[bytes]:
    """`python -m gateway` from this checkout, or from `source` (its directory comes first on
    the module path); with `flame_graph`, run under py-spy (the process returned; end it with
    flame.stop, and the graph is written there)."""
    command = [sys.executable, "-m", "gateway", "--triton-url", triton_url, "--host", "127.0.0.1"]
    command += ["--openai-port", str(port), "--tokenizer", str(TOKENIZER), "--log-level", "WARNING"]
    command += shlex.split(flags)
    if flame_graph is not None:
        command = flame.profiled(command, flame_graph)
    return _started(command, port, log, source, "the gateway")


def start_bare(triton_url: str, port: int, log: Path, prompt_file: Path) -> subprocess.Popen[bytes]:
    """The bare server (tests.benchmarks.bare): what serving the streams costs without the gateway's work."""
    command = [sys.executable, "-m", "tests.benchmarks.bare", "--triton-url", triton_url, "--port", str(port)]
    command += ["--prompt-file", str(prompt_file)]
    return _started(command, port, log, ROOT, "the bare server")


def _started(command: list[str], port: int, log: Path, cwd: Path | None, name: str) -> subprocess.Popen[bytes]:
    """`command` started, once it answers /health/ready on `port` (within a minute)."""
    with open(log, "wb") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, cwd=cwd)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health/ready", timeout=1):
                return process
        except OSError:
            if process.poll() is not None:
                raise RuntimeError(f"{name} exited: {log.read_text()}") from None
            time.sleep(0.2)
    process.terminate()
    process.wait(30)
    raise RuntimeError(f"{name} did not become ready")


def rendered_prompt() -> str:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(TOKENIZER))
    return str(tokenizer.apply_chat_template(PROMPT_MESSAGES, tokenize=False, add_generation_prompt=True))


async def measure(
    args: argparse.Namespace,
    triton: LocalTriton,
    prompt: str,
    gateway_url: str,
    gateway_pid: int,
    bare: tuple[str, int],
    compared: tuple[str, int] | None = None,
) -> list[Cell]:
    """Every cell: direct (sending the rendered `prompt`), the gateway streamed and not, the
    bare server (its URL and pid) streamed; with `compared` (the URL and pid of a gateway
    started with --compare-flags or --compare-source), its streamed cells too, as mode
    "gateway-stream <label>"."""
    cells = []
    for delay in delays(args):
        model = model_name(delay)
        direct = DirectClient(triton.grpc_url, model, prompt, args.tokens)
        try:
            for concurrency in concurrencies(args):
                stream_body = chat_body(model, args.tokens, stream=True)
                streamed = StreamClient(gateway_url, stream_body, connections=concurrency)
                plain = GatewayClient(gateway_url, chat_body(model, args.tokens, stream=False), connections=concurrency)
                bare_client = StreamClient(bare[0], stream_body, connections=concurrency)
                other = None
                if compared is not None:
                    other = StreamClient(compared[0], stream_body, connections=concurrency)
                try:
                    runs = [
                        ("direct", direct.one, None),
                        ("gateway-stream", streamed.one, gateway_pid),
                        ("gateway-nonstream", plain.one_plain, gateway_pid),
                        ("bare-stream", bare_client.one, bare[1]),
                    ]
                    if other is not None and compared is not None:
                        runs.append((f"gateway-stream {args.compare_label}", other.one, compared[1]))
                    # Rotated each round, so that no mode always runs first (or right after another).
                    order = [runs[(at + turn) % len(runs)] for turn in range(args.rounds) for at in range(len(runs))]
                    for at, (mode, one, pid) in enumerate(order):
                        cell = await run_cell(mode, one, concurrency, args.seconds, args.warmup, pid)
                        cell.delay_ms = delay
                        cell.round = at // len(runs)
                        print(
                            f"  {delay:g} ms {mode:18} c={concurrency:<4} {cell.tokens_per_second:9.0f} tok/s "
                            f"{cell.requests_per_second:8.1f} req/s  TTFT p50 {cell.ttft_ms[0]:7.2f} ms  "
                            f"p99 {cell.ttft_ms[1]:7.2f} ms  errors {cell.errors}",
                            flush=True,
                        )
                        cells.append(cell)
                finally:
                    await streamed.close()
                    await plain.close()
                    await bare_client.close()
                    if other is not None:
                        await other.close()
        finally:
            await direct.close()
    return cells


async def flame_graphs(args: argparse.Namespace, triton: LocalTriton, workdir: Path) -> list[str]:
    """Per delay, a gateway of its own started under py-spy, served the streamed load at the
    highest concurrency for the warm-up and measured seconds, then stopped: the flame graphs'
    paths. Profiling slows what it samples, so these runs are not measured."""
    concurrency = max(concurrencies(args))
    args.output.mkdir(parents=True, exist_ok=True)
    graphs = []
    for delay in delays(args):
        svg = args.output / f"flame-{delay:g}ms-c{concurrency}.svg"
        port = free_port()
        log = workdir / f"gateway-profiled-{delay:g}.log"
        profiler = start_gateway(triton.grpc_url, port, log, args.gateway_flags, flame_graph=svg)
        try:
            body = chat_body(model_name(delay), args.tokens, stream=True)
            client = StreamClient(f"http://127.0.0.1:{port}", body, connections=concurrency)
            try:
                await run_cell("gateway-stream profiled", client.one, concurrency, args.seconds, args.warmup, None)
            finally:
                await client.close()
        finally:
            await asyncio.to_thread(flame.stop, profiler)
        if not svg.exists():
            raise RuntimeError(f"py-spy wrote no flame graph: {log.read_text()[-2000:]}")
        print(f"  flame graph: {svg}", flush=True)
        graphs.append(str(svg))
    return graphs


async def hold_open_streams(args: argparse.Namespace, gateway_url: str, gateway_pid: int) -> dict[str, Any]:
    """Open `args.open_streams` slow streams at once; all must finish without error."""
    body = chat_body("bench_slow", args.open_stream_tokens, stream=True)
    connector = aiohttp.TCPConnector(limit=0)
    started = time.perf_counter()
    async with aiohttp.ClientSession(
        connector=connector, headers={"Content-Type": "application/json"}, timeout=aiohttp.ClientTimeout(total=300)
    ) as session:

        async def one() -> str | None:
            """None when the stream completed, else what went wrong."""
            try:
                async with session.post(f"{gateway_url}/v1/chat/completions", data=body) as response:
                    payload = await response.read()
            except Exception as exc:  # noqa: BLE001 - reported as an error
                return f"{type(exc).__name__}: {exc}"[:200]
            if response.status != 200:
                return f"HTTP {response.status}: {payload[:200].decode(errors='replace')}"
            if not payload.endswith(b"data: [DONE]\n\n") or b'"error"' in payload:
                return f"stream: {payload[-200:].decode(errors='replace')}"
            return None

        outcomes = await asyncio.gather(*(one() for _ in range(args.open_streams)))
    failures = Counter(outcome for outcome in outcomes if outcome is not None)
    return {
        "streams": args.open_streams,
        "completed": args.open_streams - sum(failures.values()),
        "errors": sum(failures.values()),
        "error_kinds": dict(failures.most_common(5)),
        "seconds": round(time.perf_counter() - started, 2),
        "tokens_each": args.open_stream_tokens,
        "token_delay_ms": args.open_stream_delay_ms,
        "gateway_peak_rss_mib": peak_rss_bytes(gateway_pid) / 2**20,
    }


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    if args.profile:
        flame.py_spy()  # missing: said now, not after the measured cells
    workdir = Path(tempfile.mkdtemp(prefix="gateway-bench-"))
    model_repository(workdir / "models", args)
    triton = LocalTriton(model_repository=workdir / "models", python_backends=[BENCH_BACKEND])
    print("starting tritonserver, the gateway and the bare server", flush=True)
    await asyncio.to_thread(triton.start)
    processes: list[subprocess.Popen[bytes]] = []
    try:
        port = free_port()  # each taken just before its server binds it
        gateway = start_gateway(triton.grpc_url, port, workdir / "gateway.log", args.gateway_flags)
        processes.append(gateway)
        gateway_url = f"http://127.0.0.1:{port}"
        prompt = rendered_prompt()
        prompt_file = workdir / "prompt.txt"
        prompt_file.write_text(prompt)
        bare_port = free_port()
        bare = start_bare(triton.grpc_url, bare_port, workdir / "bare.log", prompt_file)
        processes.append(bare)
        compared = None
        if args.compare_label:
            second_port = free_port()
            second = start_gateway(
                triton.grpc_url, second_port, workdir / "gateway-2.log", args.compare_flags, args.compare_source
            )
            processes.append(second)
            compared = (f"http://127.0.0.1:{second_port}", second.pid)
        micro = chunks_per_second()
        print("SSE encoding:", ", ".join(f"{k} {v:,.0f} chunks/s" for k, v in micro.items()), flush=True)
        bare_server = (f"http://127.0.0.1:{bare_port}", bare.pid)
        cells = await measure(args, triton, prompt, gateway_url, gateway.pid, bare_server, compared)
        graphs = await flame_graphs(args, triton, workdir) if args.profile else []
        held = None
        if args.open_streams:
            print(f"holding {args.open_streams} streams open", flush=True)
            held = await hold_open_streams(args, gateway_url, gateway.pid)
        peak = peak_rss_bytes(gateway.pid) / 2**20
    finally:
        for process in processes:
            process.terminate()
            process.wait(30)
        await asyncio.to_thread(triton.stop)
        shutil.rmtree(workdir, ignore_errors=True)
    return {
        "settings": {
            "tokens": args.tokens,
            "token_delays_ms": delays(args),
            "seconds_per_cell": args.seconds,
            "rounds": args.rounds,
            "model_instances": args.model_instances,
            "gateway_flags": args.gateway_flags,
            "compare_flags": args.compare_flags,
            "compare_source": str(args.compare_source or ""),
            "compare_label": args.compare_label,
        },
        "sse_micro": {name: round(rate) for name, rate in micro.items()},
        "cells": [cell.as_dict() for cell in cells],
        "ratios": report.ratios(cells),
        "compared": report.compared(cells, args.compare_label),
        "open_streams": held,
        "flame_graphs": graphs,
        "gateway_peak_rss_mib": peak,
    }


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    with asyncio.Runner(loop_factory=new_event_loop) as runner:
        result = runner.run(main_async(args))
    print()
    print(report.write(result, args.output))
    print(f"results in {args.output}/bench.json, bench.md, bench.png")


if __name__ == "__main__":
    main()
