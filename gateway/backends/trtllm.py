"""Requests to and responses from TensorRT-LLM models: the inflight_batcher_llm ensemble,
the decoupled `tensorrt_llm_bls`, and the LLM-API model (see triton-backends notes §2, §4).

Requests are built from the inputs the model's configuration declares, with their declared
datatypes and whichever name the deployment's version uses. These models report no finish
reason (except the LLM-API one), leave stop words in the text, may echo the prompt, and
stream text either as per-response pieces or cumulatively; the reader evens all that out.
Their logprobs come as one value per generated token (`output_log_probs`) without the tokens:
the reader pairs them with the re-tokenized text (see gateway/backends/alignment.py).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from tritonclient.grpc import service_pb2 as pb

from gateway.backends.alignment import LogprobAligner
from gateway.backends.base import BackendOptions, RequestBuilder, output_indices, token_counts
from gateway.backends.errors import generic_backend_error, translate_triton_error
from gateway.backends.text import CumulativeText, DeltaText
from gateway.errors import APIError, BackendError, InvalidRequest
from gateway.generation import Delta, GenerationRequest, GuidedDecoding, Sampling, TokenizerTools
from gateway.model_info import BackendFamily, Flavour, ModelInfo, ModelSignature
from gateway.triton import tensors

# OpenAI field -> candidate input names, newest first (v0.19 renamed random_seed and min_length).
_PIPELINE_INPUTS: dict[str, tuple[str, ...]] = {
    "prompt": ("text_input",),
    "stream": ("stream",),
    "max_tokens": ("max_tokens",),
    "temperature": ("temperature",),
    "top_p": ("top_p",),
    "top_k": ("top_k",),
    "seed": ("seed", "random_seed"),
    "presence_penalty": ("presence_penalty",),
    "frequency_penalty": ("frequency_penalty",),
    "stop": ("stop_words",),
    "repetition_penalty": ("repetition_penalty",),
    "min_tokens": ("min_tokens", "min_length"),
    "min_p": ("min_p",),
    "ignore_eos": (),
    "skip_special_tokens": (),
    "include_stop_str_in_output": (),  # the gateway applies stop strings on these models
    "guided": ("guided_decoding_guide_type",),
    "lora": ("lora_task_id",),
}
_LLM_API_INPUTS: dict[str, tuple[str, ...]] = {
    "prompt": ("text_input",),
    "stream": ("streaming",),
    "max_tokens": ("sampling_param_max_tokens",),
    "temperature": ("sampling_param_temperature",),
    "top_p": ("sampling_param_top_p",),
    "top_k": ("sampling_param_top_k",),
    "seed": ("sampling_param_seed",),
    "presence_penalty": ("sampling_param_presence_penalty",),
    "frequency_penalty": ("sampling_param_frequency_penalty",),
    "stop": ("sampling_param_stop",),
    "repetition_penalty": ("sampling_param_repetition_penalty",),
    "min_tokens": ("sampling_param_min_tokens",),
    "min_p": ("sampling_param_min_p",),
    "ignore_eos": ("sampling_param_ignore_eos",),
    "skip_special_tokens": ("sampling_param_skip_special_tokens",),
    "include_stop_str_in_output": ("sampling_param_include_stop_str_in_output",),
    "guided": (),
    "lora": (),
}
# Sampling fields no TensorRT-LLM model can take, and why; and those the gateway applies itself
# where the model has no input for them.
_REFUSED = {
    "stop_token_ids": "token-id stop conditions",
    "logit_bias": "logit_bias (TensorRT-LLM biases words, not token ids)",
}
_APPLIED_BY_THE_GATEWAY = frozenset({"include_stop_str_in_output"})
_LLM_API_FINISH_REASONS = {"stop": "stop", "length": "length"}
_ENSEMBLE_PREFIX = re.compile(r"^(in ensemble '[^']*', )+")
_TRACEBACK = "Traceback (most recent call last)"


class TrtllmAdapter:
    """Builds ModelInferRequests for one TensorRT-LLM model and reads its responses."""

    def __init__(self, model: ModelInfo, options: BackendOptions) -> None:
        self.model = model
        self._llm_api = model.flavour is LLM_API
        table = _LLM_API_INPUTS if self._llm_api else _PIPELINE_INPUTS
        self._names = {field: next((n for n in names if model.accepts(n)), None) for field, names in table.items()}
        self._candidates = table
        accumulate = model.parameters.get("accumulate_tokens", "").strip().lower() == "true"
        self.cumulative = self._llm_api or accumulate
        self._excludes_input = model.accepts("exclude_input_in_output")
        self._loaded_tasks: set[int] = set()  # LoRA tasks whose weights Triton has been sent
        self._lora_files: dict[str, tuple[tuple[list[int], bytes], tuple[list[int], bytes]]] = {}

    # -- requests ------------------------------------------------------------------------

    def build_request(self, request: GenerationRequest) -> pb.ModelInferRequest:
        builder = RequestBuilder(self.model, request.request_id)
        builder.add_bytes(self._require("prompt"), request.prompt.encode("utf-8"))
        self._add_number(builder, "max_tokens", request.max_tokens, required=not self._llm_api)
        stream_input = self._names["stream"]
        if stream_input is not None:
            builder.add_bool(stream_input, request.stream)
        self._add_sampling(builder, request.sampling)
        if request.images:
            raise self._refusal("messages", "images")
        if request.lora_name is not None:
            self._add_lora(builder, request.lora_name, request.lora_path)
        if request.logprobs is not None or request.cumulative_logprob:
            self._check_log_probs(request)
            builder.add_bool("return_log_probs", True)
        if request.guided is not None:
            self._add_guide(builder, request.guided)
        stop_input = self._names["stop"]
        if request.stop and stop_input is not None:
            builder.add_bytes_list(stop_input, [stop.encode("utf-8") for stop in request.stop])
        builder.add_bool_if_declared("exclude_input_in_output", True)
        builder.add_bool_if_declared("return_num_input_tokens", True)
        builder.add_bool_if_declared("return_num_output_tokens", True)
        builder.add_bool_if_declared("return_finish_reason", True)
        return builder.message

    def _add_sampling(self, builder: RequestBuilder, sampling: Sampling) -> None:
        """Every sampling field that is set, through the layout's name table, in the declared
        datatype; a field the model has no input for is a 400 naming it."""
        if sampling.seed is not None and sampling.seed < 0:
            raise InvalidRequest("seed must be non-negative for TensorRT-LLM models.", param="seed")
        for field, value in self._with_openai_defaults(sampling.given()).items():
            if field in _REFUSED:
                raise self._refusal(field, _REFUSED[field])
            if field in _APPLIED_BY_THE_GATEWAY and self._names[field] is None:
                continue
            if isinstance(value, bool):
                builder.add_bool(self._require(field), value)
            else:
                self._add_number(builder, field, value)

    def _with_openai_defaults(self, values: dict[str, Any]) -> dict[str, Any]:
        """temperature, top_k and top_p as TensorRT-LLM should get them. Greedy (temperature
        0) is top_k 1. Otherwise OpenAI samples (temperature 1, top_p 1 by default), but
        TensorRT-LLM decodes greedily when temperature, top_k and top_p are all unset, and a
        temperature alone was not seen to make it sample: OpenAI's defaults are sent outright
        wherever the model declares the inputs."""
        if values.get("temperature") == 0.0 and self._names["top_k"] is not None:
            del values["temperature"]
            values["top_k"] = 1
            return values
        if "temperature" not in values and self._names["temperature"] is not None:
            values["temperature"] = 1.0
        if "top_k" not in values and "top_p" not in values and self._names["top_p"] is not None:
            values["top_p"] = 1.0
        return values

    def _require(self, field: str) -> str:
        name = self._names[field]
        if name is None:
            candidates = self._candidates[field]
            expected = f" (expected one of: {', '.join(candidates)})" if candidates else ""
            raise InvalidRequest(
                f"The model '{self.model.name}' declares no input for {field}{expected}.",
                param=field,
                code="unsupported_parameter",
            )
        return name

    def _refusal(self, param: str, what: str) -> InvalidRequest:
        return InvalidRequest(
            f"The TensorRT-LLM model '{self.model.name}' cannot take {what}.", param=param, code="unsupported_parameter"
        )

    def _check_log_probs(self, request: GenerationRequest) -> None:
        """Per-token logprobs need `output_log_probs`, best_of's ranking `cum_log_probs`, both
        `return_log_probs`. TensorRT-LLM reports the sampled token's logprob and no alternatives:
        only where the API lists the sampled token among them (completions) is one possible."""
        if request.logprobs is not None:
            self._require_log_probs("output_log_probs", "logprobs")
            most = 1 if request.sampled_in_top else 0
            if request.logprobs > most:
                raise InvalidRequest(
                    f"The TensorRT-LLM model '{self.model.name}' reports the sampled token's logprob but no "
                    f"alternatives: {request.logprobs_param} may be at most {most}.",
                    param=request.logprobs_param,
                    code="unsupported_parameter",
                )
        if request.cumulative_logprob:
            self._require_log_probs("cum_log_probs", "best_of")

    def _require_log_probs(self, output: str, param: str) -> None:
        if not self.model.accepts("return_log_probs") or output not in self.model.outputs:
            raise self._refusal(param, f"{param} (it declares no return_log_probs input or no {output} output)")

    def _add_lora(self, builder: RequestBuilder, name: str, path: str | None) -> None:
        """`lora_task_id`, with the adapter's weights and config the first time (TensorRT-LLM
        keeps them in a cache by task id; `retryable` sends them again if it forgot)."""
        input_name = self._names["lora"]
        if input_name is None:
            raise self._refusal("model", "LoRA adapters (it declares no lora_task_id input)")
        task = lora_task_id(name)
        builder.add_number(input_name, self.model.inputs[input_name].datatype, task)
        if task in self._loaded_tasks:
            return
        (weights_shape, weights), (config_shape, config) = self._adapter_files(name, path)
        builder.add_tensor("lora_weights", "FP16", weights_shape, weights)
        builder.add_tensor("lora_config", "INT32", config_shape, config)
        self._loaded_tasks.add(task)

    def _adapter_files(self, name: str, path: str | None) -> tuple[tuple[list[int], bytes], tuple[list[int], bytes]]:
        cached = self._lora_files.get(name)
        if cached is not None:
            return cached
        folder = Path(path or "")
        try:
            weights = np.load(folder / "model.lora_weights.npy")
            config = np.load(folder / "model.lora_config.npy")
        except (OSError, ValueError) as exc:
            raise InvalidRequest(
                f"The LoRA adapter '{name}' has no readable model.lora_weights.npy / model.lora_config.npy in "
                f"{folder}: {exc}",
                param="model",
                code="adapter_not_found",
            ) from None
        weights = weights.reshape(weights.shape[-2:]) if weights.ndim > 2 else weights
        config = config.reshape(-1, 3)
        files = (
            (list(weights.shape), weights.astype("<f2").tobytes()),
            (list(config.shape), config.astype("<i4").tobytes()),
        )
        self._lora_files[name] = files
        return files

    def retryable(self, message: str, request: GenerationRequest) -> bool:
        if request.lora_name is not None and "not found in cache" in message:
            self._loaded_tasks.discard(lora_task_id(request.lora_name))
            return True
        return False

    def _add_guide(self, builder: RequestBuilder, guided: GuidedDecoding) -> None:
        """TensorRT-LLM v0.19+ guided decoding: a guide type and the guide itself."""
        if self._names["guided"] is None or not self.model.accepts("guided_decoding_guide"):
            raise InvalidRequest(
                f"The model '{self.model.name}' has no guided-decoding inputs "
                f"(guided_decoding_guide_type, guided_decoding_guide), so it cannot honour {guided.param}.",
                param=guided.param,
                code="unsupported_parameter",
            )
        if guided.kind == "json_schema":
            builder.add_bytes("guided_decoding_guide_type", b"json_schema")
            builder.add_bytes("guided_decoding_guide", json.dumps(guided.schema).encode("utf-8"))
        else:
            builder.add_bytes("guided_decoding_guide_type", b"json")
            builder.add_bytes("guided_decoding_guide", b"")

    def _add_number(self, builder: RequestBuilder, field: str, value: float | None, required: bool = False) -> None:
        """Send `value` in the declared datatype; a value the model cannot take is a 400."""
        if value is None:
            return
        name = self._names[field]
        if name is None:
            if field == "max_tokens" and not required:
                return  # the LLM API model has a default of its own
            self._require(field)  # raises: the model cannot honour this value
            return
        datatype = self.model.inputs[name].datatype
        number = value if datatype.startswith("FP") else int(value)
        builder.add_number(name, datatype, number)

    def reader(self, request: GenerationRequest, tokenizer: TokenizerTools | None) -> TrtllmResponseReader:
        echoes: list[str] = []
        if not request.stream and not self._excludes_input and not self._llm_api:
            echoes.append(request.prompt)
            if tokenizer is not None:
                echoes.append(tokenizer.round_trip(request.prompt))
        return TrtllmResponseReader(request, self.cumulative, echoes, tokenizer, self._aligner(request, tokenizer))

    def _aligner(self, request: GenerationRequest, tokenizer: TokenizerTools | None) -> LogprobAligner | None:
        """The text models return no tokens: the text is re-tokenized to pair it with the values."""
        self._check_log_probs(request)  # before the tokenizer: the model's own limits are the clearer 400
        if request.logprobs is None:
            return None
        if tokenizer is None:
            raise InvalidRequest(
                f"logprobs of the TensorRT-LLM model '{self.model.name}' need its tokenizer (--tokenizer): "
                "the text is re-tokenized to find the tokens.",
                param="logprobs",
                code="unsupported_parameter",
            )
        return LogprobAligner(tokenizer.token_pieces, with_top=request.logprobs > 0)

    # -- errors --------------------------------------------------------------------------

    def translate_error(self, message: str) -> APIError:
        message = _ENSEMBLE_PREFIX.sub("", message)
        known = translate_triton_error(message)
        if known is not None:
            return known
        if _TRACEBACK in message:  # the BLS sends the whole Python traceback
            lines = [line.strip() for line in message.strip().splitlines() if line.strip()]
            message = lines[-1] if lines else message
        if message == "Request was cancelled":
            return BackendError("The request was cancelled on the inference server.", code="cancelled")
        return generic_backend_error(message.removeprefix("Error generating request: "))


# -- flavours: the pipeline's text models (ensemble, BLS), the LLM-API model, and the token-level
# `tensorrt_llm` model, recognised but not served.


def _takes_text(signature: ModelSignature) -> bool:
    return "text_input" in signature.inputs


def _is_token_level(signature: ModelSignature, forced: bool) -> bool:
    return not forced and signature.backend == "tensorrtllm"


def _is_llm_api(signature: ModelSignature, forced: bool) -> bool:
    llm_api = any(name.startswith("sampling_param_") for name in signature.inputs)
    return _takes_text(signature) and llm_api and (forced or signature.backend == "python")


def _is_ensemble(signature: ModelSignature, forced: bool) -> bool:
    laid_out = forced or "max_tokens" in signature.inputs
    return _takes_text(signature) and signature.platform == "ensemble" and laid_out


def _is_bls(signature: ModelSignature, forced: bool) -> bool:
    laid_out = forced or (signature.backend == "python" and "max_tokens" in signature.inputs)
    return _takes_text(signature) and laid_out


def _ensemble_preprocessing(signature: ModelSignature) -> str | None:
    """The ensemble step fed `text_input` as QUERY (the preprocessing model)."""
    return next((model for model, inputs in signature.steps if inputs.get("QUERY") == "text_input"), None)


def _bls_preprocessing(signature: ModelSignature) -> str | None:
    return "preprocessing"  # the real BLS calls its preprocessing model by this fixed name


TOKEN_LEVEL = Flavour(
    "tensorrtllm-tokens",
    BackendFamily.TENSORRTLLM,
    _is_token_level,
    None,
    not_served="a token-level TensorRT-LLM model (token ids in and out); "
    "use the pipeline's text model instead (e.g. 'ensemble' or 'tensorrt_llm_bls')",
)
LLM_API = Flavour("tensorrtllm-llmapi", BackendFamily.TENSORRTLLM, _is_llm_api, TrtllmAdapter, adds_special_tokens=True)
ENSEMBLE = Flavour(
    "tensorrtllm-ensemble",
    BackendFamily.TENSORRTLLM,
    _is_ensemble,
    TrtllmAdapter,
    tokenizing_model=_ensemble_preprocessing,
)
BLS = Flavour(
    "tensorrtllm-bls",
    BackendFamily.TENSORRTLLM,
    _is_bls,
    TrtllmAdapter,
    tokenizing_model=_bls_preprocessing,
    stops_on_cancel=False,  # the real BLS gives its inner request an id of its own
)
FLAVOURS = (TOKEN_LEVEL, LLM_API, ENSEMBLE, BLS)  # in detection order


def first_beam(response: pb.ModelInferResponse, index: int) -> list[float]:
    """The first beam's values of an FP32 output shaped [1, beams, k] or [1, beams] (k, or the
    beams, being the last dimension): `output_log_probs` per token, `cum_log_probs` per beam."""
    shape = response.outputs[index].shape
    count = shape[-1] if shape else 0
    return [float(value) for value in tensors.decode_numbers(response.raw_output_contents[index], "FP32")[:count]]


def lora_task_id(adapter: str) -> int:
    """A task id derived from the adapter's name, so every gateway replica uses the same one."""
    return int.from_bytes(hashlib.blake2b(adapter.encode(), digest_size=8).digest(), "little") & (2**63 - 1)


class TrtllmResponseReader:
    """Turns TensorRT-LLM responses into deltas: joins or diffs the text, strips an echoed
    prompt, infers the finish reason from the token count, and pairs the text with
    `output_log_probs` when logprobs are asked for. Stop strings are cut later, by the
    pipeline's stop-string stage (gateway/openai/stops.py), tokens included."""

    def __init__(
        self,
        request: GenerationRequest,
        cumulative: bool,
        echoes: Sequence[str],
        tokenizer: TokenizerTools | None,
        aligner: LogprobAligner | None = None,
        honours_max_tokens: bool = True,  # False: the model was not told max_tokens, never "length"
    ) -> None:
        self._max_tokens = request.max_tokens if honours_max_tokens else None
        self._stream = request.stream
        self._text: CumulativeText | DeltaText = CumulativeText() if cumulative else DeltaText()
        self._cumulative = cumulative
        self._previous_output = b""  # the last streamed text_output, as it came
        self._pending_steps = 0  # streamed responses that brought no text yet (see _steps)
        self._echoes = sorted(echoes, key=len, reverse=True)
        self._tokenizer = tokenizer
        self._generated = 0  # tokens reported by the model (num_output_tokens)
        self._counted = False
        self._raw: list[str] = []  # the generated text, to count it when nobody reports
        self._aligner = aligner
        self._ranked = request.cumulative_logprob

    def read(self, response: pb.ModelInferResponse, final: bool) -> Delta:
        raw = response.raw_output_contents
        text = ""
        prompt_tokens = completion_tokens = None
        finish_reason: str | None = None
        values: list[float] = []
        cumulative = None
        if raw:
            indices = output_indices(response)
            if self._aligner is not None and "output_log_probs" in indices:
                values = first_beam(response, indices["output_log_probs"])
            if self._ranked and "cum_log_probs" in indices:
                cumulative = next(iter(first_beam(response, indices["cum_log_probs"])), None)
            output = tensors.decode_first_bytes(raw[indices["text_output"]])
            piece = self._text.feed(output)
            if not self._stream:
                piece = self._without_echo(piece)
            prompt_tokens, completion_tokens = token_counts(response, indices)
            if completion_tokens is not None:
                self._counted = True
            elif self._stream:
                completion_tokens = self._steps(output)
            if completion_tokens is not None:
                self._generated += completion_tokens
            index = indices.get("finish_reason")
            if index is not None:
                finish_reason = self._llm_api_finish_reason(tensors.decode_first_bytes(raw[index]).decode())
            text = piece
        if final:
            text += self._text.flush()
        self._raw.append(text)
        if final and not self._stream and not self._counted and completion_tokens is None and self._tokenizer:
            # One response with the whole text, decoded at once: re-tokenizing it gives the count.
            completion_tokens = self._tokenizer.count_tokens("".join(self._raw))
            self._generated += completion_tokens
        if final and finish_reason is None:
            finish_reason = self._inferred_finish_reason()
        logprobs = None
        if self._aligner is not None:
            text, logprobs = self._aligner.feed(text, values, end=finish_reason is not None)
        return Delta(text, finish_reason, prompt_tokens, completion_tokens, logprobs, cumulative)

    def _steps(self, output: bytes) -> int:
        """Tokens a streamed response holds, for models that report no counts: TensorRT-LLM
        streams a response per decoding step, and ends on the end id with one that holds no
        token. A response that brings no text (an empty piece, or a cumulative text unchanged:
        a character still incomplete, a special token the detokenizer drops) is counted once a
        later one brings text, so only the trailing end-id response goes uncounted. Counted
        from the responses, not from re-tokenized text: `postprocessing` decodes each response
        alone, so a character split across tokens arrives as U+FFFD, which re-tokenizes into
        more tokens than the engine generated."""
        brought_text = output != self._previous_output if self._cumulative else bool(output)
        self._previous_output = output
        if not brought_text:
            self._pending_steps += 1
            return 0
        steps, self._pending_steps = self._pending_steps + 1, 0
        return steps

    def _without_echo(self, text: str) -> str:
        for echo in self._echoes:
            if echo and text.startswith(echo):
                return text[len(echo) :]
        return text

    def _llm_api_finish_reason(self, reason: str) -> str | None:
        if reason == "None":
            return None
        if reason in ("cancelled", "timeout"):
            raise BackendError(f"The model's backend ended the generation early (finish reason '{reason}').")
        return _LLM_API_FINISH_REASONS.get(reason, "stop")

    def _inferred_finish_reason(self) -> str:
        return "length" if self._max_tokens is not None and self._generated >= self._max_tokens else "stop"
