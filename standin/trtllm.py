"""Python models of a TensorRT-LLM deployment, as CPU stand-ins: the inflight_batcher_llm
pipeline's `preprocessing` and `postprocessing`, its decoupled `tensorrt_llm_bls`, and the
LLM-API model. Each model's `1/model.py` imports its class from here.

The BLS mirrors the real one's quirks: old input names (`random_seed`, `min_length`), no
`exclude_input_in_output` (non-streaming output keeps the prompt), stop words left in the
output, text decoded per response on its own (or accumulated with the `accumulate_tokens`
parameter), errors sent as a Python traceback, and always a separate flag-only final response.
It passes `return_log_probs` on and the `tensorrt_llm` model's `cum_log_probs` and
`output_log_probs` back as they come (per response, also when the text is accumulated). As the
real `tensorrt_llm_bls/1/model.py` does, it never checks for cancellation and gives its inner
`tensorrt_llm` request a fresh id, so an abandoned request generates to its end while the
requests behind it wait (one instance serves one request at a time).
"""

from __future__ import annotations

import asyncio
import json
import traceback
import uuid
from typing import Any

import numpy as np
import triton_python_backend_utils as pb_utils

from standin.decoupled import AsyncDecoupledModel
from standin.generation import Generation
from standin.text import StandInTokenizer, asks_for_prompt_report, reply_for, resolve

_FINAL = pb_utils.TRITONSERVER_RESPONSE_COMPLETE_FINAL
_LOG_PROBS = ("cum_log_probs", "output_log_probs")


def _parameters(args: dict[str, str]) -> dict[str, str]:
    config = json.loads(args["model_config"])
    return {key: value["string_value"] for key, value in config.get("parameters", {}).items()}


def _tokenizer(args: dict[str, str]) -> StandInTokenizer:
    return StandInTokenizer(resolve(args["model_repository"], _parameters(args)["tokenizer_dir"]))


def _array(request: Any, name: str) -> np.ndarray | None:
    tensor = pb_utils.get_input_tensor_by_name(request, name)
    return None if tensor is None else tensor.as_numpy()


def _words_to_ids(tokenizer: StandInTokenizer, words: list[bytes]) -> np.ndarray:
    """Stop words in TensorRT-LLM's [1, 2, K] format: flattened ids, then end offsets."""
    ids: list[int] = []
    offsets: list[int] = []
    for word in words:
        ids += tokenizer.encode(word.decode("utf-8"))
        offsets.append(len(ids))
    width = max(1, len(ids), len(offsets))
    ids += [0] * (width - len(ids))
    offsets += [-1] * (width - len(offsets))
    return np.array([[ids, offsets]], dtype=np.int32)


_FALSE = ("false", "0", "f", "n", "no")


class Preprocessing:
    """QUERY text -> INPUT_ID tokens; STOP_WORDS_DICT words -> STOP_WORDS_IDS.

    Like the real `preprocessing/1/model.py`, the query is tokenized with special tokens added
    unless the `add_special_tokens` parameter holds a false value: unset, an unfilled
    `${add_special_tokens}` or any other value means true (a rendered chat prompt that starts
    with the BOS text then gets a second BOS). Stop words are tokenized without them."""

    def initialize(self, args: dict[str, str]) -> None:
        self.tokenizer = _tokenizer(args)
        setting = _parameters(args).get("add_special_tokens", "").lower()
        self.add_special_tokens = setting not in _FALSE

    def execute(self, requests: list[Any]) -> list[Any]:
        responses = []
        for request in requests:
            query = _array(request, "QUERY").reshape(-1)[0].decode("utf-8")
            ids = self.tokenizer.encode(query, add_special_tokens=self.add_special_tokens)
            stop_words = _array(request, "STOP_WORDS_DICT")
            words = [w for w in (stop_words.reshape(-1).tolist() if stop_words is not None else []) if w]
            tensors = [
                pb_utils.Tensor("INPUT_ID", np.array([ids], dtype=np.int32)),
                pb_utils.Tensor("REQUEST_INPUT_LEN", np.array([[len(ids)]], dtype=np.int32)),
                pb_utils.Tensor("STOP_WORDS_IDS", _words_to_ids(self.tokenizer, words)),
                pb_utils.Tensor("OUT_END_ID", np.array([[self.tokenizer.eos_id]], dtype=np.int32)),
                pb_utils.Tensor("OUT_PAD_ID", np.array([[self.tokenizer.pad_id]], dtype=np.int32)),
            ]
            responses.append(pb_utils.InferenceResponse(output_tensors=tensors))
        return responses


class Postprocessing:
    """TOKENS_BATCH -> OUTPUT text, each call decoded on its own (so a streamed character
    split across responses comes out as U+FFFD, as with the real pipeline)."""

    def initialize(self, args: dict[str, str]) -> None:
        self.tokenizer = _tokenizer(args)

    def execute(self, requests: list[Any]) -> list[Any]:
        responses = []
        for request in requests:
            tokens = _array(request, "TOKENS_BATCH")
            lengths = _array(request, "SEQUENCE_LENGTH")
            texts = [
                [
                    self.tokenizer.decode(beam[: int(length)].tolist()).encode("utf-8")
                    for beam, length in zip(batch, lens)
                ]
                for batch, lens in zip(tokens, lengths)
            ]
            output = pb_utils.Tensor("OUTPUT", np.array(texts, dtype=np.object_))
            responses.append(pb_utils.InferenceResponse(output_tensors=[output]))
        return responses


class Bls:
    """The decoupled `tensorrt_llm_bls`: preprocessing, tensorrt_llm and postprocessing
    called through BLS requests, one request at a time as the real model does."""

    def initialize(self, args: dict[str, str]) -> None:
        self.accumulate = _parameters(args).get("accumulate_tokens", "false").lower() == "true"
        self.logger = pb_utils.Logger

    def execute(self, requests: list[Any]) -> None:
        for request in requests:
            sender = request.get_response_sender()
            try:
                self._serve(request, sender)
            except Exception:  # noqa: BLE001 - the real BLS reports the whole traceback
                error = pb_utils.TritonError(traceback.format_exc())
                sender.send(pb_utils.InferenceResponse(error=error), flags=_FINAL)
                continue
            sender.send(flags=_FINAL)  # never on the last data response

    def _serve(self, request: Any, sender: Any) -> None:
        max_tokens = _array(request, "max_tokens")
        if max_tokens is None or int(max_tokens.reshape(-1)[0]) <= 0:
            raise ValueError("max_tokens must be a single value > 0")
        stream = _array(request, "stream")
        streaming = bool(stream.reshape(-1)[0]) if stream is not None else False
        preprocessing_inputs = [pb_utils.Tensor("QUERY", _array(request, "text_input"))]
        preprocessing_inputs.append(pb_utils.Tensor("REQUEST_OUTPUT_LEN", max_tokens))
        stop_words = _array(request, "stop_words")
        if stop_words is not None:
            preprocessing_inputs.append(pb_utils.Tensor("STOP_WORDS_DICT", stop_words))
        pre = pb_utils.InferenceRequest(
            model_name="preprocessing",
            inputs=preprocessing_inputs,
            requested_output_names=["INPUT_ID", "REQUEST_INPUT_LEN", "STOP_WORDS_IDS", "OUT_END_ID", "OUT_PAD_ID"],
        ).exec()
        if pre.has_error():
            raise RuntimeError(pre.error().message())
        pre_out = {
            name: pb_utils.get_output_tensor_by_name(pre, name).as_numpy()
            for name in ("INPUT_ID", "REQUEST_INPUT_LEN", "STOP_WORDS_IDS", "OUT_END_ID", "OUT_PAD_ID")
        }
        llm_inputs = [
            pb_utils.Tensor("input_ids", pre_out["INPUT_ID"]),
            pb_utils.Tensor("input_lengths", pre_out["REQUEST_INPUT_LEN"]),
            pb_utils.Tensor("request_output_len", max_tokens),
            pb_utils.Tensor("end_id", pre_out["OUT_END_ID"]),
            pb_utils.Tensor("pad_id", pre_out["OUT_PAD_ID"]),
            pb_utils.Tensor("stop_words_list", pre_out["STOP_WORDS_IDS"]),
            pb_utils.Tensor("streaming", np.array([[streaming]], dtype=bool)),
        ]
        for ours, theirs in (
            ("lora_task_id", "lora_task_id"),
            ("lora_weights", "lora_weights"),
            ("lora_config", "lora_config"),
            ("temperature", "temperature"),
            ("top_p", "runtime_top_p"),
            ("top_k", "runtime_top_k"),
            ("random_seed", "random_seed"),
            ("min_length", "min_length"),
            ("presence_penalty", "presence_penalty"),
            ("frequency_penalty", "frequency_penalty"),
            ("return_log_probs", "return_log_probs"),
        ):
            value = _array(request, ours)
            if value is not None:
                llm_inputs.append(pb_utils.Tensor(theirs, value))
        # Like the real BLS: the inner request gets an id of its own (a fresh uuid4), and nobody
        # asks `is_cancelled()`: a client that leaves does not stop the generation.
        responses = pb_utils.InferenceRequest(
            model_name="tensorrt_llm",
            inputs=llm_inputs,
            request_id=str(uuid.uuid4()),
            requested_output_names=["output_ids", "sequence_length", *_LOG_PROBS],
        ).exec(decoupled=True)
        accumulated: list[int] = []
        generated = 0
        for response in responses:
            if response.has_error():
                raise RuntimeError(response.error().message())
            output_ids = pb_utils.get_output_tensor_by_name(response, "output_ids")
            if output_ids is None:
                continue  # a flag-only final (the C++ backend sends none, but Triton may)
            ids = output_ids.as_numpy()
            lengths = pb_utils.get_output_tensor_by_name(response, "sequence_length").as_numpy()
            generated += ids.shape[-1] if streaming else 0
            if self.accumulate and streaming:
                accumulated += ids.reshape(-1)[: int(lengths.reshape(-1)[0])].tolist()
                ids = np.array([[accumulated]], dtype=np.int32)
                lengths = np.array([[len(accumulated)]], dtype=np.int32)
            post = pb_utils.InferenceRequest(
                model_name="postprocessing",
                inputs=[pb_utils.Tensor("TOKENS_BATCH", ids), pb_utils.Tensor("SEQUENCE_LENGTH", lengths)],
                requested_output_names=["OUTPUT"],
            ).exec()
            if post.has_error():
                raise RuntimeError(post.error().message())
            text = pb_utils.get_output_tensor_by_name(post, "OUTPUT").as_numpy()
            tensors = [pb_utils.Tensor("text_output", text)]
            for name in _LOG_PROBS:
                tensor = pb_utils.get_output_tensor_by_name(response, name)
                if tensor is not None:
                    tensors.append(pb_utils.Tensor(name, tensor.as_numpy()))
            sender.send(pb_utils.InferenceResponse(output_tensors=tensors))
        # Not in the real model: a line for tests to see how far an abandoned request ran.
        self.logger.log_info(f"[bls] request {request.request_id()} ran to its end: {generated} tokens streamed")


class _LlmApiParams:
    """The LLM API's SamplingParams, as far as the stand-in honours them."""

    def __init__(self, request: Any) -> None:
        def scalar(name: str, default: Any) -> Any:
            value = _array(request, f"sampling_param_{name}")
            return default if value is None else value.reshape(-1)[0].item()

        self.max_tokens = int(scalar("max_tokens", 32))
        temperature, top_p = scalar("temperature", None), scalar("top_p", None)
        self.top_k = int(scalar("top_k", 0))
        # Greedy when temperature, top_k and top_p are all unset, as the LLM API documents.
        unset = temperature is None and top_p is None and self.top_k == 0
        self.temperature = 0.0 if unset else float(1.0 if temperature is None else temperature)
        self.seed = scalar("seed", None)
        stop = _array(request, "sampling_param_stop")
        self.stop = [w.decode("utf-8") for w in stop.reshape(-1).tolist()] if stop is not None else []
        self.stop_token_ids: list[int] = []
        self.min_tokens = 0
        self.ignore_eos = False
        include = _array(request, "sampling_param_include_stop_str_in_output")
        self.include_stop_str_in_output = bool(include.reshape(-1)[0]) if include is not None else False
        self.logprobs = None
        if self.top_k == 1:
            self.temperature = 0.0


class LlmApi(AsyncDecoupledModel):
    """The TensorRT-LLM LLM-API model: `sampling_param_*` inputs and a cumulative
    `text_output` (the whole text so far in every streamed response)."""

    def initialize(self, args: dict[str, str]) -> None:
        self.tokenizer = _tokenizer(args)
        self.token_delay = float(_parameters(args).get("stand_in_token_delay_ms", "0")) / 1000.0
        self.start_loop()

    def error_response(self, exc: Exception) -> Any:
        text = pb_utils.Tensor("text_output", np.array([b"N/A"], dtype=np.object_))
        error = pb_utils.TritonError(f"Error generating request: {exc}")
        return pb_utils.InferenceResponse(output_tensors=[text], error=error)

    async def generate(self, request: Any, sender: Any) -> None:
        prompt = _array(request, "text_input").reshape(-1)[0].decode("utf-8")
        streaming_input = _array(request, "streaming")
        streaming = bool(streaming_input.reshape(-1)[0]) if streaming_input is not None else False
        want_reason = _array(request, "return_finish_reason")
        want_reason = bool(want_reason.reshape(-1)[0]) if want_reason is not None else False
        params = _LlmApiParams(request)
        # The LLM API tokenizes a text prompt with special tokens added (SamplingParams'
        # add_special_tokens defaults to true), a BOS on top of any BOS text in it.
        prompt_ids = self.tokenizer.encode(prompt, add_special_tokens=True)
        if asks_for_prompt_report(prompt):
            reply = self.tokenizer.prompt_report(prompt_ids)
        else:
            reply = reply_for(prompt, params.temperature, params.seed)
        generation = Generation(self.tokenizer, prompt_ids, reply, params, 4096)
        while not generation.finished:
            await asyncio.sleep(self.token_delay)
            if sender.is_cancelled():
                sender.send(flags=_FINAL)
                return
            generation.step()
            if streaming:
                flags = _FINAL if generation.finished else 0
                sender.send(self._response(generation, want_reason), flags=flags)
        if not streaming:
            sender.send(self._response(generation, want_reason), flags=_FINAL)

    def _response(self, generation: Generation, want_reason: bool) -> Any:
        text = generation.visible_text().encode("utf-8")
        tensors = [pb_utils.Tensor("text_output", np.array([text], dtype=np.object_))]
        if want_reason:
            reason = str(generation.finish_reason).encode("utf-8")
            tensors.append(pb_utils.Tensor("finish_reason", np.array([reason], dtype=np.object_)))
        return pb_utils.InferenceResponse(output_tensors=tensors)
