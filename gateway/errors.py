"""Exceptions that map onto the OpenAI error envelope, and the envelope's encoder."""

from __future__ import annotations

import re

import msgspec

from schemas.errors import ErrorBody, ErrorEnvelope

_ENCODER = msgspec.json.Encoder()


class APIError(Exception):
    """An error the client sees as `{"error": {"message", "type", "param", "code"}}`."""

    status = 500
    error_type = "server_error"
    default_code: str | None = None

    def __init__(self, message: str, *, param: str | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        self.code = code if code is not None else self.default_code

    def body(self) -> ErrorBody:
        return ErrorBody(message=self.message, type=self.error_type, param=self.param, code=self.code)

    def to_json(self) -> bytes:
        return encode_error(self.body())


class InvalidRequest(APIError):
    status = 400
    error_type = "invalid_request_error"


class Unauthorized(APIError):
    status = 401
    error_type = "invalid_request_error"
    default_code = "invalid_api_key"


class Forbidden(APIError):
    status = 403
    error_type = "invalid_request_error"
    default_code = "forbidden"


class RequestTimeout(APIError):
    """The client did not send its request within the read deadline."""

    status = 408
    error_type = "invalid_request_error"
    default_code = "request_timeout"


class NotFound(APIError):
    status = 404
    error_type = "invalid_request_error"
    default_code = "not_found"


class ModelNotFound(NotFound):
    default_code = "model_not_found"

    def __init__(self, model: str) -> None:
        super().__init__(f"The model '{model}' does not exist or is not served by this gateway.", param="model")


class MethodNotAllowed(APIError):
    status = 405
    error_type = "invalid_request_error"
    default_code = "method_not_allowed"


class PayloadTooLarge(APIError):
    status = 413
    error_type = "invalid_request_error"
    default_code = "request_too_large"


class UnsupportedMediaType(APIError):
    status = 415
    error_type = "invalid_request_error"
    default_code = "unsupported_content_encoding"


class TooManyRequests(APIError):
    status = 429
    error_type = "rate_limit_error"
    default_code = "too_many_requests"


class BackendError(APIError):
    """Triton or the model's backend reported an error for this request."""

    status = 500
    default_code = "backend_error"


class BadGateway(APIError):
    """Triton answered with something the gateway cannot make sense of."""

    status = 502
    default_code = "bad_gateway"


class BackendUnavailable(APIError):
    """Triton cannot be reached or is not ready."""

    status = 503
    default_code = "backend_unavailable"


class ShuttingDown(BackendUnavailable):
    default_code = "shutting_down"

    def __init__(self) -> None:
        super().__init__("The gateway is shutting down; send the request again (to another replica).")


class GatewayTimeout(APIError):
    status = 504
    default_code = "timeout"


def encode_error(body: ErrorBody) -> bytes:
    return _ENCODER.encode(ErrorEnvelope(error=body))


_PATH_PART = re.compile(r"\.([A-Za-z_][A-Za-z0-9_]*)|(\[\d+\])")
_AT_PATH = re.compile(r" - at `\$([^`]*)`$")
_MISSING_FIELD = re.compile(r"^Object missing required field `([^`]+)`")


def validation_error(exc: msgspec.ValidationError, within: str = "") -> InvalidRequest:
    """Turn msgspec's message ("Expected `int`, got `str` - at `$.max_tokens`") into a
    400 whose `param` is the field's path (`max_tokens`, `messages[0].role`); `within` is where
    the value that failed sits in the request (`input[2]`), when it was converted on its own."""
    text = str(exc)
    path = ""
    match = _AT_PATH.search(text)
    if match:
        path = match.group(1)
        text = text[: match.start()]
    param = (within + "".join(m.group(0) for m in _PATH_PART.finditer(path))).lstrip(".")
    missing = _MISSING_FIELD.match(text)
    if missing:
        param = f"{param}.{missing.group(1)}" if param else missing.group(1)
    message = f"Invalid value for '{param}': {text}" if param else f"Invalid request body: {text}"
    return InvalidRequest(message, param=param or None, code="invalid_value")


class StartupError(Exception):
    """What stops the gateway as it starts (a port taken, a tokenizer that cannot be loaded):
    its message is the one line the operator reads, with the fix."""
