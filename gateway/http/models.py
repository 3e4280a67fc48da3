"""GET /v1/models, GET /v1/models/{model}, POST /v1/models/{model}/load and /unload"""

from __future__ import annotations

from aiohttp import web

from gateway.errors import NotFound
from gateway.http.body import json_response
from gateway.http.state import state_of
from gateway.openai.models import model_card, model_list
from schemas.responses import ModelStatus


async def list_models(request: web.Request) -> web.Response:
    return json_response(await model_list(state_of(request)))


async def retrieve_model(request: web.Request) -> web.Response:
    return json_response(await model_card(state_of(request), request.match_info["model"]))


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
    return json_response(ModelStatus(id=name, status=f"{request.match_info['action']}ed"))
