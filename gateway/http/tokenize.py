"""POST /tokenize and POST /detokenize (vLLM's server's)."""

from __future__ import annotations

import msgspec
from aiohttp import web

from gateway.http.body import decode_body, json_response
from gateway.http.state import state_of
from gateway.openai.tokenize import detokenize, tokenize
from schemas.requests import DetokenizeRequest, TokenizeRequest

_TOKENIZE = msgspec.json.Decoder(TokenizeRequest)
_DETOKENIZE = msgspec.json.Decoder(DetokenizeRequest)


async def create_tokens(request: web.Request) -> web.Response:
    return json_response(await tokenize(await decode_body(request, _TOKENIZE), state_of(request)))


async def create_text(request: web.Request) -> web.Response:
    return json_response(await detokenize(await decode_body(request, _DETOKENIZE), state_of(request)))
