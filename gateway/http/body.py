"""Reading and decoding request bodies."""

from __future__ import annotations

from typing import TypeVar

import msgspec
from aiohttp import web

from gateway.errors import InvalidRequest, PayloadTooLarge, validation_error

T = TypeVar("T")


async def decode_body(request: web.Request, decoder: msgspec.json.Decoder[T]) -> T:
    """The body decoded and validated; 413 past the size limit, 400 naming the field."""
    limit = request.app._client_max_size
    if request.content_length is not None and request.content_length > limit:
        raise PayloadTooLarge(f"The request body is larger than the limit of {limit} bytes.")
    body = await request.read()
    if not body:
        raise InvalidRequest("The request body is empty; send a JSON object.", code="invalid_json")
    try:
        return decoder.decode(body)
    except msgspec.ValidationError as exc:
        raise validation_error(exc) from None
    except msgspec.DecodeError as exc:
        raise InvalidRequest(f"The request body is not valid JSON: {exc}", code="invalid_json") from None
