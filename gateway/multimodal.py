"""Which models take images.

Triton's vLLM backend declares the optional `image` input on every model (its config
auto-complete), so the declaration says nothing: a text-only model given an image fails inside
vLLM ("Multi-modal processor not available for text-only models", which vLLM 0.32 reports with
an empty message). What the deployment itself says decides instead, in this order:
`--image-models` names the model; its `model.json` (in `--model-repository`) sets vLLM's
`limit_mm_per_prompt` with images; or its tokenizer folder holds an image processor's config.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from gateway.model_files import ModelFiles
from gateway.model_info import ModelInfo

PROCESSOR_CONFIGS = ("preprocessor_config.json", "processor_config.json")


class ImageModels:
    def __init__(self, named: Sequence[str], files: ModelFiles, tokenizer_source: Callable[[str], str | None]) -> None:
        self._named = frozenset(named)
        self._files = files
        self._tokenizer_source = tokenizer_source
        self._known: dict[tuple[str, str], bool] = {}  # (model, version) -> answer; files read once

    def takes_images(self, model: ModelInfo) -> bool:
        if not model.accepts("image"):
            return False
        key = (model.name, model.version)
        answer = self._known.get(key)
        if answer is None:
            answer = self._known[key] = self._decide(model)
        return answer

    def reason(self) -> str:
        """What would make a model take images, for the 400 of one that does not."""
        return (
            "nothing in this deployment says it is multimodal: name it in --image-models, set vLLM's "
            "limit_mm_per_prompt in its model.json (seen through --model-repository), or give it a "
            "tokenizer folder with its image processor's config"
        )

    def _decide(self, model: ModelInfo) -> bool:
        if model.name in self._named:
            return True
        if images_per_prompt(self._files.engine_args(model)) > 0:
            return True
        source = self._tokenizer_source(model.name)
        return source is not None and any((Path(source) / name).is_file() for name in PROCESSOR_CONFIGS)


def images_per_prompt(engine_args: dict[str, Any]) -> int:
    """vLLM's `limit_mm_per_prompt` for images ({"image": 2}, {"image": {"count": 2}}, or that as JSON text)."""
    limits = engine_args.get("limit_mm_per_prompt")
    if isinstance(limits, str):
        try:
            limits = json.loads(limits)
        except ValueError:
            return 0
    if not isinstance(limits, dict):
        return 0
    value = limits.get("image", 0)
    count = value.get("count", 0) if isinstance(value, dict) else value
    return count if isinstance(count, int) else 0
