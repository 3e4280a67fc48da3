"""POST /tokenize, POST /detokenize (vLLM's server's), GET /version."""

from __future__ import annotations

import msgspec
from aiohttp import web

from gateway.http.body import decode_body
from gateway.http.state import state_of
from gateway.openai.tokenize import detokenize, tokenize
from gateway.version import version_info
from schemas.requests import DetokenizeRequest, TokenizeRequest

_TOKENIZE = msgspec.json.Decoder(TokenizeRequest)
_DETOKENIZE = msgspec.json.Decoder(DetokenizeRequest)
_ENCODER = msgspec.json.Encoder()


def _json(value: msgspec.Struct) -> web.Response:
    return web.Response(body=_ENCODER.encode(value), content_type="application/json")


async def create_tokens(request: web.Request) -> web.Response:
    return _json(await tokenize(await decode_body(request, _TOKENIZE), state_of(request)))


async def create_text(request: web.Request) -> web.Response:
    return _json(await detokenize(await decode_body(request, _DETOKENIZE), state_of(request)))


async def version(request: web.Request) -> web.Response:
    return _json(await version_info(state_of(request).client))
