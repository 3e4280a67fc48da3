"""deploy/Dockerfile, without a container engine: its stages are read, and the virtualenv its
builder stage makes (replayed by `make image-venv`) runs its entry point and health check."""

from __future__ import annotations

import configparser
import os
import re
import subprocess
import time
from pathlib import Path

import pytest

from gateway.localtriton import free_port
from tests.deploy.dockerfile import BUILD_TOOLS, IMAGE_VENV, VENV, clean_environ, exec_form, stages
from tests.deploy.files import DEPLOY, ROOT


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
    assert installs[-1] == f'{VENV}/bin/pip install ".[redis]"'  # no [test] or [local] extras
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
def built() -> Path:
    """The builder stage's virtualenv, replayed by `make image-venv` (part of `make test`)."""
    assert (IMAGE_VENV / "bin" / "triton-openai-gateway").exists(), (
        f"{IMAGE_VENV} is missing: run `make image-venv` (it replays the Dockerfile's builder stage)"
    )
    return IMAGE_VENV


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

    image_extras = names(extras["redis"])  # the image installs ".[redis]"
    test_extras = "\n".join(extras[key] for key in extras if key != "redis")
    extra_only = names(test_extras) - names(setup["options"]["install_requires"]) - image_extras
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
