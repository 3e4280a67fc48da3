"""deploy/Dockerfile read without a container engine: its stages, and its builder stage
replayed on this machine (`make image-venv`): the COPYs into a temporary directory, then the
RUNs with /opt/venv moved, so the virtualenv the image ships is built for real and
tests/deploy can run its entry point and health check without going to the network."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from tests.deploy.files import DOCKERFILE, ROOT

VENV = "/opt/venv"
BUILD_TOOLS = ("apt-get", "apk", "gcc", "g++", "make", "build-essential", "pip")
IMAGE_VENV = ROOT / ".venv-image"  # where `make image-venv` leaves the replayed virtualenv


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


def replay_builder(venv: Path) -> None:
    """Run the builder stage's steps with its virtualenv at `venv`."""
    venv = venv.resolve()
    _, (builder, _) = stages()
    top = Path(tempfile.mkdtemp(prefix="image-build-"))
    workdir = top / "src"
    # The image's `python` is this interpreter (the virtualenv links to it, so it must stay).
    shims = Path(os.path.realpath(sys.executable)).parent
    if not (shims / "python").exists():
        shims = venv.parent / f"{venv.name}-python"
        shims.mkdir(exist_ok=True)
        (shims / "python").unlink(missing_ok=True)
        (shims / "python").symlink_to(os.path.realpath(sys.executable))
    # The builder's ENV, but pip keeps its cache (it changes nothing that gets installed).
    environ = clean_environ(**builder.env(), PATH=f"{shims}:{os.environ['PATH']}")
    environ.pop("PIP_NO_CACHE_DIR", None)
    shutil.rmtree(venv, ignore_errors=True)
    try:
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
                print(f"RUN {arguments}", flush=True)
                subprocess.run(["sh", "-c", arguments.replace(VENV, str(venv))], check=True, cwd=workdir, env=environ)
    finally:
        shutil.rmtree(top, ignore_errors=True)


if __name__ == "__main__":
    replay_builder(Path(sys.argv[1]) if len(sys.argv) > 1 else IMAGE_VENV)
