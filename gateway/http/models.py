"""GET /v1/models and GET /v1/models/{model}"""

from __future__ import annotations

import msgspec
from aiohttp import web

from gateway.errors import NotFound
from gateway.http.state import state_of
from gateway.triton.registry import ModelInfo, NotServable
from schemas.responses import ModelCard, ModelList

_ENCODER = msgspec.json.Encoder()


def _card(info: ModelInfo) -> ModelCard:
    return ModelCard(id=info.name, created=info.created)


async def list_models(request: web.Request) -> web.Response:
    registry = state_of(request).registry
    if not registry.loaded_once:
        await registry.refresh()  # Triton away since start: 503 rather than an empty list
    cards = ModelList(data=[_card(info) for info in registry.models])
    return web.Response(body=_ENCODER.encode(cards), content_type="application/json")


async def retrieve_model(request: web.Request) -> web.Response:
    name = request.match_info["model"]
    try:
        info = await state_of(request).registry.resolve(name)
    except NotServable as exc:  # on Triton, but not a model of this API: not found here
        raise NotFound(exc.message, param="model", code="model_not_found") from None
    return web.Response(body=_ENCODER.encode(_card(info)), content_type="application/json")
