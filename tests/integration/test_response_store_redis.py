"""Stored responses shared by two gateway processes through a real redis-server (started here
on a free loopback port): a response made on one replica is retrieved, continued and deleted
on the other; with Redis gone, reads are a clear 503 and new answers still go out, marked
unstored; once Redis is back, so is the store."""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import openai
import pytest

from gateway.localtriton import LocalTriton, free_port
from tests.conftest import spawn_gateway, stop_process

MODEL = "vllm_model"


class RedisServer:
    def __init__(self, directory: Path) -> None:
        self.port = free_port()
        self.directory = directory
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        binary = shutil.which("redis-server") or "/usr/bin/redis-server"
        command = [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
        log = open(self.directory / f"redis-{self.port}.log", "ab")  # noqa: SIM115 - the server keeps it
        self.process = subprocess.Popen([*command, "--dir", str(self.directory)], stdout=log, stderr=log)
        for _ in range(100):
            ready = subprocess.run(
                ["redis-cli", "-p", str(self.port), "ping"], capture_output=True, text=True, check=False, timeout=5
            )
            if ready.stdout.strip() == "PONG":
                return
            time.sleep(0.1)
        raise RuntimeError("redis-server did not answer")

    def stop(self) -> None:
        if self.process is not None:
            stop_process(self.process)
            self.process = None


@pytest.fixture
def redis(tmp_path: Path) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def replicas(triton: LocalTriton, redis: RedisServer, tmp_path: Path) -> Iterator[list[openai.OpenAI]]:
    processes = []
    clients = []
    try:
        for _ in range(2):
            process, url = spawn_gateway(
                triton.grpc_url, tmp_path, f"--response-store={redis.url}", "--api-key=key-one"
            )
            processes.append(process)
            clients.append(openai.OpenAI(base_url=f"{url}/v1", api_key="key-one", max_retries=0))
        yield clients
    finally:
        for client in clients:
            client.close()
        for process in processes:
            stop_process(process)


def test_replicas_share_stored_responses(replicas: list[openai.OpenAI], redis: RedisServer) -> None:
    one, two = replicas
    first = one.responses.create(model=MODEL, input="My name is Ada", temperature=0)
    assert two.responses.retrieve(first.id).output_text == first.output_text == "You said: My name is Ada"
    second = two.responses.create(model=MODEL, input="And now?", previous_response_id=first.id, temperature=0)
    items = one.responses.input_items.list(second.id, order="asc")
    assert [item.role for item in items.data] == ["user", "assistant", "user"]  # type: ignore[union-attr]
    ttl = subprocess.run(
        ["redis-cli", "-p", str(redis.port), "ttl", f"triton-openai-gateway:response:{first.id}"],
        capture_output=True,
        text=True,
        check=True,
        timeout=5,
    )
    assert 0 < int(ttl.stdout) <= 30 * 24 * 3600  # every record expires
    two.responses.delete(first.id)
    with pytest.raises(openai.NotFoundError):
        one.responses.retrieve(first.id)


def test_without_redis_reads_fail_clearly_and_answers_still_go_out(
    replicas: list[openai.OpenAI], redis: RedisServer
) -> None:
    one, _ = replicas
    kept = one.responses.create(model=MODEL, input="before", temperature=0)
    redis.stop()
    with pytest.raises(openai.APIStatusError) as failed:
        one.responses.retrieve(kept.id)
    assert failed.value.status_code == 503
    assert failed.value.body["code"] == "response_store_unavailable"  # type: ignore[index]
    assert "127.0.0.1" not in failed.value.message and str(redis.port) not in failed.value.message
    answer = one.responses.create(model=MODEL, input="during", temperature=0)
    assert answer.output_text == "You said: during" and answer.store is False
    redis.start()  # an empty Redis on the same port
    with pytest.raises(openai.NotFoundError):
        one.responses.retrieve(kept.id)
    again = one.responses.create(model=MODEL, input="after", temperature=0)
    assert again.store is True and one.responses.retrieve(again.id).output_text == "You said: after"
