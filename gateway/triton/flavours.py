"""Which kind of LLM deployment a Triton model is, judged from its configuration."""

from __future__ import annotations

import enum
from dataclasses import dataclass


class Flavour(enum.StrEnum):
    VLLM = "vllm"
    TRTLLM_ENSEMBLE = "tensorrtllm-ensemble"
    TRTLLM_BLS = "tensorrtllm-bls"
    TRTLLM_LLMAPI = "tensorrtllm-llmapi"
    TRTLLM_TOKENS = "tensorrtllm-tokens"  # token ids in and out: not a chat model
    GENERIC = "text"  # any other model with text_input in and text_output out


class BackendFamily(enum.StrEnum):
    """The operator's `--backend` override."""

    VLLM = "vllm"
    TENSORRTLLM = "tensorrtllm"


@dataclass(frozen=True)
class ModelSignature:
    """The parts of a model config that decide its flavour."""

    backend: str
    platform: str
    inputs: frozenset[str]
    outputs: frozenset[str] = frozenset()


def detect_flavour(signature: ModelSignature, override: BackendFamily | None = None) -> Flavour | None:
    """The model's flavour, or None when it is not a text-generation model.

    An override picks the family for every model that takes `text_input`; within the
    TensorRT-LLM family the inputs still tell the ensemble, BLS and LLM-API layouts apart.
    """
    inputs = signature.inputs
    has_text = "text_input" in inputs
    llm_api = any(name.startswith("sampling_param_") for name in inputs)
    if override is BackendFamily.VLLM:
        return Flavour.VLLM if has_text else None
    if override is BackendFamily.TENSORRTLLM:
        if not has_text:
            return None
        if llm_api:
            return Flavour.TRTLLM_LLMAPI
        return Flavour.TRTLLM_ENSEMBLE if signature.platform == "ensemble" else Flavour.TRTLLM_BLS

    if signature.backend == "vllm":
        return Flavour.VLLM if has_text else None
    if signature.backend == "tensorrtllm":
        return Flavour.TRTLLM_TOKENS
    if signature.platform == "ensemble" and has_text and "max_tokens" in inputs:
        return Flavour.TRTLLM_ENSEMBLE
    if signature.backend == "python" and has_text:
        if llm_api:
            return Flavour.TRTLLM_LLMAPI
        if "max_tokens" in inputs:
            return Flavour.TRTLLM_BLS
    if has_text and "text_output" in signature.outputs:
        return Flavour.GENERIC
    return None
