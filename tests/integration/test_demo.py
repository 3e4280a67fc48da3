"""`make run` (python -m gateway.demo): starts tritonserver and the gateway, the README's
examples work against it, and a signal stops both processes."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from gateway.localtriton import free_port
from tests.conftest import ROOT, stop_process

README = (ROOT / "README.md").read_text()


def readme_blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", README, flags=re.DOTALL)


def children_of(pid: int) -> list[int]:
    children: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        text = (task / "children").read_text().split()
        children += [int(child) for child in text]
    return children


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"


class Demo:
    def __init__(self) -> None:
        self.port, self.kserve_port = free_port(), free_port()
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "gateway.demo",
                "--openai-port",
                str(self.port),
                "--kserve-grpc-port",
                str(self.kserve_port),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            env=dict(os.environ),
        )
        self.output: list[str] = []
        deadline = time.monotonic() + 120
        assert self.process.stdout is not None
        while time.monotonic() < deadline:
            line = self.process.stdout.readline().decode()
            if not line:
                raise AssertionError("demo exited early:\n" + "".join(self.output))
            self.output.append(line)
            if line.startswith("Gateway ready:"):
                return
        raise AssertionError("demo did not become ready:\n" + "".join(self.output))

    def localize(self, snippet: str) -> str:
        return snippet.replace("127.0.0.1:9000", f"127.0.0.1:{self.port}")


@pytest.fixture(scope="module")
def demo() -> Iterator[Demo]:
    running = Demo()
    yield running
    stop_process(running.process)


def test_prints_the_model_table_and_the_url(demo: Demo) -> None:
    output = "".join(demo.output)
    assert re.search(r"\| vllm-stand-in\s+\| 1\s+\| vllm\s+\| served", output)
    assert re.search(r"\| trtllm-stand-in\s+\| 1\s+\| tensorrtllm-ensemble\s+\| served", output)
    assert re.search(r"\| tensorrt_llm\s+\| 1\s+\| -\s+\| not served", output)
    assert re.search(r"\| embed-stand-in\s+\| 1\s+\| vllm\s+\| served", output)
    assert re.search(r"\| reasoning-stand-in\s+\| 1\s+\| vllm\s+\| served", output)
    assert f"Gateway ready: http://127.0.0.1:{demo.port}/v1" in output
    assert len(re.findall(r"\| Model\s+\| Version", output)) == 1  # the table prints once


CURL_EXAMPLES = [block for block in readme_blocks("bash") if block.startswith("curl") and "/v1/" in block]


def test_the_readme_has_curl_examples() -> None:
    assert len(CURL_EXAMPLES) >= 3


@pytest.mark.parametrize("snippet", CURL_EXAMPLES)
def test_readme_curl_examples_work_as_written(demo: Demo, snippet: str) -> None:
    result = subprocess.run(
        ["bash", "-c", demo.localize(snippet)], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    assert not re.search(r'"error":\s*\{', result.stdout), result.stdout  # a response object's "error" is null
    named = re.search(r'"model": "([^"]+)"', snippet)
    assert (named.group(1) if named else "vllm-stand-in") in result.stdout


def test_readme_python_example_works_as_written(demo: Demo) -> None:
    snippet = readme_blocks("python")[0]
    result = subprocess.run(
        [sys.executable, "-c", demo.localize(snippet)], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    # The stand-in repeats the message after an opening drawn at random (temperature 1).
    first, streamed = result.stdout.splitlines()[:2]
    assert ": Hello! CompletionUsage(" in first
    assert streamed.endswith(": Stream this, please.")


def test_readme_tool_calling_example_works_as_written(demo: Demo) -> None:
    [snippet] = [block for block in readme_blocks("python") if "tool_choice" in block]
    result = subprocess.run(
        [sys.executable, "-c", demo.localize(snippet)], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    auto, required, named, none = result.stdout.splitlines()
    assert auto.startswith("stop ") and none.startswith("stop ")
    assert required.startswith("tool_calls [") and named.startswith("tool_calls [")
    assert "get_weather" in required and "get_weather" in named


def run_python(demo: Demo, snippet: str) -> str:
    result = subprocess.run(
        [sys.executable, "-c", demo.localize(snippet)], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_readme_reasoning_example_works_as_written(demo: Demo) -> None:
    [snippet] = [block for block in readme_blocks("python") if "reasoning_content" in block]
    thinking, answer, tokens = run_python(demo, snippet).splitlines()
    assert thinking == "The user wrote: 2+2? I will repeat it." and answer.endswith(": 2+2?")
    assert int(tokens) > 0


def test_readme_tokenize_example_works_as_written(demo: Demo) -> None:
    [snippet] = [block for block in readme_blocks("bash") if block.startswith("curl -s http://127.0.0.1:9000/tokenize")]
    result = subprocess.run(
        ["bash", "-c", demo.localize(snippet)], capture_output=True, text=True, timeout=60, check=False, cwd=ROOT
    )
    assert result.returncode == 0, result.stderr
    tokens, version = (json.loads(line) for line in result.stdout.replace("}{", "}\n{").splitlines())
    assert tokens["count"] == len(tokens["tokens"]) > 0 and version["triton"]["version"]
    written = ROOT / "openapi.json"  # the example writes it where it runs
    assert json.loads(written.read_text())["openapi"] == "3.1.0"
    written.unlink()


def test_readme_kserve_example_works_as_written(demo: Demo) -> None:
    [snippet] = [block for block in readme_blocks("bash") if "/v2/health/ready" in block]
    snippet = demo.localize(snippet).replace("127.0.0.1:9001", f"127.0.0.1:{demo.kserve_port}")
    snippet = snippet.replace(".venv/bin/python", sys.executable)
    result = subprocess.run(["bash", "-c", snippet], capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["200", "True"]


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_stops_gateway_and_tritonserver(sig: int) -> None:
    demo = Demo()
    children = children_of(demo.process.pid)
    assert children, "tritonserver should run as a child of the demo"
    assert stop_process(demo.process, sig) == 0
    deadline = time.monotonic() + 20
    while any(alive(child) for child in children) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not any(alive(child) for child in children)
