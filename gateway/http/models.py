"""GET /v1/models, GET /v1/models/{model}, POST /v1/models/{model}/load and /unload"""

from __future__ import annotations

import msgspec
from aiohttp import web

from gateway.errors import NotFound
from gateway.http.state import state_of
from gateway.openai.resolve import resolve_target
from gateway.triton.registry import NotServable
from schemas.responses import ModelCard, ModelList, ModelStatus

_ENCODER = msgspec.json.Encoder()


def _json(value: msgspec.Struct) -> web.Response:
    return web.Response(body=_ENCODER.encode(value), content_type="application/json")


async def list_models(request: web.Request) -> web.Response:
    state = state_of(request)
    registry = state.registry
    if not registry.loaded_once:
        await registry.refresh()  # Triton away since start: 503 rather than an empty list
    cards = []
    separator = state.lora.separator
    for info in registry.models:
        cards.append(ModelCard(id=info.name, created=info.created))
        if separator:
            for adapter in sorted(state.lora.adapters(info.name, info.version)):
                cards.append(ModelCard(id=f"{info.name}{separator}{adapter}", created=info.created, parent=info.name))
    return _json(ModelList(data=cards))


async def retrieve_model(request: web.Request) -> web.Response:
    name = request.match_info["model"]
    try:
        target = await resolve_target(state_of(request), name)
    except NotServable as exc:  # on Triton, but not a model of this API: not found here
        raise NotFound(exc.message, param="model", code="model_not_found") from None
    parent = target.model.name if target.adapter is not None else None
    return _json(ModelCard(id=name, created=target.model.created, parent=parent))


async def control_model(request: web.Request) -> web.Response:
    """Triton's RepositoryModelLoad or RepositoryModelUnload (Triton in explicit model-control
    mode), then a registry refresh so /v1/models shows the change at once. The route needs the
    admin key (gateway.http.routes); no model files are ever sent, only the name."""
    state = state_of(request)
    name = request.match_info["model"]
    # Only a model of Triton's repository, by its exact name: not an adapter's name, which
    # Triton would take as unknown and "unload" without a word.
    if name not in {entry.name for entry in await state.client.repository_index()}:
        raise NotFound(f"Triton's model repository has no model '{name}'.", param="model", code="model_not_found")
    if request.match_info["action"] == "load":
        await state.client.load_model(name)
    else:
        await state.client.unload_model(name)
    await state.registry.refresh()
    return _json(ModelStatus(id=name, status=f"{request.match_info['action']}ed"))
