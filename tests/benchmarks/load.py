"""Closed-loop load: N workers each send a request, consume it to the end, and repeat.

Three clients consume the same streams: straight from Triton over gRPC (the ceiling), and
through the gateway, streamed (SSE) and not. Each records when the request started, when each
token arrived and when it ended.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import resource
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
from tritonclient.grpc import service_pb2 as pb

from gateway.triton import tensors
from gateway.triton.client import TritonClient

_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


@dataclass
class Timing:
    start: float
    end: float = 0.0
    token_times: list[float] = field(default_factory=list)
    tokens: int = 0
    error: str | None = None

    def chunks_between(self, start: float, end: float) -> int:
        return sum(1 for at in self.token_times if start <= at < end)

    def tokens_between(self, start: float, end: float) -> int:
        """The tokens that arrived in [start, end): each at its own time when streamed, all at
        the end otherwise."""
        if len(self.token_times) == self.tokens:
            return self.chunks_between(start, end)
        return self.tokens if start <= self.end < end else 0


@dataclass
class Cell:
    """The outcome of one (mode, concurrency) run."""

    mode: str
    concurrency: int
    seconds: float
    requests: int
    errors: int
    tokens: int
    chunks: int
    ttft_ms: tuple[float, float]  # p50, p99
    itl_ms: tuple[float, float]
    e2e_ms: float  # p50
    gateway_cpu_seconds: float | None = None
    # This process's: for the direct client the floor, for the gateway's the load generator's
    # (it shares the machine with what it measures).
    client_cpu_seconds: float | None = None
    kernel_cpu_seconds: float | None = None  # of the gateway's or the direct client's: system time
    delay_ms: float = 0.0
    round: int = 0  # of --rounds: the cells measured beside each other

    @property
    def tokens_per_second(self) -> float:
        return self.tokens / self.seconds if self.seconds else 0.0

    @property
    def requests_per_second(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    @property
    def cpu_us_per_chunk(self) -> float | None:
        if self.gateway_cpu_seconds is None or not self.chunks:
            return None
        return self.gateway_cpu_seconds / self.chunks * 1e6

    @property
    def client_cpu_us_per_chunk(self) -> float | None:
        """The client's CPU per chunk: for the direct client, per response read, what any
        Python client of these streams spends (the floor of a gateway's cost)."""
        if self.client_cpu_seconds is None or not self.chunks:
            return None
        return self.client_cpu_seconds / self.chunks * 1e6

    @property
    def kernel_cpu_us_per_chunk(self) -> float | None:
        """The system-time part of the CPU per chunk (socket reads and writes, mostly)."""
        if self.kernel_cpu_seconds is None or not self.chunks:
            return None
        return self.kernel_cpu_seconds / self.chunks * 1e6

    def as_dict(self) -> dict[str, object]:
        return {
            "delay_ms": self.delay_ms,
            "round": self.round,
            "mode": self.mode,
            "concurrency": self.concurrency,
            "seconds": round(self.seconds, 3),
            "requests": self.requests,
            "errors": self.errors,
            "tokens": self.tokens,
            "tokens_per_s": round(self.tokens_per_second, 1),
            "requests_per_s": round(self.requests_per_second, 2),
            "ttft_p50_ms": round(self.ttft_ms[0], 3),
            "ttft_p99_ms": round(self.ttft_ms[1], 3),
            "itl_p50_ms": round(self.itl_ms[0], 3),
            "itl_p99_ms": round(self.itl_ms[1], 3),
            "e2e_p50_ms": round(self.e2e_ms, 3),
            "gateway_cpu_us_per_chunk": None if self.cpu_us_per_chunk is None else round(self.cpu_us_per_chunk, 2),
            "client_cpu_us_per_chunk": None
            if self.client_cpu_us_per_chunk is None
            else round(self.client_cpu_us_per_chunk, 2),
            "kernel_cpu_us_per_chunk": None
            if self.kernel_cpu_us_per_chunk is None
            else round(self.kernel_cpu_us_per_chunk, 2),
        }


def percentile(values: list[float], fraction: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def children(pid: int) -> list[int]:
    """The processes `pid` started that are still running (none once it has gone)."""
    with contextlib.suppress(FileNotFoundError):
        return [int(child) for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    return []


def process_tree(pid: int) -> list[int]:
    """`pid` and its descendants (the workers of a `--workers N` gateway)."""
    tree = [pid]
    for member in tree:
        tree += children(member)
    return tree


def process_cpu(pid: int) -> tuple[float, float]:
    """(user, system) CPU time of `pid` and its live descendants."""
    user = system = 0
    for member in process_tree(pid):
        with contextlib.suppress(FileNotFoundError), open(f"/proc/{member}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
            user += int(fields[11])
            system += int(fields[12])
    return user / _CLOCK_TICKS, system / _CLOCK_TICKS


def own_cpu() -> tuple[float, float]:
    """(user, system) CPU time of this process: getrusage's, which Linux keeps to the
    microsecond (os.times counts clock ticks, 10 ms, more than a short cell's load client spends)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime, usage.ru_stime


def peak_rss_bytes(pid: int) -> int:
    """The summed peak RSS of `pid` and its descendants."""
    total = 0
    for member in process_tree(pid):
        with contextlib.suppress(FileNotFoundError), open(f"/proc/{member}/status") as status:
            total += next((int(line.split()[1]) * 1024 for line in status if line.startswith("VmHWM:")), 0)
    return total


async def run_cell(
    mode: str,
    one_request: Callable[[], Awaitable[Timing]],
    concurrency: int,
    seconds: float,
    warmup: float,
    gateway_pid: int | None,
) -> Cell:
    """Keep `concurrency` requests in flight for warmup + seconds. Throughput and CPU are
    both taken over the same window, the measured seconds: the tokens, chunks and requests
    that arrived or ended in it, whichever request they belong to (at high concurrency a
    request can last longer than the window, so counting whole requests started in it would
    leave out most of the work the CPU was spent on). Latencies come from the requests started
    in the window. This process's own CPU is measured too (with no gateway, that of the direct
    client); the kernel time is the gateway's, else ours."""
    started = time.perf_counter()
    measure_from = started + warmup
    deadline = measure_from + seconds
    every: list[Timing] = []
    # (user, system) at the window's start and end: the gateway's (if any), then ours
    cpu = [((0.0, 0.0), (0.0, 0.0))] * 2

    async def worker() -> None:
        while time.perf_counter() < deadline:
            every.append(await one_request())

    def mark(index: int) -> None:
        ours = own_cpu()
        cpu[index] = (process_cpu(gateway_pid) if gateway_pid is not None else ours, ours)

    async def mark_window() -> None:
        await asyncio.sleep(warmup)
        mark(0)
        await asyncio.sleep(max(0.0, deadline - time.perf_counter()))
        mark(1)

    marker = asyncio.create_task(mark_window())
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    await marker
    (measured_before, ours_before), (measured_after, ours_after) = cpu
    spent = sum(measured_after) - sum(measured_before)
    answered = [t for t in every if t.error is None]
    timings = [t for t in every if t.start >= measure_from]
    ok = [t for t in timings if t.error is None]
    ttft = [(t.token_times[0] - t.start) * 1e3 for t in ok if t.token_times]
    gaps = [(b - a) * 1e3 for t in ok for a, b in zip(t.token_times, t.token_times[1:])]
    return Cell(
        mode=mode,
        concurrency=concurrency,
        seconds=seconds,
        requests=sum(1 for t in answered if measure_from <= t.end < deadline),
        errors=len(timings) - len(ok),
        tokens=sum(t.tokens_between(measure_from, deadline) for t in answered),
        chunks=sum(t.chunks_between(measure_from, deadline) for t in answered),
        ttft_ms=(percentile(ttft, 0.5), percentile(ttft, 0.99)),
        itl_ms=(percentile(gaps, 0.5), percentile(gaps, 0.99)),
        e2e_ms=percentile([(t.end - t.start) * 1e3 for t in ok], 0.5),
        gateway_cpu_seconds=spent if gateway_pid is not None else None,
        client_cpu_seconds=sum(ours_after) - sum(ours_before),
        kernel_cpu_seconds=measured_after[1] - measured_before[1],
    )


def triton_request(model: str, prompt: str, tokens: int) -> pb.ModelInferRequest:
    """The streamed vLLM request the gateway sends for the bench's chat (what the direct client
    and the bare server send as they are)."""
    request = pb.ModelInferRequest(model_name=model)
    inputs = [
        ("text_input", "BYTES", tensors.encode_one_bytes(prompt.encode())),
        ("stream", "BOOL", b"\x01"),
        ("sampling_parameters", "BYTES", tensors.encode_one_bytes(json.dumps({"max_tokens": tokens}).encode())),
        ("exclude_input_in_output", "BOOL", b"\x01"),
        ("return_finish_reason", "BOOL", b"\x01"),
        ("return_num_input_tokens", "BOOL", b"\x01"),
        ("return_num_output_tokens", "BOOL", b"\x01"),
    ]
    for name, datatype, raw in inputs:
        request.inputs.add(name=name, datatype=datatype, shape=[1])
        request.raw_input_contents.append(raw)
    return request


class DirectClient:
    """Triton's gRPC API with the request the gateway would send (the ceiling)."""

    def __init__(self, url: str, model: str, prompt: str, tokens: int) -> None:
        self._client = TritonClient(url)
        self._template = triton_request(model, prompt, tokens)
        self._count = 0

    async def one(self) -> Timing:
        self._count += 1
        request = pb.ModelInferRequest()
        request.CopyFrom(self._template)
        request.id = f"direct-{self._count}"
        timing = Timing(start=time.perf_counter())
        try:
            async with self._client.stream(request) as responses:
                async for response in responses:
                    if response.raw_output_contents and tensors.decode_first_bytes(response.raw_output_contents[0]):
                        timing.token_times.append(time.perf_counter())
                        timing.tokens += 1
        except Exception as exc:  # noqa: BLE001 - counted, not raised
            timing.error = repr(exc)
        timing.end = time.perf_counter()
        return timing

    async def close(self) -> None:
        await self._client.close()


class GatewayClient:
    """The gateway's chat endpoint, not streamed, through one aiohttp session (streamed:
    stream_client.StreamClient)."""

    def __init__(self, base_url: str, body: bytes, connections: int) -> None:
        self._url = f"{base_url}/v1/chat/completions"
        self._plain_body = body
        connector = aiohttp.TCPConnector(limit=connections, limit_per_host=connections)
        self._session = aiohttp.ClientSession(
            connector=connector, headers={"Content-Type": "application/json"}, timeout=aiohttp.ClientTimeout(total=None)
        )

    async def one_plain(self) -> Timing:
        timing = Timing(start=time.perf_counter())
        try:
            async with self._session.post(self._url, data=self._plain_body) as response:
                body = await response.read()
                if response.status != 200:
                    timing.error = f"HTTP {response.status}"
                else:
                    timing.token_times.append(time.perf_counter())
                    timing.tokens = json.loads(body)["usage"]["completion_tokens"]
        except Exception as exc:  # noqa: BLE001 - counted, not raised
            timing.error = repr(exc)
        timing.end = time.perf_counter()
        return timing

    async def close(self) -> None:
        await self._session.close()
