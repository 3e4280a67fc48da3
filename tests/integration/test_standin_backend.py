"""The stand-in vLLM backend behaves like the real one on the wire (raw gRPC, no gateway):
the gateway's tests are only as good as this imitation."""

from __future__ import annotations

import base64
import json
import math
import re

import pytest
from tritonclient.grpc import service_pb2 as pb

from gateway.triton import tensors
from gateway.triton.client import TritonClient, TritonErrorMessage
from tests.integration.test_images import png


def build(prompt: str, params: dict, **bools: bool) -> pb.ModelInferRequest:
    message = pb.ModelInferRequest(model_name="vllm_model", id="raw-1")
    inputs = [("text_input", "BYTES", tensors.encode_one_bytes(prompt.encode()))]
    inputs.append(("sampling_parameters", "BYTES", tensors.encode_one_bytes(json.dumps(params).encode())))
    inputs += [(name, "BOOL", b"\x01" if value else b"\x00") for name, value in bools.items()]
    for name, datatype, raw in inputs:
        tensor = message.inputs.add(name=name, datatype=datatype)
        tensor.shape.append(1)
        message.raw_input_contents.append(raw)
    return message


async def responses(triton, message: pb.ModelInferRequest) -> list[dict]:  # type: ignore[no-untyped-def]
    client = TritonClient(triton.grpc_url)
    decoded = []
    try:
        async with client.stream(message) as stream:
            async for response in stream:
                outputs = {}
                for output, raw in zip(response.outputs, response.raw_output_contents, strict=True):
                    if output.datatype == "BYTES":
                        outputs[output.name] = tensors.decode_bytes(raw)[0].decode()
                    else:
                        outputs[output.name] = tensors.decode_numbers(raw, output.datatype)
                outputs["final"] = stream.finished
                decoded.append(outputs)
    finally:
        await client.close()
    return decoded


ALL_OUTPUTS = {
    "return_finish_reason": True,
    "return_num_input_tokens": True,
    "return_num_output_tokens": True,
    "return_cumulative_logprob": True,
}


async def test_streaming_sends_deltas_with_none_until_the_last(triton, tokenizer) -> None:
    got = await responses(
        triton,
        build("hi", {"max_tokens": 50, "temperature": 0}, stream=True, exclude_input_in_output=True, **ALL_OUTPUTS),
    )
    assert "".join(r["text_output"] for r in got) == "You said: hi"
    assert [r["finish_reason"] for r in got[:-1]] == ["None"] * (len(got) - 1)
    assert got[-1]["finish_reason"] == "stop" and got[-1]["final"] and not any(r["final"] for r in got[:-1])
    assert all(r["num_output_tokens"] == [1] for r in got)  # a delta per response; EOS counted too
    assert got[-1]["text_output"] == ""  # the end-of-sequence token adds no text
    prompt_tokens = len(tokenizer.encode("hi"))  # as vLLM's engine tokenizes it: special tokens added
    assert {tuple(r["num_input_tokens"]) for r in got} == {(prompt_tokens,)}  # on every response
    assert math.isnan(got[-1]["cumulative_logprob"][0])  # no logprobs asked for


async def test_non_streaming_prepends_the_prompt_unless_excluded(triton) -> None:
    [with_prompt] = await responses(triton, build("hi", {"max_tokens": 50, "temperature": 0}))
    assert with_prompt["text_output"] == "hiYou said: hi"
    assert set(with_prompt) == {"text_output", "final"}  # outputs only when asked for
    [without] = await responses(triton, build("hi", {"max_tokens": 50}, exclude_input_in_output=True, **ALL_OUTPUTS))
    assert without["num_output_tokens"][0] > 1 and without["final"]


async def test_streaming_with_the_prompt_included_is_an_error(triton) -> None:
    with pytest.raises(TritonErrorMessage, match="exclude_input_in_output"):
        await responses(triton, build("hi", {"max_tokens": 5}, stream=True, exclude_input_in_output=False))


@pytest.mark.parametrize(
    "params",
    [{"max_tokens": 5, "bogus": 1}, {"max_tokens": None}, {"temperature": -1}, {"top_p": 0}, {"max_tokens": "x"}],
)
async def test_bad_sampling_parameters_fail_with_the_unhelpful_message(triton, params: dict) -> None:
    with pytest.raises(TritonErrorMessage, match="'NoneType' object has no attribute 'lora_name'"):
        await responses(triton, build("hi", params, stream=True, exclude_input_in_output=True))


async def test_scalars_are_coerced_like_the_real_backend(triton) -> None:
    # "false" is a non-empty string, so bool("false") is True: ignore_eos is on.
    got = await responses(
        triton, build("hi", {"max_tokens": "20", "ignore_eos": "false"}, exclude_input_in_output=True, **ALL_OUTPUTS)
    )
    assert got[-1]["finish_reason"] == "length" and got[-1]["num_output_tokens"] == [20]


async def test_string_keyed_logit_bias_fails_with_an_empty_message(triton) -> None:  # type: ignore[no-untyped-def]
    """What the real backend does: it coerces values, not keys, so vLLM gets string token ids
    and fails with a TypeError that vLLM 0.32 wraps into an exception with no message."""
    with pytest.raises(TritonErrorMessage) as raised:
        await responses(triton, build("hi", {"max_tokens": 5, "logit_bias": {"5": 1.0}}, exclude_input_in_output=True))
    assert raised.value.message == "Error generating stream: "


async def test_refusals_carry_vllm_parameter_suffix(triton) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(TritonErrorMessage) as raised:
        await responses(triton, build("word " * 400, {"max_tokens": 5}, exclude_input_in_output=True))
    assert raised.value.message.startswith("Error generating stream: This model's maximum context length is 256")
    assert re.search(r"\(parameter=input_tokens, value=\d+\)$", raised.value.message)
    with pytest.raises(TritonErrorMessage) as raised:
        await responses(
            triton, build("hi", {"max_tokens": 5, "stop_token_ids": [999999]}, exclude_input_in_output=True)
        )
    assert "(parameter=stop_token_ids, value=[999999])" in raised.value.message


async def test_images_to_a_text_only_model_fail_with_an_empty_message(triton) -> None:  # type: ignore[no-untyped-def]
    message = build("hi", {"max_tokens": 5}, exclude_input_in_output=True)
    message.model_name = "vllm_slow"  # declares `image` but allows no images per prompt
    tensor = message.inputs.add(name="image", datatype="BYTES")
    tensor.shape.append(1)
    message.raw_input_contents.append(tensors.encode_one_bytes(base64.b64encode(png())))
    with pytest.raises(TritonErrorMessage) as raised:
        await responses(triton, message)
    assert raised.value.message == "Error generating stream: "
