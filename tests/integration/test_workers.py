"""`--workers N`: N processes on one port, metrics added up, a dead worker replaced, and
SIGTERM stopping them all."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import time
import urllib.request
from pathlib import Path

import httpx

from gateway.localtriton import LocalTriton
from tests.conftest import spawn_gateway, stop_process, user


def children(pid: int) -> set[int]:
    """The worker processes of supervisor `pid` (not multiprocessing's resource tracker)."""
    workers = set()
    for part in Path(f"/proc/{pid}/task/{pid}/children").read_text().split():
        with contextlib.suppress(FileNotFoundError):  # it may have just exited
            if b"spawn_main" in Path(f"/proc/{part}/cmdline").read_bytes():
                workers.add(int(part))
    return workers


def wait_for(check, timeout: float = 60.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.2)
    raise AssertionError("condition not reached in time")


def listening(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/health/live", timeout=1):
            return True
    except OSError:
        return False


def chat_requests(url: str, count: int) -> None:
    body = {"model": "vllm_model", "messages": user("hello workers"), "max_tokens": 4}
    for _ in range(count):
        with httpx.Client(base_url=url, timeout=30) as client:  # a new connection each time
            assert client.post("/v1/chat/completions", json=body).status_code == 200


def test_workers_share_the_port(triton: LocalTriton, tmp_path: Path) -> None:
    process, url = spawn_gateway(triton.grpc_url, tmp_path, "--workers=2", "--shutdown-timeout=2")
    try:
        wait_for(lambda: len(children(process.pid)) == 2)
        workers = children(process.pid)
        chat_requests(url, 12)
        # Whichever worker answers /metrics, it counts the requests of both.
        metrics = httpx.get(f"{url}/metrics").text
        served = re.search(
            r'^gateway_requests_total\{model="vllm_model",route="/v1/chat/completions",status="200"\} (\S+)$',
            metrics,
            re.MULTILINE,
        )
        assert served is not None and float(served.group(1)) == 12.0

        # A worker that dies is replaced; the port keeps answering meanwhile.
        lost = min(workers)
        os.kill(lost, signal.SIGKILL)
        chat_requests(url, 3)
        wait_for(lambda: len(children(process.pid)) == 2 and lost not in children(process.pid))
        replacement = (children(process.pid) - workers).pop()
        wait_for(lambda: listening(url))
        chat_requests(url, 3)

        assert stop_process(process) == 0
        assert not any(Path(f"/proc/{pid}").exists() for pid in workers | {replacement})
    finally:
        stop_process(process)
