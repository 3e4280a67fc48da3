from __future__ import annotations

import pytest

from gateway.backends import generic
from gateway.backends.base import BackendOptions
from gateway.backends.generic import GenericTextAdapter
from gateway.errors import InvalidRequest
from gateway.generation import GuidedDecoding
from gateway.model_info import ModelInfo, TensorSpec
from tests.conftest import generation_request, inputs_of


def plain_model(inputs: dict[str, tuple[str, tuple[int, ...]]], decoupled: bool = True) -> ModelInfo:
    return ModelInfo(
        name="mock_llm",
        version="1",
        flavour=generic.PLAIN_TEXT,
        backend="python",
        platform="",
        max_batch_size=0,
        decoupled=decoupled,
        inputs={
            name: TensorSpec(name, datatype, dims, name != "text_input") for name, (datatype, dims) in inputs.items()
        },
        outputs=frozenset({"text_output"}),
        parameters={},
    )


MOCK_LLM = {"text_input": ("BYTES", (1, 1)), "stream": ("BOOL", (1, 1))}


def test_only_declared_inputs_go_in_their_declared_shape() -> None:
    adapter = GenericTextAdapter(plain_model(MOCK_LLM), BackendOptions())
    sent = inputs_of(adapter.build_request(generation_request(temperature=0.5, seed=3, top_k=2)))
    assert set(sent) == {"text_input", "stream"}
    assert sent["text_input"][1] == [1, 1] and sent["stream"] == (
        "BOOL",
        [1, 1],
        b"\x01",
    )
    richer = plain_model({**MOCK_LLM, "max_tokens": ("INT32", (1, 1)), "temperature": ("FP32", (1, 1))})
    sent = inputs_of(GenericTextAdapter(richer, BackendOptions()).build_request(generation_request(temperature=0.5)))
    assert set(sent) == {"text_input", "stream", "max_tokens", "temperature"}


def test_a_model_that_is_not_decoupled_is_asked_for_one_response() -> None:
    adapter = GenericTextAdapter(plain_model(MOCK_LLM, decoupled=False), BackendOptions())
    assert inputs_of(adapter.build_request(generation_request(stream=True)))["stream"][2] == b"\x00"


@pytest.mark.parametrize(
    ("fields", "param"),
    [
        ({"logprobs": 0}, "logprobs"),
        ({"guided": GuidedDecoding("json_object")}, "response_format"),
        ({"images": [b"x"]}, "messages"),
        ({"lora_name": "a"}, "model"),
        ({"stop_token_ids": [1]}, "stop_token_ids"),
    ],
)
def test_what_needs_the_model_is_refused(fields: dict, param: str) -> None:  # type: ignore[type-arg]
    with pytest.raises(InvalidRequest) as caught:
        GenericTextAdapter(plain_model(MOCK_LLM), BackendOptions()).build_request(generation_request(**fields))
    assert caught.value.param == param


def test_without_a_max_tokens_input_the_finish_is_never_length() -> None:
    from tests.unit.test_trtllm_adapter import text_response

    reader = GenericTextAdapter(plain_model(MOCK_LLM), BackendOptions()).reader(generation_request(max_tokens=1), None)
    assert reader.read(text_response(b"a"), final=False).finish_reason is None
    assert reader.read(text_response(b"b"), final=True).finish_reason == "stop"


def test_an_empty_backend_error_points_to_tritons_log() -> None:
    adapter = GenericTextAdapter(plain_model(MOCK_LLM), BackendOptions())
    assert "detail is in Triton's log" in adapter.translate_error("").message
    assert adapter.translate_error("An Error Occurred").message.endswith("An Error Occurred")
