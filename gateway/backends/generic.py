"""Requests to and responses from a plain text model: `text_input` in, `text_output` out, on
any backend (Triton's own OpenAI frontend serves such models, e.g. its `mock_llm` test model).

Such a model promises nothing beyond those two tensors, so the gateway sends `text_input` and,
of the other inputs it knows by their usual names (`stream`, `max_tokens`, `temperature`,
`top_p`, `top_k`, `seed`), only those the model declares, in the declared datatype and shape;
the model's own behaviour stands for everything else. Streamed `text_output` is read as a
piece per response, stop strings are applied by the gateway, and the finish reason is `stop`
unless the model declares `max_tokens` and the count reached it. What needs the model's help
(logprobs, guided decoding, images, LoRA adapters, logit_bias, stop_token_ids) is refused.
"""

from __future__ import annotations

from tritonclient.grpc import service_pb2 as pb

from gateway.backends.base import BackendOptions, RequestBuilder
from gateway.backends.errors import generic_backend_error, translate_triton_error
from gateway.backends.trtllm import TrtllmResponseReader
from gateway.errors import APIError, InvalidRequest
from gateway.generation import GenerationRequest, TokenizerTools
from gateway.model_info import Flavour, ModelInfo, ModelSignature

# Request field -> the input a plain text model may declare for it (the other sampling fields
# are not sent).
_NUMBER_INPUTS = {
    "max_tokens": "max_tokens",
    "temperature": "temperature",
    "top_p": "top_p",
    "top_k": "top_k",
    "seed": "seed",
}
# What only the model could do, and the request field that asks for it.
_NEEDS_THE_MODEL = {"images": "messages", "lora_name": "model"}
_SAMPLING_NEEDS_THE_MODEL = ("logit_bias", "stop_token_ids")


class GenericTextAdapter:
    """Builds requests for one plain text model and reads its responses."""

    def __init__(self, model: ModelInfo, options: BackendOptions) -> None:
        self.model = model

    def build_request(self, request: GenerationRequest) -> pb.ModelInferRequest:
        self._refuse_what_needs_the_model(request)
        builder = RequestBuilder(self.model, request.request_id)
        builder.add_bytes("text_input", request.prompt.encode("utf-8"))
        if self.model.accepts("stream"):
            # A model that is not decoupled answers once: it cannot stream, the gateway still can.
            builder.add_bool("stream", request.stream and self.model.decoupled)
        values = {"max_tokens": request.max_tokens, **request.sampling.given()}
        for field, value in values.items():
            name = _NUMBER_INPUTS.get(field)
            if name is not None and self.model.accepts(name):
                datatype = self.model.inputs[name].datatype
                builder.add_number(name, datatype, value if datatype.startswith("FP") else int(value))
        return builder.message

    def _refuse_what_needs_the_model(self, request: GenerationRequest) -> None:
        if request.guided is not None:
            raise self._refusal(request.guided.param, "guided decoding")
        if request.logprobs is not None or request.cumulative_logprob:
            raise self._refusal("logprobs" if request.logprobs is not None else "best_of", "logprobs")
        for field, param in _NEEDS_THE_MODEL.items():
            if getattr(request, field):
                raise self._refusal(param, field.replace("_name", " adapters"))
        for field in _SAMPLING_NEEDS_THE_MODEL:
            if getattr(request.sampling, field):
                raise self._refusal(field, field.replace("_", " "))

    def _refusal(self, param: str, what: str) -> InvalidRequest:
        return InvalidRequest(
            f"The model '{self.model.name}' is a plain text model (text_input in, text_output out): "
            f"it cannot take {what}.",
            param=param,
            code="unsupported_parameter",
        )

    def reader(self, request: GenerationRequest, tokenizer: TokenizerTools | None) -> TrtllmResponseReader:
        return TrtllmResponseReader(
            request,
            cumulative=False,
            echoes=(),
            tokenizer=tokenizer,
            honours_max_tokens=self.model.accepts("max_tokens"),
        )

    def translate_error(self, message: str) -> APIError:
        return translate_triton_error(message) or generic_backend_error(message)

    def retryable(self, message: str, request: GenerationRequest) -> bool:
        return False


def _is_plain_text(signature: ModelSignature, forced: bool) -> bool:
    return "text_input" in signature.inputs and "text_output" in signature.outputs


PLAIN_TEXT = Flavour("text", None, _is_plain_text, GenericTextAdapter)
