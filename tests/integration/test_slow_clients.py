"""Slow, silent and greedy clients against a real gateway process: dribbled headers and
bodies, idle keep-alive connections, the connection cap, and streams nobody reads."""

from __future__ import annotations

import json
import socket
import time
import uuid
from collections.abc import Iterator
from contextlib import closing

import httpx
import pytest

from tests.conftest import spawn_gateway, stop_process, user

CHAT = {"model": "vllm_model", "messages": user("Hello there"), "temperature": 0, "max_tokens": 8}


@pytest.fixture(scope="module")
def strict_gateway(triton, tmp_path_factory) -> Iterator[str]:  # type: ignore[no-untyped-def]
    process, url = spawn_gateway(
        triton.grpc_url,
        tmp_path_factory.mktemp("slow-clients"),
        "--max-concurrent-requests=4",
        "--header-read-timeout=2",
        "--body-read-timeout=3",
        "--keepalive-timeout=2",
        "--max-connections=12",
        "--stream-stall-timeout=2",
    )
    try:
        yield url
    finally:
        stop_process(process)


def connect(url: str) -> socket.socket:
    host, port = url.removeprefix("http://").split(":")
    sock = socket.create_connection((host, int(port)), timeout=20)
    return sock


def closed_by_server(sock: socket.socket, within: float) -> bool:
    """True when the server closes the connection (or resets it) within `within` seconds."""
    sock.settimeout(within)
    try:
        while sock.recv(65536):
            pass
    except TimeoutError:
        return False
    except ConnectionResetError:
        return True
    return True


def test_dribbled_headers_are_cut_off(strict_gateway) -> None:  # type: ignore[no-untyped-def]
    with closing(connect(strict_gateway)) as sock:
        started = time.monotonic()
        request = b"GET /health/live HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 100
        try:
            for byte in request:
                sock.send(bytes([byte]))
                time.sleep(0.1)
                if time.monotonic() - started > 4:
                    break
        except (BrokenPipeError, ConnectionResetError):
            return  # hung up on while still sending: what the test wants
        # Still sending headers 2 s after the first byte: the server has hung up (a send may
        # fail, or the read sees the end).
        assert closed_by_server(sock, within=5)


def test_idle_keep_alive_connections_are_closed(strict_gateway) -> None:  # type: ignore[no-untyped-def]
    with closing(connect(strict_gateway)) as sock:
        sock.sendall(b"GET /health/live HTTP/1.1\r\nHost: x\r\n\r\n")
        sock.settimeout(5)
        assert sock.recv(65536).startswith(b"HTTP/1.1 200")
        assert closed_by_server(sock, within=6)  # --keepalive-timeout 2


def dribbling_body(url: str) -> socket.socket:
    """A chat request whose headers promise a body that then comes one byte at a time."""
    sock = connect(url)
    body = json.dumps(CHAT).encode()
    sock.sendall(
        b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        + f"Content-Length: {len(body) + 1000}\r\n\r\n".encode()
        + body[:1]
    )
    return sock


def test_dribbling_bodies_hold_no_slot_and_time_out(strict_gateway) -> None:  # type: ignore[no-untyped-def]
    dribblers = [dribbling_body(strict_gateway) for _ in range(4)]  # as many as --max-concurrent-requests
    try:
        for _ in range(5):
            for sock in dribblers:
                sock.send(b" ")
            time.sleep(0.1)
        # A legitimate request is served while the four are still sending their bodies.
        response = httpx.post(f"{strict_gateway}/v1/chat/completions", json=CHAT, timeout=20)
        assert response.status_code == 200, response.text
        # Past --body-read-timeout each dribbler gets a 408 envelope.
        for sock in dribblers:
            sock.settimeout(10)
            answer = sock.recv(65536)
            assert answer.startswith(b"HTTP/1.1 408"), answer[:200]
            assert b'"code":"request_timeout"' in answer
    finally:
        for sock in dribblers:
            sock.close()


def test_connections_past_the_cap_are_refused(strict_gateway) -> None:  # type: ignore[no-untyped-def]
    held = [connect(strict_gateway) for _ in range(12)]
    try:
        time.sleep(0.3)
        with closing(connect(strict_gateway)) as extra:
            extra.settimeout(5)
            answer = extra.recv(65536)
            assert answer.startswith(b"HTTP/1.1 503") and b'"code":"overloaded"' in answer
    finally:
        for sock in held:
            sock.close()
    time.sleep(0.3)
    assert httpx.get(f"{strict_gateway}/health/live", timeout=5).status_code == 200  # room again


def stalled_stream(url: str, request_id: str, choices: int) -> socket.socket:
    """A streamed chat request from a client that will never read its answer."""
    body = json.dumps(
        {
            "model": "vllm_model",
            "messages": user("fill the pipe"),
            "stream": True,
            "max_tokens": 200,
            "n": choices,
            "ignore_eos": True,
            "logprobs": True,
            "top_logprobs": 20,  # about 2 KB a chunk: the socket buffers fill fast
        }
    ).encode()
    host, port = url.removeprefix("http://").split(":")
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # before connecting: a small window
    sock.connect((host, int(port)))
    sock.sendall(
        b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        + f"X-Request-Id: {request_id}\r\nContent-Length: {len(body)}\r\n\r\n".encode()
        + body
    )
    return sock


def cancelled_on_triton(triton, request_ids: list[str], within: float) -> set[str]:  # type: ignore[no-untyped-def]
    """The ids among `request_ids` whose Triton requests were cancelled within `within` s."""
    deadline = time.monotonic() + within
    while True:
        log = triton.read_log()
        done = {request_id for request_id in request_ids if f"Cancelling the request {request_id}" in log}
        if done == set(request_ids) or time.monotonic() > deadline:
            return done
        time.sleep(0.2)


def test_a_stream_nobody_reads_is_cancelled_on_triton(strict_gateway, triton) -> None:  # type: ignore[no-untyped-def]
    request_id = f"stalled-{uuid.uuid4().hex}"
    with closing(stalled_stream(strict_gateway, request_id, choices=48)) as sock:
        # Never read. Within the stall timeout (plus its check interval) Triton is told to stop.
        assert cancelled_on_triton(triton, [request_id], within=30) == {request_id}
        assert closed_by_server(sock, within=10)  # and the connection is dropped
    assert httpx.post(f"{strict_gateway}/v1/chat/completions", json=CHAT, timeout=20).status_code == 200


def test_many_streams_nobody_reads_do_not_pile_up(strict_gateway, triton) -> None:  # type: ignore[no-untyped-def]
    """Stalled clients at once, as many as --max-concurrent-requests, 96 Triton requests in all
    (Triton 2.51 was seen to crash when dozens of such streams were dropped together after a
    minute): each is cancelled after the stall timeout, and the slots are free again."""
    request_ids = [f"stalled-many-{index}-{uuid.uuid4().hex}" for index in range(4)]
    sockets = [stalled_stream(strict_gateway, request_id, choices=24) for request_id in request_ids]
    try:
        assert cancelled_on_triton(triton, request_ids, within=40) == set(request_ids)
    finally:
        for sock in sockets:
            sock.close()
    assert httpx.post(f"{strict_gateway}/v1/chat/completions", json=CHAT, timeout=20).status_code == 200
