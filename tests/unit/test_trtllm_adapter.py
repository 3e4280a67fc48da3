from __future__ import annotations

import pytest
from tritonclient.grpc import service_pb2 as pb

from gateway.backends import trtllm
from gateway.backends.base import BackendOptions
from gateway.backends.trtllm import TrtllmAdapter
from gateway.errors import BackendError, InvalidRequest, NotFound
from gateway.generation import Delta, GenerationRequest, GuidedDecoding, TokenLogprob
from gateway.model_info import Flavour, ModelInfo, TensorSpec
from gateway.openai.stops import stop_stage
from gateway.triton import tensors
from tests.conftest import WordTokenizer, generation_request, inputs_of

ENSEMBLE_INPUTS = {
    "text_input": "BYTES",
    "max_tokens": "INT32",
    "stream": "BOOL",
    "exclude_input_in_output": "BOOL",
    "stop_words": "BYTES",
    "temperature": "FP32",
    "top_p": "FP32",
    "top_k": "INT32",
    "seed": "UINT64",
    "presence_penalty": "FP32",
    "frequency_penalty": "FP32",
    "return_num_input_tokens": "BOOL",
    "return_num_output_tokens": "BOOL",
}
BLS_INPUTS = {
    "text_input": "BYTES",
    "max_tokens": "INT32",
    "stream": "BOOL",
    "stop_words": "BYTES",
    "random_seed": "UINT64",
}
LLM_API_INPUTS = {
    "text_input": "BYTES",
    "streaming": "BOOL",
    "sampling_param_max_tokens": "INT32",
    "sampling_param_temperature": "FP32",
    "sampling_param_seed": "UINT64",
    "sampling_param_stop": "BYTES",
    "return_finish_reason": "BOOL",
}


def model(
    inputs: dict[str, str],
    flavour: Flavour,
    max_batch_size: int = 64,
    outputs: tuple[str, ...] = ("text_output",),
    **parameters: str,
) -> ModelInfo:
    return ModelInfo(
        name="m",
        version="1",
        flavour=flavour,
        backend="python",
        platform="",
        max_batch_size=max_batch_size,
        decoupled=True,
        inputs={name: TensorSpec(name, datatype, (1,), name != "text_input") for name, datatype in inputs.items()},
        outputs=frozenset(outputs),
        parameters=parameters,
    )


def test_ensemble_request_uses_declared_datatypes_and_batch_dimension() -> None:
    adapter = TrtllmAdapter(model(ENSEMBLE_INPUTS, trtllm.ENSEMBLE), BackendOptions())
    sent = inputs_of(adapter.build_request(generation_request(temperature=0.5, top_p=0.9, seed=7, stop=["a", "bc"])))
    assert sent["text_input"] == ("BYTES", [1, 1], tensors.encode_one_bytes(b"hi"))
    assert sent["max_tokens"] == ("INT32", [1, 1], tensors.encode_numbers([8], "INT32"))
    assert sent["temperature"] == ("FP32", [1, 1], tensors.encode_numbers([0.5], "FP32"))
    assert sent["seed"] == ("UINT64", [1, 1], tensors.encode_numbers([7], "UINT64"))
    assert sent["stop_words"] == ("BYTES", [1, 2], tensors.encode_bytes([b"a", b"bc"]))
    assert sent["stream"][2] == b"\x01" and sent["exclude_input_in_output"][2] == b"\x01"
    assert sent["return_num_output_tokens"][2] == b"\x01"
    assert "presence_penalty" not in sent  # unset values are not sent


def test_greedy_is_top_k_one() -> None:
    sent = inputs_of(
        TrtllmAdapter(model(ENSEMBLE_INPUTS, trtllm.ENSEMBLE), BackendOptions()).build_request(
            generation_request(temperature=0.0)
        )
    )
    assert sent["top_k"][2] == tensors.encode_numbers([1], "INT32")
    assert "temperature" not in sent


def sampling_sent(**fields: float | None) -> dict[str, bytes]:
    adapter = TrtllmAdapter(model(ENSEMBLE_INPUTS, trtllm.ENSEMBLE), BackendOptions())
    sent = inputs_of(adapter.build_request(generation_request(**fields)))
    return {name: sent[name][2] for name in ("temperature", "top_k", "top_p") if name in sent}


def test_openai_sampling_defaults_are_sent_outright() -> None:
    """TensorRT-LLM decodes greedily when temperature, top_k and top_p are all unset; OpenAI
    samples. So a request that samples says so."""
    fp32, int32 = (
        (lambda value: tensors.encode_numbers([value], "FP32")),
        (lambda v: tensors.encode_numbers([v], "INT32")),
    )
    assert sampling_sent() == {"temperature": fp32(1.0), "top_p": fp32(1.0)}
    assert sampling_sent(temperature=0.7) == {"temperature": fp32(0.7), "top_p": fp32(1.0)}
    assert sampling_sent(temperature=0.7, top_k=40) == {"temperature": fp32(0.7), "top_k": int32(40)}
    assert sampling_sent(top_p=0.5) == {"temperature": fp32(1.0), "top_p": fp32(0.5)}
    assert sampling_sent(temperature=0.0, top_k=40) == {"top_k": int32(1)}  # greedy wins


def test_top_k_needs_a_top_k_input() -> None:
    adapter = TrtllmAdapter(model(BLS_INPUTS, trtllm.BLS), BackendOptions())
    with pytest.raises(InvalidRequest) as caught:
        adapter.build_request(generation_request(top_k=5))
    assert caught.value.param == "top_k"


def test_old_input_names_and_nothing_undeclared() -> None:
    adapter = TrtllmAdapter(model(BLS_INPUTS, trtllm.BLS), BackendOptions())
    sent = inputs_of(adapter.build_request(generation_request(seed=3)))
    assert sent["random_seed"][0] == "UINT64"
    assert set(sent) <= set(BLS_INPUTS)


@pytest.mark.parametrize(("field", "value"), [("temperature", 0.7), ("top_p", 0.5), ("presence_penalty", 1.0)])
def test_values_the_model_cannot_take_are_a_400(field: str, value: float) -> None:
    adapter = TrtllmAdapter(model(BLS_INPUTS, trtllm.BLS), BackendOptions())
    with pytest.raises(InvalidRequest) as caught:
        adapter.build_request(generation_request(**{field: value}))
    assert caught.value.param == field


def test_negative_seed_is_a_400() -> None:
    with pytest.raises(InvalidRequest) as caught:
        TrtllmAdapter(model(ENSEMBLE_INPUTS, trtllm.ENSEMBLE), BackendOptions()).build_request(
            generation_request(seed=-1)
        )
    assert caught.value.param == "seed"


def test_llm_api_request_uses_sampling_param_inputs() -> None:
    adapter = TrtllmAdapter(model(LLM_API_INPUTS, trtllm.LLM_API, max_batch_size=0), BackendOptions())
    sent = inputs_of(adapter.build_request(generation_request(temperature=0.3, seed=1, stop=["x"])))
    assert sent["streaming"][2] == b"\x01"
    assert sent["sampling_param_max_tokens"] == ("INT32", [1], tensors.encode_numbers([8], "INT32"))
    assert sent["sampling_param_stop"][0] == "BYTES"
    assert adapter.cumulative


def text_response(text: bytes, **counts: int) -> pb.ModelInferResponse:
    message = pb.ModelInferResponse()
    message.outputs.add(name="text_output", datatype="BYTES")
    message.raw_output_contents.append(tensors.encode_one_bytes(text))
    for name, value in counts.items():
        message.outputs.add(name=name, datatype="INT32")
        message.raw_output_contents.append(tensors.encode_numbers([value], "INT32"))
    return message


def with_stops(request: GenerationRequest, delta: Delta) -> Delta:
    """A delta after the pipeline's stop-string stage, which cuts TensorRT-LLM's stop strings."""
    stage = stop_stage(request, trtllm.BLS)()
    assert stage is not None
    return stage.feed(delta)


def test_reader_joins_split_characters_and_ends_on_the_empty_final() -> None:
    reader = TrtllmAdapter(model(BLS_INPUTS, trtllm.BLS), BackendOptions()).reader(
        generation_request(max_tokens=50), WordTokenizer()
    )
    raw = "東京 ok".encode()
    first = reader.read(text_response(raw[:2]), final=False)
    second = reader.read(text_response(raw[2:]), final=False)
    last = reader.read(pb.ModelInferResponse(), final=True)  # flag-only final
    assert first.text + second.text + last.text == "東京 ok"
    assert (first.finish_reason, second.finish_reason, last.finish_reason) == (None, None, "stop")


def test_reader_infers_length_from_counts_or_the_tokenizer() -> None:
    adapter = TrtllmAdapter(model(ENSEMBLE_INPUTS, trtllm.ENSEMBLE), BackendOptions())
    reader = adapter.reader(generation_request(max_tokens=2), None)
    assert reader.read(text_response(b"a", num_output_tokens=1), final=False).finish_reason is None
    assert reader.read(text_response(b"b", num_output_tokens=1), final=True).finish_reason == "length"
    bls = TrtllmAdapter(model(BLS_INPUTS, trtllm.BLS), BackendOptions())
    # Without counts: one whole text is re-tokenized; a stream counts a token per response.
    whole = bls.reader(generation_request(max_tokens=2, stream=False), WordTokenizer())
    assert whole.read(text_response(b"one two"), final=True).finish_reason == "length"
    streamed = bls.reader(generation_request(max_tokens=2), WordTokenizer())
    assert streamed.read(text_response(b"one two"), final=False).completion_tokens == 1
    assert streamed.read(pb.ModelInferResponse(), final=True).finish_reason == "stop"


def test_streamed_counts_come_from_the_responses() -> None:
    """A response per decoding step; one that brings no text is counted once a later one does,
    so only the trailing end-id response (zero tokens) goes uncounted."""
    bls = TrtllmAdapter(model(BLS_INPUTS, trtllm.BLS), BackendOptions())
    delta = bls.reader(generation_request(max_tokens=50), WordTokenizer())
    pieces = [b"\xef\xbf\xbd", b"", b"ok", b""]  # U+FFFD, a dropped special token, text, the end id
    assert [delta.read(text_response(piece), final=False).completion_tokens for piece in pieces] == [1, 0, 2, 0]
    cumulative_model = model(BLS_INPUTS, trtllm.BLS, accumulate_tokens="true")
    cumulative = TrtllmAdapter(cumulative_model, BackendOptions()).reader(generation_request(max_tokens=4), None)
    texts = [b"a", "a\ufffd".encode(), "a\ufffd".encode(), "a日".encode(), "a日".encode()]
    counts = [cumulative.read(text_response(text), final=False).completion_tokens for text in texts]
    assert counts == [1, 1, 0, 2, 0]
    assert cumulative.read(pb.ModelInferResponse(), final=True).finish_reason == "length"


def test_non_streamed_echo_and_stop_word_are_removed() -> None:
    adapter = TrtllmAdapter(model(BLS_INPUTS, trtllm.BLS), BackendOptions())
    request = generation_request(stream=False, prompt="<s>Say it", stop=["END"])
    reader = adapter.reader(request, WordTokenizer())
    delta = with_stops(request, reader.read(text_response(b"Say it: yes END"), final=True))
    assert (delta.text, delta.finish_reason) == (": yes ", "stop")


def test_cumulative_bls_yields_deltas() -> None:
    adapter = TrtllmAdapter(model(BLS_INPUTS, trtllm.BLS, accumulate_tokens="true"), BackendOptions())
    reader = adapter.reader(generation_request(), None)
    texts = [reader.read(text_response(t.encode()), final=False).text for t in ("A", "A b", "A b\ufffd", "A b東")]
    assert texts == ["A", " b", "", "東"]


def test_llm_api_finish_reason_is_read() -> None:
    adapter = TrtllmAdapter(model(LLM_API_INPUTS, trtllm.LLM_API, max_batch_size=0), BackendOptions())
    reader = adapter.reader(generation_request(), None)
    response = text_response(b"Hi")
    response.outputs.add(name="finish_reason", datatype="BYTES")
    response.raw_output_contents.append(tensors.encode_one_bytes(b"length"))
    assert reader.read(response, final=True).finish_reason == "length"


def test_error_translation() -> None:
    adapter = TrtllmAdapter(model(ENSEMBLE_INPUTS, trtllm.ENSEMBLE), BackendOptions())
    traceback = 'Traceback (most recent call last):\n  File "model.py", line 3\nValueError: max_tokens must be > 0\n'
    error = adapter.translate_error(traceback)
    assert isinstance(error, BackendError) and error.message.endswith("ValueError: max_tokens must be > 0")
    assert "Traceback" not in error.message
    nested = adapter.translate_error("in ensemble 'ensemble', in ensemble 'inner', Request for unknown model: 'x'")
    assert isinstance(nested, NotFound)
    plain = adapter.translate_error("in ensemble 'ensemble', CUDA out of memory")
    assert plain.message.endswith(": CUDA out of memory")


def test_guided_decoding_uses_the_guide_inputs_when_declared() -> None:
    inputs = {**ENSEMBLE_INPUTS, "guided_decoding_guide_type": "BYTES", "guided_decoding_guide": "BYTES"}
    adapter = TrtllmAdapter(model(inputs, trtllm.ENSEMBLE), BackendOptions())
    sent = inputs_of(
        adapter.build_request(generation_request(guided=GuidedDecoding("json_schema", {"type": "object"})))
    )
    assert tensors.decode_first_bytes(sent["guided_decoding_guide_type"][2]) == b"json_schema"
    assert tensors.decode_first_bytes(sent["guided_decoding_guide"][2]) == b'{"type": "object"}'
    without = TrtllmAdapter(model(ENSEMBLE_INPUTS, trtllm.ENSEMBLE), BackendOptions())
    with pytest.raises(InvalidRequest) as caught:
        without.build_request(generation_request(guided=GuidedDecoding("json_object")))
    assert caught.value.param == "response_format"


def test_new_and_old_min_tokens_names() -> None:
    ensemble = TrtllmAdapter(model({**ENSEMBLE_INPUTS, "min_tokens": "INT32"}, trtllm.ENSEMBLE), BackendOptions())
    assert "min_tokens" in inputs_of(ensemble.build_request(generation_request(min_tokens=3)))
    bls = TrtllmAdapter(model({**BLS_INPUTS, "min_length": "INT32"}, trtllm.BLS), BackendOptions())
    assert "min_length" in inputs_of(bls.build_request(generation_request(min_tokens=3)))


def test_stop_string_kept_when_asked() -> None:
    adapter = TrtllmAdapter(model(BLS_INPUTS, trtllm.BLS), BackendOptions())
    request = generation_request(stream=False, stop=["END"], include_stop_str_in_output=True)
    reader = adapter.reader(request, None)
    assert with_stops(request, reader.read(text_response(b"yes END more"), final=True)).text == "yes END"


LOG_PROBS_MODEL = model(
    {**ENSEMBLE_INPUTS, "return_log_probs": "BOOL"},
    trtllm.ENSEMBLE,
    outputs=("text_output", "cum_log_probs", "output_log_probs"),
)


def with_log_probs(response: pb.ModelInferResponse, values: list[float], total: float) -> pb.ModelInferResponse:
    """`output_log_probs` [1, 1, tokens] and `cum_log_probs` [1, 1] added to a response."""
    response.outputs.add(name="output_log_probs", datatype="FP32", shape=[1, 1, len(values)])
    response.raw_output_contents.append(tensors.encode_numbers(values, "FP32"))
    response.outputs.add(name="cum_log_probs", datatype="FP32", shape=[1, 1])
    response.raw_output_contents.append(tensors.encode_numbers([total], "FP32"))
    return response


def test_logprobs_send_return_log_probs_where_declared() -> None:
    sent = inputs_of(TrtllmAdapter(LOG_PROBS_MODEL, BackendOptions()).build_request(generation_request(logprobs=0)))
    assert sent["return_log_probs"] == ("BOOL", [1, 1], b"\x01")
    plain = TrtllmAdapter(model(ENSEMBLE_INPUTS, trtllm.ENSEMBLE), BackendOptions())
    assert "return_log_probs" not in inputs_of(plain.build_request(generation_request()))


@pytest.mark.parametrize(
    ("adapter_model", "overrides", "param"),
    [
        (model(ENSEMBLE_INPUTS, trtllm.ENSEMBLE), {"logprobs": 0}, "logprobs"),
        (model({**ENSEMBLE_INPUTS, "return_log_probs": "BOOL"}, trtllm.ENSEMBLE), {"logprobs": 0}, "logprobs"),
        (model(ENSEMBLE_INPUTS, trtllm.ENSEMBLE), {"cumulative_logprob": True}, "best_of"),
        (LOG_PROBS_MODEL, {"logprobs": 1, "logprobs_param": "top_logprobs"}, "top_logprobs"),
        (LOG_PROBS_MODEL, {"logprobs": 2, "sampled_in_top": True}, "logprobs"),
    ],
)
def test_logprobs_the_model_cannot_report_are_a_400(adapter_model: ModelInfo, overrides: dict, param: str) -> None:
    adapter = TrtllmAdapter(adapter_model, BackendOptions())
    for attempt in (
        lambda: adapter.build_request(generation_request(**overrides)),
        lambda: adapter.reader(generation_request(**overrides), WordTokenizer()),
    ):
        with pytest.raises(InvalidRequest) as caught:
            attempt()
        assert caught.value.param == param


def test_logprobs_need_the_tokenizer() -> None:
    with pytest.raises(InvalidRequest) as caught:
        TrtllmAdapter(LOG_PROBS_MODEL, BackendOptions()).reader(generation_request(logprobs=0), None)
    assert caught.value.param == "logprobs" and "--tokenizer" in caught.value.message


def test_streamed_logprobs_pair_each_responses_tokens_with_their_values() -> None:
    reader = TrtllmAdapter(LOG_PROBS_MODEL, BackendOptions()).reader(
        generation_request(logprobs=0, max_tokens=50), WordTokenizer()
    )
    first = reader.read(with_log_probs(text_response(b"Say"), [-0.5], -0.5), final=False)
    second = reader.read(with_log_probs(text_response(b" yes"), [-0.25], -0.75), final=False)
    last = reader.read(pb.ModelInferResponse(), final=True)
    assert (first.text, first.logprobs) == ("", [])  # the last token waits: more text may extend it
    assert (second.text, second.logprobs) == ("Say", [TokenLogprob("Say", -0.5)])
    assert (last.text, last.logprobs, last.finish_reason) == (" yes", [TokenLogprob(" yes", -0.25)], "stop")
    assert first.cumulative_logprob is None  # only read for best_of


def test_non_streamed_logprobs_skip_the_echo_the_stop_word_and_the_end_token() -> None:
    adapter = TrtllmAdapter(
        model(
            {**BLS_INPUTS, "return_log_probs": "BOOL"},
            trtllm.BLS,
            outputs=("text_output", "cum_log_probs", "output_log_probs"),
        ),
        BackendOptions(),
    )
    request = generation_request(stream=False, prompt="Say it", stop=["END"], logprobs=1, sampled_in_top=True)
    reader = adapter.reader(request, WordTokenizer())
    # Prompt echoed; values for ": yes END" and the end token.
    response = with_log_probs(text_response(b"Say it: yes END"), [-1.0, -2.0, -3.0, -4.0], -10.0)
    delta = with_stops(request, reader.read(response, final=True))
    assert delta.text == ": yes "
    assert delta.logprobs == [
        TokenLogprob(":", -1.0, ((":", -1.0),)),
        TokenLogprob(" yes", -2.0, ((" yes", -2.0),)),
        TokenLogprob(" ", -3.0, ((" ", -3.0),)),
    ]


def test_cumulative_logprob_is_read_for_best_of() -> None:
    reader = TrtllmAdapter(LOG_PROBS_MODEL, BackendOptions()).reader(
        generation_request(stream=False, cumulative_logprob=True), None
    )
    delta = reader.read(with_log_probs(text_response(b"a b"), [-1.0, -0.5], -1.5), final=True)
    assert (delta.text, delta.cumulative_logprob, delta.logprobs) == ("a b", -1.5, None)
