from __future__ import annotations

from tritonclient.grpc import model_config_pb2 as mc

from gateway.backends import generic, trtllm, vllm
from gateway.backends.flavours import FLAVOURS
from gateway.model_info import BackendFamily
from gateway.triton.registry import adds_special_tokens, model_info_from_config


def config(name: str, backend: str, inputs: dict[str, int], max_batch_size: int = 0) -> mc.ModelConfig:
    message = mc.ModelConfig(name=name, backend=backend, max_batch_size=max_batch_size)
    for input_name, data_type in inputs.items():
        message.input.add(name=input_name, data_type=data_type, dims=[1], optional=input_name != "text_input")
    message.output.add(name="text_output", data_type=mc.TYPE_STRING, dims=[-1])
    message.model_transaction_policy.decoupled = True
    return message


def test_vllm_config_becomes_model_info() -> None:
    info, flavour = model_info_from_config(
        config("llm", "vllm", {"text_input": mc.TYPE_STRING, "stream": mc.TYPE_BOOL}), "3", FLAVOURS
    )
    assert flavour is vllm.VLLM and info is not None
    assert info.name == "llm" and info.version == "3" and info.decoupled
    assert info.inputs["text_input"].datatype == "BYTES" and not info.inputs["text_input"].optional
    assert info.inputs["stream"].datatype == "BOOL" and info.inputs["stream"].optional
    assert info.accepts("stream") and not info.accepts("max_tokens")
    assert info.outputs == frozenset({"text_output"})


def test_trtllm_inputs_keep_their_datatypes() -> None:
    inputs = {"text_input": mc.TYPE_STRING, "max_tokens": mc.TYPE_INT32, "seed": mc.TYPE_UINT64}
    info, flavour = model_info_from_config(config("bls", "python", inputs, 64), "1", FLAVOURS)
    assert flavour is trtllm.BLS and info is not None
    assert info.max_batch_size == 64
    assert (info.inputs["max_tokens"].datatype, info.inputs["seed"].datatype) == ("INT32", "UINT64")


def test_non_llm_model_gives_no_info() -> None:
    info, flavour = model_info_from_config(
        config("add", "python", {"INPUT0": mc.TYPE_FP32}), "1", FLAVOURS, BackendFamily.VLLM
    )
    assert info is None and flavour is None


def test_plain_text_models_are_the_generic_flavour() -> None:
    inputs = {"text_input": mc.TYPE_STRING, "stream": mc.TYPE_BOOL}
    info, flavour = model_info_from_config(config("mock_llm", "python", inputs), "1", FLAVOURS)
    assert flavour is generic.PLAIN_TEXT and info is not None and not info.adds_special_tokens
    without_text_output = config("mock_llm", "python", inputs)
    del without_text_output.output[:]
    assert model_info_from_config(without_text_output, "1", FLAVOURS) == (None, None)


def test_who_tokenizes_the_text_input() -> None:
    vllm_model, _ = model_info_from_config(config("llm", "vllm", {"text_input": mc.TYPE_STRING}), "1", FLAVOURS)
    assert vllm_model is not None and vllm_model.adds_special_tokens and vllm_model.tokenizing_model is None
    inputs = {"text_input": mc.TYPE_STRING, "max_tokens": mc.TYPE_INT32}
    bls, _ = model_info_from_config(config("bls", "python", inputs, 64), "1", FLAVOURS)
    assert bls is not None and bls.tokenizing_model == "preprocessing"  # the name the real BLS calls
    ensemble = config("pipeline", "", inputs, 64)
    ensemble.platform = "ensemble"
    step = ensemble.ensemble_scheduling.step.add(model_name="my_preprocessing")
    step.input_map["QUERY"] = "text_input"
    ensemble.ensemble_scheduling.step.add(model_name="tensorrt_llm").input_map["input_ids"] = "_INPUT_ID"
    info, _ = model_info_from_config(ensemble, "1", FLAVOURS)
    assert info is not None and info.tokenizing_model == "my_preprocessing"


def test_add_special_tokens_is_read_as_preprocessing_reads_it() -> None:
    for value in (None, "", "${add_special_tokens}", "True", "yes", "maybe"):
        assert adds_special_tokens(None if value is None else {"add_special_tokens": value})
    for value in ("false", "False", "0", "no", "n", "f"):
        assert not adds_special_tokens({"add_special_tokens": value})
