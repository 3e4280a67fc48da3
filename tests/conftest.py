"""Shared fixtures: a real tritonserver per test session, the gateway in-process (aiohttp
test client) and as a subprocess (for the openai SDK and signal handling)."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from tritonclient.grpc import service_pb2 as pb

from gateway.app import create_app
from gateway.demo import stand_in_triton
from gateway.generation import SAMPLING_FIELDS, GenerationRequest, Sampling
from gateway.localtriton import LocalTriton, free_port
from gateway.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
MODEL_REPOSITORY = ROOT / "tests" / "model_repository"
TOKENIZER_DIR = ROOT / "standin" / "tokenizer"
GUIDED_LEGACY = "vllm_guided_legacy=guided_decoding"  # an r25.01-r25.10 vLLM model
LORA_SEPARATOR = "::"
TOOL_PARSERS = ("hermes", "ensemble=mistral", "tensorrt_llm_bls=llama3", "vllm_legacy=llama3")
REASONING_PARSERS = ("vllm_reasoning=deepseek_r1",)


@pytest.fixture(scope="session", autouse=True)
def response_store_path(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Every gateway of the session, in-process or spawned, keeps stored responses here (not in
    the user's home): spawned ones read GATEWAY_RESPONSE_STORE from the environment."""
    path = tmp_path_factory.mktemp("responses") / "responses.db"
    before = os.environ.get("GATEWAY_RESPONSE_STORE")
    os.environ["GATEWAY_RESPONSE_STORE"] = f"sqlite:{path}"
    yield path
    if before is None:
        del os.environ["GATEWAY_RESPONSE_STORE"]
    else:
        os.environ["GATEWAY_RESPONSE_STORE"] = before


@pytest.fixture(scope="session")
def triton() -> Iterator[LocalTriton]:
    """A real tritonserver with tests/model_repository, shared by the whole session."""
    server = stand_in_triton(MODEL_REPOSITORY)
    with server.running():
        yield server


@pytest.fixture(scope="session")
def tokenizer():  # type: ignore[no-untyped-def]
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(TOKENIZER_DIR))


@pytest.fixture
def settings(triton: LocalTriton, response_store_path: Path) -> Settings:
    return Settings(
        response_store=f"sqlite:{response_store_path}",
        triton_url=triton.grpc_url,
        host="127.0.0.1",
        tokenizer=(str(TOKENIZER_DIR),),
        default_max_tokens=64,
        model_refresh_interval=0.5,
        structured_outputs_key=(GUIDED_LEGACY,),
        tool_call_parser=TOOL_PARSERS,
        reasoning_parser=REASONING_PARSERS,
        lora_separator=LORA_SEPARATOR,
        model_repository=MODEL_REPOSITORY,
        lora_modules=("vllm_slow:extra=/adapters/extra",),
    )


@pytest.fixture
async def client(aiohttp_client: Callable, settings: Settings) -> AsyncIterator[TestClient]:
    """The gateway in-process, against the session's tritonserver."""
    yield await aiohttp_client(create_app(settings))


def wait_for_http(url: str, process: subprocess.Popen[bytes], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"process exited with {process.returncode} before {url} answered")
        try:
            with urllib.request.urlopen(url, timeout=1):
                return
        except OSError:
            time.sleep(0.1)
    raise TimeoutError(f"{url} did not answer within {timeout}s")


def stop_process(process: subprocess.Popen[bytes], sig: int = signal.SIGTERM, timeout: float = 30.0) -> int:
    if process.poll() is None:
        process.send_signal(sig)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    return process.returncode


def gateway_command(triton_url: str, port: int, *flags: str) -> list[str]:
    """`python -m gateway` on loopback with the demo tokenizer, plus `flags`."""
    return [
        sys.executable,
        "-m",
        "gateway",
        f"--triton-url={triton_url}",
        "--host=127.0.0.1",
        f"--openai-port={port}",
        f"--tokenizer={TOKENIZER_DIR}",
        *flags,
    ]


def spawn_gateway(triton_url: str, log_dir: Path, *flags: str) -> tuple[subprocess.Popen[bytes], str]:
    """Start `python -m gateway` on a free port and wait until it answers; (process, base URL)."""
    port = free_port()
    with open(log_dir / f"gateway-{port}.log", "wb") as log:
        process = subprocess.Popen(gateway_command(triton_url, port, *flags), stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for_http(f"{url}/health/live", process)
    except Exception:
        stop_process(process)
        raise
    return process, url


@contextlib.contextmanager
def explicit_triton(*models: str) -> Iterator[LocalTriton]:
    """A tritonserver in explicit model-control mode with only `models` loaded."""
    server = stand_in_triton(MODEL_REPOSITORY, model_control_mode="explicit", load_models=models)
    with server.running():
        yield server


@pytest.fixture(scope="session")
def gateway_log(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where `gateway_process` writes its log."""
    return tmp_path_factory.mktemp("gateway") / "gateway.log"


@pytest.fixture(scope="session")
def gateway_process(triton: LocalTriton, gateway_log: Path) -> Iterator[str]:
    """`python -m gateway` as users run it; yields its base URL."""
    port = free_port()
    log_path = gateway_log
    parsers = [f"--tool-call-parser={parser}" for parser in TOOL_PARSERS]
    parsers += [f"--reasoning-parser={parser}" for parser in REASONING_PARSERS]
    command = gateway_command(
        triton.grpc_url, port, "--default-max-tokens=64", f"--structured-outputs-key={GUIDED_LEGACY}", *parsers
    )
    with open(log_path, "wb") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=dict(os.environ))
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for_http(f"{url}/health/live", process)
        yield url
    finally:
        stop_process(process)


async def sse_events(response) -> list:  # type: ignore[no-untyped-def]
    """The `data:` payloads of an SSE response: decoded JSON objects, and "[DONE]"."""
    import json

    assert response.headers["Content-Type"].startswith("text/event-stream")
    events = []
    async for raw_line in response.content:
        line = raw_line.decode().rstrip("\n")
        if not line:
            continue
        assert line.startswith("data: "), line
        payload = line[len("data: ") :]
        events.append(payload if payload == "[DONE]" else json.loads(payload))
    return events


def user(text: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": text}]


class WordTokenizer:
    """A stand-in for a model's tokenizer in unit tests: one token per word."""

    def count_tokens(self, text: str) -> int:
        return len(text.split())

    def prompt_tokens(self, text: str) -> int:
        return self.count_tokens(text)

    def vocab_size(self) -> int:
        return 1000

    def text_input(self, prompt: str) -> str:
        return prompt

    def decode_prompt(self, token_ids: list[int]) -> str:
        return self.decode(token_ids)

    def decode(self, token_ids: list[int]) -> str:
        return " ".join(f"w{token}" for token in token_ids)

    def round_trip(self, text: str) -> str:
        return text.replace("<s>", "")

    def token_pieces(self, text: str) -> list[str]:
        return re.findall(r"\s*\S+|\s+", text)


def generation_request(**overrides: Any) -> GenerationRequest:
    """A GenerationRequest; sampling fields may be given flat (temperature=0.5)."""
    sampling = {name: overrides.pop(name) for name in SAMPLING_FIELDS if name in overrides}
    values: dict[str, Any] = {"request_id": "r1", "prompt": "hi", "stream": True, "max_tokens": 8}
    values.update(overrides)
    return GenerationRequest(**values, sampling=Sampling(**sampling))


def inputs_of(message: pb.ModelInferRequest) -> dict[str, tuple[str, list[int], bytes]]:
    """A built request's inputs: name -> (datatype, shape, raw contents)."""
    return {
        tensor.name: (tensor.datatype, list(tensor.shape), raw)
        for tensor, raw in zip(message.inputs, message.raw_input_contents, strict=True)
    }


@pytest.fixture
def schema_server() -> Iterator[tuple[str, list[str]]]:
    """An HTTP server on 127.0.0.1 that would serve a JSON schema: its URL and the paths asked
    for (a schema check must never fetch one)."""
    import http.server
    import threading

    requested: list[str] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            requested.append(self.path)
            self.send_response(200)
            self.end_headers()
            self.wfile.write(b'{"type": "integer"}')

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/schema.json", requested
    server.shutdown()
    thread.join()
