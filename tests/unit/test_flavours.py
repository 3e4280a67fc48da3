from __future__ import annotations

import pytest

from gateway.triton.flavours import BackendFamily, Flavour, ModelSignature, detect_flavour

VLLM_INPUTS = frozenset({"text_input", "stream", "sampling_parameters", "exclude_input_in_output"})
TRT_INPUTS = frozenset({"text_input", "max_tokens", "stream", "end_id", "top_k"})
LLM_API_INPUTS = frozenset({"text_input", "streaming", "sampling_param_temperature", "sampling_param_max_tokens"})


@pytest.mark.parametrize(
    ("backend", "platform", "inputs", "expected"),
    [
        ("vllm", "", VLLM_INPUTS, Flavour.VLLM),
        ("", "ensemble", TRT_INPUTS, Flavour.TRTLLM_ENSEMBLE),
        ("python", "", TRT_INPUTS, Flavour.TRTLLM_BLS),
        ("python", "", LLM_API_INPUTS, Flavour.TRTLLM_LLMAPI),
        ("tensorrtllm", "", frozenset({"input_ids", "input_lengths"}), Flavour.TRTLLM_TOKENS),
        ("python", "", frozenset({"QUERY", "REQUEST_OUTPUT_LEN"}), None),  # preprocessing
        ("python", "", frozenset({"INPUT0", "INPUT1"}), None),
        ("onnxruntime", "", frozenset({"input"}), None),
        ("vllm", "", frozenset({"prompt"}), None),
        ("", "ensemble", frozenset({"text_input"}), None),  # an ensemble that is no TRT-LLM pipeline
    ],
)
def test_detection(backend: str, platform: str, inputs: frozenset[str], expected: Flavour | None) -> None:
    assert detect_flavour(ModelSignature(backend, platform, inputs)) is expected


@pytest.mark.parametrize(("backend", "platform"), [("python", ""), ("", "ensemble"), ("onnxruntime", "")])
def test_text_in_and_text_out_is_a_plain_text_model(backend: str, platform: str) -> None:
    signature = ModelSignature(backend, platform, frozenset({"text_input", "stream"}), frozenset({"text_output"}))
    assert detect_flavour(signature) is Flavour.GENERIC


def test_override_wins_for_text_models_only() -> None:
    bls_like = ModelSignature("python", "", TRT_INPUTS)
    assert detect_flavour(bls_like, BackendFamily.VLLM) is Flavour.VLLM
    vllm_like = ModelSignature("vllm", "", VLLM_INPUTS)
    assert detect_flavour(vllm_like, BackendFamily.TENSORRTLLM) is Flavour.TRTLLM_BLS
    assert (
        detect_flavour(ModelSignature("", "ensemble", TRT_INPUTS), BackendFamily.TENSORRTLLM) is Flavour.TRTLLM_ENSEMBLE
    )
    assert (
        detect_flavour(ModelSignature("python", "", LLM_API_INPUTS), BackendFamily.TENSORRTLLM) is Flavour.TRTLLM_LLMAPI
    )
    non_text = ModelSignature("python", "", frozenset({"INPUT0"}))
    assert detect_flavour(non_text, BackendFamily.VLLM) is None
    assert detect_flavour(non_text, BackendFamily.TENSORRTLLM) is None
