from __future__ import annotations

import pytest

from gateway.backends import generic, trtllm, vllm
from gateway.backends.flavours import FLAVOURS
from gateway.model_info import BackendFamily, Flavour, ModelSignature, detect_flavour


def detect(signature: ModelSignature, override: BackendFamily | None = None) -> Flavour | None:
    return detect_flavour(signature, FLAVOURS, override)


VLLM_INPUTS = frozenset({"text_input", "stream", "sampling_parameters", "exclude_input_in_output"})
TRT_INPUTS = frozenset({"text_input", "max_tokens", "stream", "end_id", "top_k"})
LLM_API_INPUTS = frozenset({"text_input", "streaming", "sampling_param_temperature", "sampling_param_max_tokens"})


@pytest.mark.parametrize(
    ("backend", "platform", "inputs", "expected"),
    [
        ("vllm", "", VLLM_INPUTS, vllm.VLLM),
        ("", "ensemble", TRT_INPUTS, trtllm.ENSEMBLE),
        ("python", "", TRT_INPUTS, trtllm.BLS),
        ("python", "", LLM_API_INPUTS, trtllm.LLM_API),
        ("tensorrtllm", "", frozenset({"input_ids", "input_lengths"}), trtllm.TOKEN_LEVEL),
        ("python", "", frozenset({"QUERY", "REQUEST_OUTPUT_LEN"}), None),  # preprocessing
        ("python", "", frozenset({"INPUT0", "INPUT1"}), None),
        ("onnxruntime", "", frozenset({"input"}), None),
        ("vllm", "", frozenset({"prompt"}), None),
        ("", "ensemble", frozenset({"text_input"}), None),  # an ensemble that is no TRT-LLM pipeline
    ],
)
def test_detection(backend: str, platform: str, inputs: frozenset[str], expected: Flavour | None) -> None:
    assert detect(ModelSignature(backend, platform, inputs)) is expected


@pytest.mark.parametrize(("backend", "platform"), [("python", ""), ("", "ensemble"), ("onnxruntime", "")])
def test_text_in_and_text_out_is_a_plain_text_model(backend: str, platform: str) -> None:
    signature = ModelSignature(backend, platform, frozenset({"text_input", "stream"}), frozenset({"text_output"}))
    assert detect(signature) is generic.PLAIN_TEXT


def test_override_wins_for_text_models_only() -> None:
    bls_like = ModelSignature("python", "", TRT_INPUTS)
    assert detect(bls_like, BackendFamily.VLLM) is vllm.VLLM
    vllm_like = ModelSignature("vllm", "", VLLM_INPUTS)
    assert detect(vllm_like, BackendFamily.TENSORRTLLM) is trtllm.BLS
    assert detect(ModelSignature("", "ensemble", TRT_INPUTS), BackendFamily.TENSORRTLLM) is trtllm.ENSEMBLE
    assert detect(ModelSignature("python", "", LLM_API_INPUTS), BackendFamily.TENSORRTLLM) is trtllm.LLM_API
    non_text = ModelSignature("python", "", frozenset({"INPUT0"}))
    assert detect(non_text, BackendFamily.VLLM) is None
    assert detect(non_text, BackendFamily.TENSORRTLLM) is None


def test_every_flavour_is_named_once_and_the_served_ones_have_an_adapter() -> None:
    names = [flavour.name for flavour in FLAVOURS]
    assert len(names) == len(set(names))
    assert all(flavour.adapter is not None or flavour.not_served for flavour in FLAVOURS)


def test_a_new_flavour_is_one_entry_in_the_catalogue() -> None:
    sglang = Flavour("sglang", None, lambda signature, forced: signature.backend == "sglang", vllm.VllmAdapter)
    signature = ModelSignature("sglang", "", frozenset({"text_input"}), frozenset({"text_output"}))
    assert detect(signature) is generic.PLAIN_TEXT
    assert detect_flavour(signature, (sglang, *FLAVOURS)) is sglang
