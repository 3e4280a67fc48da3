from __future__ import annotations

import json

import pytest
from tritonclient.grpc import service_pb2 as pb

from gateway.backends import vllm
from gateway.backends.base import BackendOptions
from gateway.backends.vllm import VllmAdapter
from gateway.errors import BackendError, BackendUnavailable, InvalidRequest, NotFound
from gateway.generation import GuidedDecoding
from gateway.model_info import ModelInfo, TensorSpec
from gateway.triton import tensors
from tests.conftest import WordTokenizer, generation_request, inputs_of

ALL_INPUTS = [
    "text_input",
    "stream",
    "sampling_parameters",
    "exclude_input_in_output",
    "return_finish_reason",
    "return_num_input_tokens",
    "return_num_output_tokens",
    "return_logprobs",
]


def model(inputs: list[str], max_batch_size: int = 0) -> ModelInfo:
    specs = {name: TensorSpec(name, "BYTES", (1,), name != "text_input") for name in inputs}
    return ModelInfo(
        name="m",
        version="1",
        flavour=vllm.VLLM,
        backend="vllm",
        platform="",
        max_batch_size=max_batch_size,
        decoupled=True,
        inputs=specs,
        outputs=frozenset({"text_output"}),
        parameters={},
    )


def test_request_carries_declared_inputs_and_sampling_json() -> None:
    message = VllmAdapter(model(ALL_INPUTS), BackendOptions()).build_request(
        generation_request(temperature=0.5, seed=3, stop=["x"], top_p=None, presence_penalty=0.0)
    )
    assert message.model_name == "m" and message.id == "r1"
    inputs = inputs_of(message)
    assert inputs["text_input"] == ("BYTES", [1], tensors.encode_one_bytes(b"hi"))
    assert inputs["stream"] == ("BOOL", [1], b"\x01")
    assert inputs["exclude_input_in_output"] == ("BOOL", [1], b"\x01")
    assert inputs["return_finish_reason"][2] == b"\x01"
    assert "return_logprobs" not in inputs  # not needed: nothing asks for logprobs
    params = json.loads(tensors.decode_first_bytes(inputs["sampling_parameters"][2]))
    # Unset values are left out (the backend would int(None)); set ones are JSON numbers.
    assert params == {"max_tokens": 8, "temperature": 0.5, "presence_penalty": 0.0, "seed": 3, "stop": ["x"]}


def test_only_declared_inputs_are_sent_and_batch_dimension_follows_config() -> None:
    legacy = VllmAdapter(model(["text_input", "stream", "sampling_parameters"], max_batch_size=4), BackendOptions())
    inputs = inputs_of(legacy.build_request(generation_request()))
    assert set(inputs) == {"text_input", "stream", "sampling_parameters"}
    assert all(shape == [1, 1] for _, shape, _ in inputs.values())


def response(outputs: dict[str, tuple[str, bytes]]) -> pb.ModelInferResponse:
    message = pb.ModelInferResponse(model_name="m", id="r1")
    for name, (datatype, raw) in outputs.items():
        tensor = message.outputs.add()
        tensor.name = name
        tensor.datatype = datatype
        message.raw_output_contents.append(raw)
    return message


def vllm_response(text: str, finish: str, n_in: int = 4, n_out: int = 1) -> pb.ModelInferResponse:
    return response(
        {
            "text_output": ("BYTES", tensors.encode_one_bytes(text.encode())),
            "finish_reason": ("BYTES", tensors.encode_one_bytes(finish.encode())),
            "num_input_tokens": ("UINT32", tensors.encode_numbers([n_in], "UINT32")),
            "num_output_tokens": ("UINT32", tensors.encode_numbers([n_out], "UINT32")),
        }
    )


def test_reader_streams_deltas_until_the_backend_finish_reason() -> None:
    reader = VllmAdapter(model(ALL_INPUTS), BackendOptions()).reader(generation_request(), None)
    first = reader.read(vllm_response("Hel", "None"), final=False)
    assert (first.text, first.finish_reason, first.prompt_tokens, first.completion_tokens) == ("Hel", None, 4, 1)
    last = reader.read(vllm_response("", "length", n_out=1), final=True)
    assert last.finish_reason == "length"


@pytest.mark.parametrize(("vllm", "openai"), [("stop", "stop"), ("length", "length"), ("repetition", "stop")])
def test_finish_reasons_map_to_openai(vllm: str, openai: str) -> None:
    reader = VllmAdapter(model(ALL_INPUTS), BackendOptions()).reader(generation_request(), None)
    assert reader.read(vllm_response("x", vllm), final=True).finish_reason == openai


@pytest.mark.parametrize("reason", ["abort", "error"])
def test_aborted_generation_is_an_error(reason: str) -> None:
    reader = VllmAdapter(model(ALL_INPUTS), BackendOptions()).reader(generation_request(), None)
    with pytest.raises(BackendError):
        reader.read(vllm_response("x", reason), final=True)


def test_prompt_is_stripped_when_the_backend_cannot_exclude_it() -> None:
    adapter = VllmAdapter(model(["text_input", "stream", "sampling_parameters"]), BackendOptions())
    reader = adapter.reader(generation_request(stream=False, prompt="Say hi"), None)
    only_text = response({"text_output": ("BYTES", tensors.encode_one_bytes(b"Say hi. Hi!"))})
    assert reader.read(only_text, final=True).text == ". Hi!"


def test_legacy_finish_reason_is_inferred_from_the_token_count() -> None:
    adapter = VllmAdapter(model(["text_input", "stream", "sampling_parameters"]), BackendOptions())
    text = lambda value: response({"text_output": ("BYTES", tensors.encode_one_bytes(value))})
    reader = adapter.reader(generation_request(max_tokens=3), WordTokenizer())
    assert reader.read(text(b"one two "), final=False).finish_reason is None
    assert reader.read(text(b"three"), final=True).finish_reason == "length"
    reader = adapter.reader(generation_request(max_tokens=3), WordTokenizer())
    assert reader.read(text(b"one"), final=True).finish_reason == "stop"


def test_empty_final_response_ends_the_request() -> None:
    reader = VllmAdapter(model(ALL_INPUTS), BackendOptions()).reader(generation_request(max_tokens=1), None)
    reader.read(vllm_response("x", "None"), final=False)
    assert reader.read(pb.ModelInferResponse(), final=True).finish_reason == "length"


def test_error_translation() -> None:
    adapter = VllmAdapter(model(ALL_INPUTS), BackendOptions())
    unhelpful = adapter.translate_error("Error generating stream: 'NoneType' object has no attribute 'lora_name'")
    assert isinstance(unhelpful, InvalidRequest) and "lora_name" not in unhelpful.message
    assert isinstance(adapter.translate_error("Request for unknown model: 'm' is not found"), NotFound)
    assert isinstance(adapter.translate_error("Request for model 'm' is not ready"), BackendUnavailable)
    too_long = adapter.translate_error(
        "Error generating stream: The decoder prompt (length 300) is longer than the maximum model length of 256."
    )
    assert isinstance(too_long, InvalidRequest) and too_long.code == "context_length_exceeded"
    lora = adapter.translate_error("LoRA feature is not enabled.")
    assert isinstance(lora, InvalidRequest) and lora.param == "model"
    # vLLM 0.32's refusals, whatever the wording: the (parameter=…, value=…) suffix names the field.
    context = adapter.translate_error(
        "Error generating stream: This model's maximum context length is 512 tokens. However, your prompt "
        "contains at least 513 input tokens. Please reduce the length of the input prompt. "
        "(parameter=input_tokens, value=513)"
    )
    assert isinstance(context, InvalidRequest) and context.code == "context_length_exceeded"
    assert context.param == "messages" and context.message.endswith("input prompt.")
    stop_ids = adapter.translate_error(
        "Error generating stream: token_id(s) [99999] in stop_token_ids contain out-of-vocab token ids. "
        "Vocabulary size: 128256 (parameter=stop_token_ids, value=[99999])"
    )
    assert isinstance(stop_ids, InvalidRequest) and stop_ids.param == "stop_token_ids"
    novel = adapter.translate_error("Error generating stream: some future check failed (parameter=top_q, value=3)")
    assert isinstance(novel, InvalidRequest) and novel.param == "top_q" and novel.code == "invalid_value"
    matryoshka = adapter.translate_error(
        "Error generating stream: Model 'e5' does not support Matryoshka embeddings; dimensions must be unset "
        "(received dimensions=16)"
    )
    assert isinstance(matryoshka, InvalidRequest) and matryoshka.param == "dimensions"
    for silent in ("Error generating stream: ", "Error generating stream:", ""):
        empty = adapter.translate_error(silent)
        assert isinstance(empty, BackendError) and "Triton's log" in empty.message and "request id" in empty.message
    other = adapter.translate_error("Error generating stream: CUDA out of memory")
    assert isinstance(other, BackendError) and other.message.endswith("CUDA out of memory")


def sampling_json(message: pb.ModelInferRequest) -> dict:
    return json.loads(tensors.decode_first_bytes(inputs_of(message)["sampling_parameters"][2]))


def test_extensions_pass_through() -> None:
    message = VllmAdapter(model(ALL_INPUTS), BackendOptions()).build_request(
        generation_request(
            top_k=3,
            min_p=0.2,
            repetition_penalty=1.1,
            min_tokens=2,
            ignore_eos=True,
            stop_token_ids=[7],
            skip_special_tokens=False,
            include_stop_str_in_output=True,
        )
    )
    params = sampling_json(message)
    assert params["top_k"] == 3 and params["min_p"] == 0.2 and params["repetition_penalty"] == 1.1
    assert params["min_tokens"] == 2 and params["ignore_eos"] is True and params["stop_token_ids"] == [7]
    assert params["skip_special_tokens"] is False and params["include_stop_str_in_output"] is True
    assert "logit_bias" not in params


def test_guided_decoding_is_a_json_string_under_the_configured_key() -> None:
    schema = {"type": "object"}
    request = generation_request(guided=GuidedDecoding("json_schema", schema))
    params = sampling_json(VllmAdapter(model(ALL_INPUTS), BackendOptions()).build_request(request))
    assert json.loads(params["structured_outputs"]) == {"json": schema} and "guided_decoding" not in params
    options = BackendOptions(structured_outputs_keys=("m=guided_decoding",))
    params = sampling_json(VllmAdapter(model(ALL_INPUTS), options).build_request(request))
    assert json.loads(params["guided_decoding"]) == {"json": schema} and "structured_outputs" not in params
    json_object = generation_request(guided=GuidedDecoding("json_object"))
    params = sampling_json(VllmAdapter(model(ALL_INPUTS), BackendOptions()).build_request(json_object))
    assert json.loads(params["structured_outputs"]) == {"json_object": True}


def test_structured_outputs_key_per_model_and_default() -> None:
    options = BackendOptions(structured_outputs_keys=("guided_decoding", "new=structured_outputs"))
    assert options.structured_outputs_key("old") == "guided_decoding"
    assert options.structured_outputs_key("new") == "structured_outputs"
    assert BackendOptions().structured_outputs_key("any") == "structured_outputs"


def test_logit_bias_is_refused_with_the_reason() -> None:
    adapter = VllmAdapter(model(ALL_INPUTS), BackendOptions())
    with pytest.raises(InvalidRequest) as raised:
        adapter.build_request(generation_request(logit_bias={42: -5.0}))
    assert raised.value.param == "logit_bias" and "strings" in raised.value.message
