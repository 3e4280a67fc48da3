"""Start-up problems end the gateway with one line that names the fix, not a traceback."""

from __future__ import annotations

import os
import socket
import subprocess
import sys

import pytest

from tests.conftest import TOKENIZER_DIR, free_port


def start(*flags: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "gateway", "--host=127.0.0.1", "--triton-url=127.0.0.1:1", *flags]
    environment = {**os.environ, **(env or {})}
    return subprocess.run(command, capture_output=True, text=True, timeout=60, env=environment, check=False)


def last_line(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode != 0
    assert "Traceback" not in result.stderr and "Unclosed" not in result.stderr, result.stderr
    return result.stderr.strip().splitlines()[-1]


@pytest.mark.parametrize("flag", ["--openai-port", "--kserve-grpc-port"])
def test_a_port_in_use_names_the_flag_to_change(flag: str) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        ports = {"--openai-port": port, "--kserve-grpc-port": free_port()} | {flag: port}
        flags = [
            f"--tokenizer={TOKENIZER_DIR}",
            "--enable-kserve-frontends",
            *(f"{name}={value}" for name, value in ports.items()),
        ]
        line = last_line(start(*flags))
    assert line.startswith("triton-openai-gateway: cannot listen on 127.0.0.1:") and flag in line


@pytest.mark.parametrize(
    "env",
    [
        {"HF_HUB_OFFLINE": "1"},  # offline: only the local cache
        {"HF_ENDPOINT": "http://127.0.0.1:9"},  # a Hub that does not answer (nothing listens on port 9)
    ],
)
def test_a_tokenizer_that_cannot_be_loaded_fails_at_once_naming_it(env: dict[str, str]) -> None:
    line = last_line(start("--openai-port=0", "--tokenizer=no-such-org/no-such-model", env=env))
    assert "the tokenizer 'no-such-org/no-such-model' could not be loaded" in line and "--tokenizer" in line
