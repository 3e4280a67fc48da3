"""A burst of new connections while the gateway is too busy to accept them: the kernel's
listen backlog (--backlog) holds them, and every one is served once the gateway gets to it.

The gateway is stopped (SIGSTOP) for the burst, so only the kernel answers: a connection
completes its handshake only if the listening socket's queue has room for it. Past the
queue the kernel drops the SYN, the client waits for its retry (a second, then three) and,
under a long burst, is reset."""

from __future__ import annotations

import select
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.conftest import spawn_gateway, stop_process

BURST = 300  # past the 100 that asyncio's create_server queues by default


@contextmanager
def burst_while_stopped(
    process: subprocess.Popen[bytes], url: str, count: int, within: float
) -> Iterator[tuple[list[socket.socket], int]]:
    """`count` connections opened at once while `process` is stopped, so only the kernel
    answers: (all the sockets, how many completed their handshake within `within` seconds),
    given once the process runs again. The sockets are closed on leaving."""
    host, port = url.removeprefix("http://").split(":")
    sockets: list[socket.socket] = []
    try:
        process.send_signal(signal.SIGSTOP)
        try:
            for _ in range(count):
                sock = socket.socket()
                sockets.append(sock)
                sock.setblocking(False)
                sock.connect_ex((host, int(port)))
            pending = set(sockets)
            deadline = time.monotonic() + within
            while pending and (left := deadline - time.monotonic()) > 0:
                _, writable, _ = select.select([], list(pending), [], left)
                pending.difference_update(writable)
        finally:
            process.send_signal(signal.SIGCONT)
        connected = sum(
            1 for sock in sockets if sock not in pending and not sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        )
        yield sockets, connected
    finally:
        for sock in sockets:
            sock.close()


def answered(sock: socket.socket) -> bool:
    sock.setblocking(True)
    sock.settimeout(20)
    sock.sendall(b"GET /health/live HTTP/1.1\r\nHost: gateway\r\nConnection: close\r\n\r\n")
    return sock.recv(65536).startswith(b"HTTP/1.1 200")


@pytest.mark.timeout(120)
def test_a_burst_past_asyncios_default_backlog_is_held_and_served(triton, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    process, url = spawn_gateway(triton.grpc_url, tmp_path)  # the default --backlog
    try:
        with burst_while_stopped(process, url, BURST, within=2.0) as (sockets, connected):
            assert connected == BURST
            assert all(answered(sock) for sock in sockets)
    finally:
        stop_process(process)


@pytest.mark.timeout(120)
def test_the_backlog_flag_sizes_the_queue(triton, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    process, url = spawn_gateway(triton.grpc_url, tmp_path, "--backlog=20")
    try:
        with burst_while_stopped(process, url, 100, within=0.5) as (_, connected):  # before the first SYN retry
            assert 20 <= connected < 40  # the kernel takes its limit plus one
    finally:
        stop_process(process)
