"""Triton's own error messages, translated into what an OpenAI client should see."""

from __future__ import annotations

from gateway.errors import APIError, BackendError, BackendUnavailable, NotFound


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
    return BackendError(f"The model's backend reported an error: {message}")
