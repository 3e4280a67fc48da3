"""Triton's own error messages, translated into what an OpenAI client should see."""

from __future__ import annotations

import re

from gateway.errors import APIError, BackendError, BackendUnavailable, InvalidRequest, NotFound
from gateway.logs import request_id_var

# vLLM's refusals of a bad request (its VLLMValidationError) end in "(parameter=NAME, value=V)".
_PARAMETER_SUFFIX = re.compile(r"\s*\(parameter=(?P<name>[A-Za-z_][\w.]*), value=(?P<value>.*)\)\s*$", re.DOTALL)
# vLLM's names that are not the OpenAI field the value came from, and their error codes.
_OPENAI_FIELD = {"input_tokens": "messages"}
_CODE = {"input_tokens": "context_length_exceeded"}


def translate_triton_error(message: str) -> APIError | None:
    """Errors Triton itself raises (not the model); None when the message is not one."""
    if message.startswith("Request for unknown model"):
        return NotFound(
            "The model was unloaded from the inference server; list /v1/models for the current ones.",
            param="model",
            code="model_not_found",
        )
    if "is not ready" in message or "unavailable" in message.lower():
        return BackendUnavailable(f"The model is not available on the inference server: {message}")
    return None


def generic_backend_error(message: str) -> APIError:
    if not message.strip():
        return silent_backend_error()
    return BackendError(f"The model's backend reported an error: {message}")


def parameter_refusal(message: str) -> InvalidRequest | None:
    """A 400 naming the field, for any refusal in vLLM's `(parameter=NAME, value=V)` form."""
    match = _PARAMETER_SUFFIX.search(message)
    if match is None:
        return None
    name = match["name"]
    text = message[: match.start()].strip()
    return InvalidRequest(
        f"The model's backend refused the request: {text}",
        param=_OPENAI_FIELD.get(name, name),
        code=_CODE.get(name, "invalid_value"),
    )


def silent_backend_error() -> APIError:
    """A backend error without a message (vLLM 0.32 wraps unexpected exceptions into one with
    none): the detail is only in Triton's log."""
    return BackendError(
        "The model's backend failed without saying why; the detail is in Triton's log "
        f"(request id {request_id_var.get()}).",
        code="backend_error",
    )
