"""Where the deployment files are, and loaders for them."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
COMPOSE = DEPLOY / "docker-compose.yml"
COMPOSE_TRTLLM = DEPLOY / "docker-compose.trtllm.yml"
DOCKERFILE = DEPLOY / "Dockerfile"
NGINX = DEPLOY / "nginx"
KUBERNETES = DEPLOY / "kubernetes"
MONITORING = DEPLOY / "monitoring"

# ${NAME}, ${NAME:-default}, ${NAME-default}, ${NAME:?error}, ${NAME?error}
_VARIABLE = re.compile(r"\$\{(\w+)(?:(:?-)([^}]*)|(:?\?)[^}]*)?\}")


def load_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


def compose() -> dict[str, Any]:
    data: dict[str, Any] = load_yaml(COMPOSE)
    return data


def interpolate(text: str, environ: dict[str, str] | None = None) -> str:
    """Compose's variable interpolation, with `environ` (default: none set) for the variables."""
    environ = environ or {}

    def value(match: re.Match[str]) -> str:
        name, default = match.group(1), match.group(3)
        if name in environ:
            return environ[name]
        if match.group(4):
            raise KeyError(f"{name} must be set")
        return default or ""

    return _VARIABLE.sub(value, text)


def flag_values(args: list[str], flag: str) -> list[str]:
    """The values given to `flag` as `--flag=value` or `--flag value`."""
    values = []
    for index, arg in enumerate(args):
        if arg.startswith(flag + "="):
            values.append(arg.split("=", 1)[1])
        elif arg == flag and index + 1 < len(args):
            values.append(args[index + 1])
    return values
