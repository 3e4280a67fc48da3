"""What a model's own files in the repository say (through --model-repository, a local or
mounted view of Triton's): the vLLM backend's `model.json`, its engine arguments. Each file is
read once per model version."""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from gateway.model_info import ModelInfo
from gateway.settings import per_model

log = logging.getLogger(__name__)


class ModelFiles:
    def __init__(self, repository: Path | None, context_lengths: Sequence[str] = ()) -> None:
        self._repository = repository
        self._context_lengths = tuple(context_lengths)  # --max-model-len: "N" and "MODEL=N" entries
        self._engine_args: dict[tuple[str, str], dict[str, Any]] = {}

    def engine_args(self, model: ModelInfo) -> dict[str, Any]:
        """The vLLM engine arguments of `model` ({} when unknown)."""
        key = (model.name, model.version)
        found = self._engine_args.get(key)
        if found is None:
            found = self._engine_args[key] = self._read(model) if self._repository is not None else {}
        return found

    def max_model_len(self, model: ModelInfo) -> int | None:
        """The context length of `model`: --max-model-len for it, else its vLLM model.json's
        max_model_len, else None (not known)."""
        given = per_model(self._context_lengths, model.name)
        if given is not None:
            return int(given)
        value = self.engine_args(model).get("max_model_len")
        try:
            return int(value) if value is not None else None
        except (TypeError, ValueError):
            return None

    def guides_after_reasoning(self, model: ModelInfo) -> bool:
        """Whether the engine applies guided decoding to the answer only, after the thinking:
        vLLM does when it is given a reasoning parser (engine argument `reasoning_parser`,
        or `structured_outputs_config.reasoning_parser`)."""
        args = self.engine_args(model)
        nested = args.get("structured_outputs_config")
        return bool(args.get("reasoning_parser") or (isinstance(nested, dict) and nested.get("reasoning_parser")))

    def _read(self, model: ModelInfo) -> dict[str, Any]:
        assert self._repository is not None
        return read_json_object(self._repository / model.name / model.version / "model.json")


def read_json_object(path: Path) -> dict[str, Any]:
    """A JSON object from a model's folder; {} when the file is missing, unreadable or not
    an object (a bad file is logged, not fatal: the model is still served)."""
    try:
        value = json.loads(path.read_text())
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        log.warning("cannot read %s: %s", path, exc)
        return {}
    return value if isinstance(value, dict) else {}
