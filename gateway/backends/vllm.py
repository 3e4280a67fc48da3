"""Requests to and responses from Triton's vLLM backend (see triton-backends notes §3).

Sampling parameters travel as one JSON string. Values are validated by the gateway before
sending because the backend answers any bad key or value with the same unhelpful
"'NoneType' object has no attribute 'lora_name'".
"""

from __future__ import annotations

import json
from typing import Any

import msgspec
from tritonclient.grpc import service_pb2 as pb

from gateway.backends.base import BackendOptions, RequestBuilder, TokenCountOutputs, output_indices, token_counts
from gateway.backends.errors import (
    generic_backend_error,
    parameter_refusal,
    silent_backend_error,
    translate_triton_error,
)
from gateway.errors import APIError, BackendError, BadGateway, InvalidRequest
from gateway.generation import SAMPLING_FIELDS, Delta, GenerationRequest, GuidedDecoding, TokenizerTools, TokenLogprob
from gateway.model_info import BackendFamily, Flavour, ModelInfo, ModelSignature
from gateway.triton import tensors

_UNHELPFUL_PARAMETER_ERROR = "'NoneType' object has no attribute 'lora_name'"
_STREAM_PREFIX = "Error generating stream: "
_CONTEXT_TOO_LONG = "longer than the maximum model length"
_NO_MATRYOSHKA = "does not support Matryoshka embeddings"

# vLLM finish reasons -> OpenAI's; "abort" and "error" end the request with an error.
_FINISH_REASONS = {"stop": "stop", "length": "length", "repetition": "stop"}
_FAILED_FINISH_REASONS = {"abort", "error"}


# Sampling field -> its key in the backend's `sampling_parameters` JSON (vLLM's SamplingParams
# uses the API's names). Unset fields are left out: the backend would coerce a null with
# int(None) and fail.
_SAMPLING_KEYS = {name: name for name in SAMPLING_FIELDS}


_PARAMETERS_ENCODER = msgspec.json.Encoder()


def guided_decoding_value(guided: GuidedDecoding) -> str:
    spec: dict[str, Any] = {"json": guided.schema} if guided.kind == "json_schema" else {"json_object": True}
    return json.dumps(spec, separators=(",", ":"))


class VllmAdapter:
    """Builds ModelInferRequests for one vLLM-backend model and reads its responses."""

    def __init__(self, model: ModelInfo, options: BackendOptions) -> None:
        self.model = model
        self._excludes_input = model.accepts("exclude_input_in_output")
        self._guided_key = options.structured_outputs_key(model.name)

    def build_request(self, request: GenerationRequest) -> pb.ModelInferRequest:
        if request.sampling.logit_bias:
            # The backend coerces sampling-parameter values but not keys: a JSON object's keys
            # reach vLLM as strings, where it needs token ids, and vLLM fails with a TypeError
            # (vLLM 0.32: an error with no message). Nothing the gateway sends can fix that.
            raise InvalidRequest(
                "logit_bias cannot work through Triton's vLLM backend: it hands vLLM the token ids as "
                "strings (JSON object keys), which vLLM cannot use.",
                param="logit_bias",
                code="unsupported_parameter",
            )
        builder = RequestBuilder(self.model, request.request_id)
        builder.add_bytes("text_input", request.prompt.encode("utf-8"))
        builder.add_bool_if_declared("stream", request.stream)
        parameters: dict[str, Any] = {"max_tokens": request.max_tokens}
        parameters.update((_SAMPLING_KEYS[name], value) for name, value in request.sampling.given().items())
        if request.stop:
            parameters["stop"] = request.stop
        logprobs = request.logprobs if request.logprobs is not None else (0 if request.cumulative_logprob else None)
        if logprobs is not None:
            parameters["logprobs"] = logprobs
        if request.lora_name is not None:
            parameters["lora_name"] = request.lora_name
        if request.guided is not None:
            # Guided decoding: a JSON *string* of {"json": schema} or {"json_object": true}.
            parameters[self._guided_key] = guided_decoding_value(request.guided)
        builder.add_bytes("sampling_parameters", _PARAMETERS_ENCODER.encode(parameters))
        if request.images:
            if not self.model.accepts("image"):
                raise InvalidRequest(
                    f"The model '{self.model.name}' takes no images (it declares no 'image' input).",
                    param="messages",
                    code="unsupported_parameter",
                )
            builder.add_bytes_list("image", request.images)
        builder.add_bool_if_declared("exclude_input_in_output", True)
        builder.add_bool_if_declared("return_finish_reason", True)
        builder.add_bool_if_declared("return_num_input_tokens", True)
        builder.add_bool_if_declared("return_num_output_tokens", True)
        if request.logprobs is not None:
            self._require_output("return_logprobs", "logprobs")
            builder.add_bool("return_logprobs", True)
        if request.cumulative_logprob:
            self._require_output("return_cumulative_logprob", "best_of")
            builder.add_bool("return_cumulative_logprob", True)
        return builder.message

    def _require_output(self, switch: str, param: str) -> None:
        if not self.model.accepts(switch):
            raise InvalidRequest(
                f"The model '{self.model.name}' cannot report logprobs (it has no '{switch}' input: "
                "vLLM backends before r24.12).",
                param=param,
                code="unsupported_parameter",
            )

    def build_embedding_request(
        self, request_id: str, source: str | list[int], dimensions: int | None
    ) -> pb.ModelInferRequest:
        """The backend's `embedding_request` input: {"input", "pooling_params"} as JSON
        (`text_input` is required by the model config, so an empty one goes along)."""
        builder = RequestBuilder(self.model, request_id)
        builder.add_bytes("text_input", b"")
        embedding: dict[str, Any] = {"input": source}
        if dimensions is not None:
            embedding["pooling_params"] = {"dimensions": [dimensions]}
        builder.add_bytes(self._require_input("embedding_request"), json.dumps(embedding).encode("utf-8"))
        builder.add_bool_if_declared("return_num_input_tokens", True)
        return builder.message

    def read_embedding(self, response: pb.ModelInferResponse) -> tuple[list[float], int | None]:
        indices = output_indices(response)
        raw = response.raw_output_contents
        try:
            vector = json.loads(tensors.decode_first_bytes(raw[indices["text_output"]]))
        except (KeyError, ValueError):
            raise BadGateway("The model's embedding response is not a JSON list of numbers.") from None
        prompt_tokens, _ = token_counts(response, indices)
        return [float(value) for value in vector], prompt_tokens

    def _require_input(self, name: str) -> str:
        if not self.model.accepts(name):
            raise InvalidRequest(
                f"The model '{self.model.name}' cannot embed text (it declares no '{name}' input).",
                param="model",
                code="model_not_supported",
            )
        return name

    def reader(self, request: GenerationRequest, tokenizer: TokenizerTools | None) -> VllmResponseReader:
        strip_prompt = request.prompt if not (request.stream or self._excludes_input) else None
        return VllmResponseReader(request.max_tokens, strip_prompt, tokenizer, request.logprobs or 0)

    def retryable(self, message: str, request: GenerationRequest) -> bool:
        return False

    def translate_error(self, message: str) -> APIError:
        known = translate_triton_error(message)
        if known is not None:
            return known
        if _UNHELPFUL_PARAMETER_ERROR in message:
            return InvalidRequest(
                "The model's vLLM backend rejected the sampling parameters: one of the values is "
                "not accepted by this deployment's vLLM version.",
                code="invalid_sampling_parameters",
            )
        if "does not support 'embed' request" in message:
            return InvalidRequest(
                f"The model '{self.model.name}' is not an embedding model.", param="model", code="model_not_supported"
            )
        if "does not support 'generate' request" in message:
            return InvalidRequest(
                f"The model '{self.model.name}' is an embedding model; use /v1/embeddings.",
                param="model",
                code="model_not_supported",
            )
        detail = message.strip().removeprefix(_STREAM_PREFIX.strip()).strip()
        if not detail:
            return silent_backend_error()
        refusal = parameter_refusal(detail)
        if refusal is not None:
            return refusal
        if _CONTEXT_TOO_LONG in message:  # vLLM before its (parameter=…) refusals
            return InvalidRequest(
                f"The prompt is too long for this model: {detail}", param="messages", code="context_length_exceeded"
            )
        if _NO_MATRYOSHKA in message:
            return InvalidRequest(
                f"The model '{self.model.name}' takes no dimensions: {detail}",
                param="dimensions",
                code="unsupported_parameter",
            )
        if message.startswith("LoRA"):
            return InvalidRequest(f"The model rejected the LoRA adapter: {message}", param="model")
        if message == "Request was cancelled":
            return BackendError("The request was cancelled on the inference server.", code="cancelled")
        return generic_backend_error(detail)


def _is_vllm(signature: ModelSignature, forced: bool) -> bool:
    return "text_input" in signature.inputs and (forced or signature.backend == "vllm")


VLLM = Flavour(
    "vllm",
    BackendFamily.VLLM,
    _is_vllm,
    VllmAdapter,
    adds_special_tokens=True,
    applies_stop_strings=True,
    keeps_special_tokens_on_request=True,
)


def parse_logprobs(raw: bytes, top: int) -> list[TokenLogprob] | None:
    """The backend's JSON: one {"<token id>": {"logprob", "rank", "decoded_token"}} object per
    new token, the sampled token first, then the best alternatives; `null` when logprobs were
    not asked for. Keeps the `top` best candidates of each token."""
    entries = _LOGPROBS_DECODER.decode(raw) if raw else None
    if not entries:
        return None
    tokens = []
    for entry in entries:
        candidates = list(entry.values())
        sampled = candidates[0]
        best = sorted(candidates, key=lambda candidate: candidate.rank or len(candidates))[:top]
        tokens.append(
            TokenLogprob(sampled.decoded_token, sampled.logprob, tuple((c.decoded_token, c.logprob) for c in best))
        )
    return tokens


class _Candidate(msgspec.Struct):
    logprob: float
    rank: int | None = None
    decoded_token: str = ""


_LOGPROBS_DECODER = msgspec.json.Decoder(list[dict[str, _Candidate]] | None)


class VllmResponseReader:
    """Turns each vLLM-backend response into a Delta (streaming sends text deltas; a
    non-streaming response carries everything at once)."""

    def __init__(
        self, max_tokens: int, strip_prompt: str | None, tokenizer: TokenizerTools | None, top_logprobs: int = 0
    ) -> None:
        self._max_tokens = max_tokens
        self._top_logprobs = top_logprobs
        self._strip_prompt = strip_prompt
        self._tokenizer = tokenizer
        self._generated = 0
        self._uncounted: list[str] | None = None  # text kept only when the model reports no counts
        self._indices: dict[str, int] | None = None
        self._counts: TokenCountOutputs | None = None

    def read(self, response: pb.ModelInferResponse, final: bool) -> Delta:
        indices = self._indices
        counts = self._counts
        if indices is None or counts is None:
            indices = self._indices = output_indices(response)
            counts = self._counts = TokenCountOutputs(response, indices)
            if "num_output_tokens" not in indices:
                self._uncounted = []
        raw = response.raw_output_contents
        if not raw:
            # An empty final response: nothing to add, but the request is over.
            return Delta("", self._inferred_finish_reason() if final else None)

        text = tensors.decode_first_bytes(raw[indices["text_output"]]).decode("utf-8", "replace")
        if self._strip_prompt is not None and text.startswith(self._strip_prompt):
            text = text[len(self._strip_prompt) :]
        if self._uncounted is not None:
            self._uncounted.append(text)

        prompt_tokens, completion_tokens = counts.read(raw)
        self._generated += completion_tokens or 0

        logprobs = cumulative = None
        index = indices.get("logprobs")
        if index is not None:
            logprobs = parse_logprobs(tensors.decode_first_bytes(raw[index]), self._top_logprobs)
        index = indices.get("cumulative_logprob")
        if index is not None:
            value = tensors.decode_numbers(raw[index], "FP32")
            cumulative = float(value[0]) if value and value[0] == value[0] else None  # NaN: not computed

        finish_reason = None
        index = indices.get("finish_reason")
        if index is not None:
            reason = tensors.decode_first_bytes(raw[index]).decode("utf-8", "replace")
            if reason != "None":
                finish_reason = self._openai_finish_reason(reason)
        if final and finish_reason is None:
            finish_reason = self._inferred_finish_reason()
        return Delta(text, finish_reason, prompt_tokens, completion_tokens, logprobs, cumulative)

    def _openai_finish_reason(self, reason: str) -> str:
        if reason in _FAILED_FINISH_REASONS:
            raise BackendError(f"The model's backend ended the generation early (finish reason '{reason}').")
        return _FINISH_REASONS.get(reason, "stop")

    def _inferred_finish_reason(self) -> str:
        """For backends older than r24.12 that report neither finish reason nor counts."""
        generated = self._generated
        if self._uncounted is not None and self._tokenizer is not None:
            generated = self._tokenizer.count_tokens("".join(self._uncounted))
        return "length" if generated >= self._max_tokens else "stop"
