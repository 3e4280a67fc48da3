"""What the gateway knows about a Triton model: its declared tensors and parameters, and its
flavour (which adapter serves it). Flavours themselves are declared next to their adapters in
gateway/backends/; gateway/backends/flavours.py lists them in detection order."""

from __future__ import annotations

import enum
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from gateway.backends.base import BackendAdapter, BackendOptions


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
    # An ensemble's steps: (model name, {step input: ensemble tensor}).
    steps: tuple[tuple[str, Mapping[str, str]], ...] = ()


def _no_model(signature: ModelSignature) -> str | None:
    return None


@dataclass(frozen=True, eq=False)
class Flavour:
    """One kind of LLM deployment: how to recognise it and what serves it.

    `recognises(signature, forced)` is asked in the catalogue's order; `forced` is true when the
    operator's `--backend` names this flavour's family, so only the layout is left to tell."""

    name: str  # as the model table shows it
    family: BackendFamily | None
    recognises: Callable[[ModelSignature, bool], bool]
    adapter: Callable[[ModelInfo, BackendOptions], BackendAdapter] | None  # None: recognised, not served
    not_served: str = ""  # why, when there is no adapter
    # Whether the model's own tokenization of `text_input` adds special tokens (a BOS) ...
    adds_special_tokens: bool = False
    # ... unless this model (a TensorRT-LLM `preprocessing`) tokenizes it, whose parameter decides.
    tokenizing_model: Callable[[ModelSignature], str | None] = _no_model
    stops_on_cancel: bool = True  # whether closing the stream stops the generation on Triton
    applies_stop_strings: bool = False  # the engine cuts its output at stop strings (else the gateway)
    # A request may ask the backend to keep special tokens in its text (vLLM's skip_special_tokens).
    keeps_special_tokens_on_request: bool = False

    def __str__(self) -> str:
        return self.name


def detect_flavour(
    signature: ModelSignature, flavours: Sequence[Flavour], override: BackendFamily | None = None
) -> Flavour | None:
    """The first flavour that recognises the model (only the override's family when there is
    one), or None when it is no text-generation model."""
    candidates = [flavour for flavour in flavours if override is None or flavour.family is override]
    return next((flavour for flavour in candidates if flavour.recognises(signature, override is not None)), None)


@dataclass(frozen=True)
class TensorSpec:
    name: str
    datatype: str  # KServe name: BYTES, BOOL, INT32, FP32, UINT64, ...
    dims: tuple[int, ...]
    optional: bool


@dataclass(frozen=True)
class ModelInfo:
    """A servable model and what its configuration declares."""

    name: str
    version: str
    flavour: Flavour
    backend: str
    platform: str
    max_batch_size: int
    decoupled: bool
    inputs: Mapping[str, TensorSpec]
    outputs: frozenset[str]
    parameters: Mapping[str, str]
    adds_special_tokens: bool = False  # the flavour's, or its tokenizing model's parameter
    tokenizing_model: str | None = None
    created: int = field(default_factory=lambda: int(time.time()))

    def accepts(self, input_name: str) -> bool:
        return input_name in self.inputs
