"""From the `model` field to a served model and, with --lora-separator, one of its adapters."""

from __future__ import annotations

from dataclasses import dataclass

from gateway.errors import ModelNotFound, NotFound
from gateway.model_info import ModelInfo
from gateway.openai.context import GatewayState


@dataclass(frozen=True)
class Target:
    model: ModelInfo
    adapter: str | None = None
    adapter_path: str | None = None


async def resolve_target(state: GatewayState, name: str) -> Target:
    """The model called `name`, or `<base><SEP><adapter>`; an unknown adapter is a 404 naming
    it, before anything reaches Triton."""
    known = state.registry.get(name)
    if known is not None:
        return Target(known)
    target = _adapter_target(state, name)
    if target is not None:
        return target
    try:
        return Target(await state.registry.resolve(name))  # refreshes the registry once
    except ModelNotFound:
        target = _adapter_target(state, name)
        if target is not None:
            return target
        raise


def _adapter_target(state: GatewayState, name: str) -> Target | None:
    for base, adapter in state.lora.split(name):
        model = state.registry.get(base)
        if model is None:
            continue
        adapters = state.lora.adapters(model.name, model.version)
        if adapter not in adapters:
            known = ", ".join(sorted(adapters)) or "none"
            raise NotFound(
                f"The model '{base}' has no LoRA adapter '{adapter}' (its adapters: {known}).",
                param="model",
                code="adapter_not_found",
            )
        return Target(model, adapter, adapters[adapter])
    return None
