"""deploy/Dockerfile, without a container engine: its stages are read, and its builder's steps
are replayed in a temporary directory (the COPYs, then the RUNs with /opt/venv moved there), so
the virtualenv the image ships is built for real and its entry point and health check are run."""

from __future__ import annotations

import configparser
import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from gateway.localtriton import free_port
from tests.deploy.files import DEPLOY, DOCKERFILE, ROOT

VENV = "/opt/venv"
BUILD_TOOLS = ("apt-get", "apk", "gcc", "g++", "make", "build-essential", "pip")


@dataclass
class Stage:
    base: str
    name: str | None
    instructions: list[tuple[str, str]] = field(default_factory=list)

    def all(self, keyword: str) -> list[str]:
        return [arguments for instruction, arguments in self.instructions if instruction == keyword]

    def env(self) -> dict[str, str]:
        values = {}
        for arguments in self.all("ENV"):
            for pair in re.findall(r"(\w+)=(\S+)", arguments):
                values[pair[0]] = pair[1]
        return values


def instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, with continuation lines joined and comments dropped."""
    parsed, current = [], ""
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("\\"):
            current += line[:-1] + " "
            continue
        keyword, _, arguments = (current + line).partition(" ")
        parsed.append((keyword.upper(), arguments.strip()))
        current = ""
    return parsed


def stages() -> tuple[dict[str, str], list[Stage]]:
    """The global ARG defaults and the stages."""
    arguments: dict[str, str] = {}
    found: list[Stage] = []
    for keyword, rest in instructions(DOCKERFILE.read_text()):
        if keyword == "FROM":
            base, _, name = rest.partition(" AS ")
            found.append(Stage(base.strip(), name.strip() or None))
        elif found:
            found[-1].instructions.append((keyword, rest))
        elif keyword == "ARG":
            key, _, value = rest.partition("=")
            arguments[key] = value
    return arguments, found


def exec_form(arguments: str) -> list[str]:
    command = json.loads(arguments)
    assert isinstance(command, list) and all(isinstance(part, str) for part in command)
    return command


def clean_environ(**extra: str) -> dict[str, str]:
    """This process's environment without what points Python at the working tree."""
    environ = {key: value for key, value in os.environ.items() if key not in ("PYTHONPATH", "VIRTUAL_ENV")}
    return environ | extra


def test_two_stages_on_a_slim_python() -> None:
    arguments, (builder, runtime) = stages()
    assert builder.name == "builder" and runtime.name is None
    assert builder.base == runtime.base == "${PYTHON_IMAGE}"
    assert re.fullmatch(r"python:3\.1[1-9]-slim(-\w+)?", arguments["PYTHON_IMAGE"])


def test_the_builder_installs_only_the_package_into_a_virtualenv() -> None:
    _, (builder, _) = stages()
    runs = builder.all("RUN")
    assert runs[0] == f"python -m venv {VENV}"
    installs = [run for run in runs if f"{VENV}/bin/pip install" in run]
    assert installs[-1] == f"{VENV}/bin/pip install ."  # no [test] or [local] extras
    assert all(run.startswith(f"{VENV}/bin/pip ") for run in runs[1:])


def test_the_runtime_stage_copies_the_virtualenv_and_builds_nothing() -> None:
    _, (_, runtime) = stages()
    assert runtime.all("COPY") == [f"--from=builder {VENV} {VENV}"]
    for run in runtime.all("RUN"):
        words = set(re.findall(r"[\w+.-]+", run))
        assert not words & set(BUILD_TOOLS), run


def test_the_runtime_stage_runs_as_an_unprivileged_user() -> None:
    _, (_, runtime) = stages()
    (user,) = runtime.all("USER")
    uid = user.split(":")[0]
    assert uid not in ("root", "0") and f"--uid {uid}" in " ".join(runtime.all("RUN"))


def test_the_entry_point_is_the_console_script() -> None:
    _, (_, runtime) = stages()
    (entrypoint,) = runtime.all("ENTRYPOINT")
    setup = configparser.ConfigParser()
    setup.read(ROOT / "setup.cfg")
    scripts = dict(
        line.replace(" ", "").split("=")
        for line in setup["options.entry_points"]["console_scripts"].split("\n")
        if line
    )
    assert exec_form(entrypoint) == ["triton-openai-gateway"] and scripts["triton-openai-gateway"] == "gateway.cli:main"


def test_the_build_context_holds_what_the_builder_copies() -> None:
    """The context is whitelisted in Dockerfile.dockerignore: each COPY source must be on it."""
    allowed = {
        line[1:].rstrip("/")
        for line in (DEPLOY / "Dockerfile.dockerignore").read_text().splitlines()
        if line.startswith("!")
    }
    _, (builder, _) = stages()
    for copy in builder.all("COPY"):
        *sources, _ = copy.split()
        assert sources and set(sources) <= allowed, copy


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The builder stage replayed: its virtualenv, built in a temporary directory."""
    _, (builder, _) = stages()
    top = tmp_path_factory.mktemp("image")
    venv, workdir, shims = top / "venv", top / "src", top / "bin"
    shims.mkdir()
    (shims / "python").symlink_to(os.path.realpath(sys.executable))  # the image's `python`
    # The builder's ENV, but pip keeps its cache here (it changes nothing that gets installed).
    environ = clean_environ(**builder.env(), PATH=f"{shims}:{os.environ['PATH']}")
    environ.pop("PIP_NO_CACHE_DIR", None)
    for keyword, arguments in builder.instructions:
        if keyword == "WORKDIR":
            workdir = top / arguments.lstrip("/")
            workdir.mkdir(parents=True, exist_ok=True)
        elif keyword == "COPY":
            *sources, destination = arguments.split()
            for source in sources:
                target = workdir / destination / (Path(source).name if destination.endswith("/") else "")
                if (ROOT / source).is_dir():
                    shutil.copytree(ROOT / source, target, ignore=shutil.ignore_patterns("__pycache__"))
                else:
                    shutil.copyfile(ROOT / source, target)
        elif keyword == "RUN":
            command = arguments.replace(VENV, str(venv))
            result = subprocess.run(
                ["sh", "-c", command],
                check=False,
                cwd=workdir,
                env=environ,
                capture_output=True,
                text=True,
                timeout=900,
            )
            assert result.returncode == 0, f"{arguments}\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    yield venv


@pytest.mark.timeout(1200)
def test_the_entry_point_runs_from_the_virtualenv(built: Path, tmp_path: Path) -> None:
    result = subprocess.run(
        [built / "bin" / "triton-openai-gateway", "--help"],
        check=False,
        cwd=tmp_path,
        env=clean_environ(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0 and "--triton-url" in result.stdout, result.stderr
    where = subprocess.run(
        [built / "bin" / "python", "-c", "import gateway; print(gateway.__file__)"],
        cwd=tmp_path,
        env=clean_environ(),
        capture_output=True,
        text=True,
        check=True,
    )
    assert where.stdout.startswith(str(built))  # installed, not imported from the working tree


@pytest.mark.timeout(1200)
def test_the_virtualenv_has_no_test_dependencies(built: Path) -> None:
    setup = configparser.ConfigParser(interpolation=None)
    setup.read(ROOT / "setup.cfg")
    extras = setup["options.extras_require"]

    def names(requirements: str) -> set[str]:
        found = (re.match(r"[A-Za-z0-9_.-]+", line.strip()) for line in requirements.splitlines())
        return {match.group(0).lower().replace("_", "-") for match in found if match}

    extra_only = names("\n".join(extras[key] for key in extras)) - names(setup["options"]["install_requires"])
    listed = subprocess.run(
        [built / "bin" / "python", "-c", "import importlib.metadata as m; print(*(d.name for d in m.distributions()))"],
        env=clean_environ(),
        capture_output=True,
        text=True,
        check=True,
    )
    installed = {name.lower().replace("_", "-") for name in listed.stdout.split()}
    assert {"pytest", "ruff", "mypy", "nvidia-pytriton"} <= extra_only
    assert installed & extra_only == set()
    assert "triton-openai-gateway" in installed and "aiohttp" in installed


@pytest.mark.timeout(1200)
def test_the_health_check_passes_only_while_the_gateway_serves(built: Path, tmp_path: Path) -> None:
    _, (_, runtime) = stages()
    (healthcheck,) = runtime.all("HEALTHCHECK")
    command = exec_form(healthcheck.split(" CMD ", 1)[1])
    assert "/health/live" in command[-1] and "urllib" in command[-1]
    image_env = {key: value.replace(VENV, str(built)) for key, value in runtime.env().items()}
    image_env["PATH"] = image_env["PATH"].replace("$PATH", os.environ["PATH"])
    port = free_port()
    environ = clean_environ(**(image_env | {"GATEWAY_OPENAI_PORT": str(port), "GATEWAY_HOST": "127.0.0.1"}))

    def check() -> int:
        return subprocess.run(
            command, check=False, env=environ, cwd=tmp_path, capture_output=True, timeout=30
        ).returncode

    assert check() != 0  # nothing listens yet
    # Triton is not running (a free loopback port): the gateway still serves /health/live.
    gateway = subprocess.Popen(
        [built / "bin" / "triton-openai-gateway", f"--triton-url=127.0.0.1:{free_port()}"],
        env=environ,
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 60
        while check() != 0:
            assert gateway.poll() is None, "the gateway exited"
            assert time.monotonic() < deadline, "the health check never passed"
            time.sleep(0.5)
    finally:
        gateway.terminate()
        gateway.wait(timeout=60)
    assert check() != 0
