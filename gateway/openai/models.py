"""GET /v1/models and /v1/models/{model} without a web framework: the served models (and their
LoRA adapters) as OpenAI model cards."""

from __future__ import annotations

from gateway.errors import NotFound
from gateway.openai.context import GatewayState
from gateway.openai.resolve import resolve_target
from gateway.triton.registry import NotServable
from schemas.responses import ModelCard, ModelList


async def model_list(state: GatewayState) -> ModelList:
    """Every served model, each followed by its adapters when adapters are addressable."""
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
    return ModelList(data=cards)


async def model_card(state: GatewayState, name: str) -> ModelCard:
    """One model or adapter by the name clients use; 404 for what is not served here."""
    try:
        target = await resolve_target(state, name)
    except NotServable as exc:  # on Triton, but not a model of this API: not found here
        raise NotFound(exc.message, param="model", code="model_not_found") from None
    parent = target.model.name if target.adapter is not None else None
    return ModelCard(id=name, created=target.model.created, parent=parent)
