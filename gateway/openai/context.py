"""What serving a request needs, whatever the web framework: the settings and the resources
the application set up once (Triton client, registry, engine, tokenizers, …)."""

from __future__ import annotations

from dataclasses import dataclass

from gateway.chat.template import TokenizerStore
from gateway.engine import Engine
from gateway.lora import LoraCatalog
from gateway.media.images import ImageLoader
from gateway.metrics import Metrics
from gateway.model_files import ModelFiles
from gateway.multimodal import ImageModels
from gateway.response_store import ResponseStore
from gateway.settings import Settings
from gateway.triton.client import TritonClient
from gateway.triton.registry import ModelRegistry


@dataclass(frozen=True)
class GatewayState:
    settings: Settings
    client: TritonClient
    registry: ModelRegistry
    engine: Engine
    tokenizers: TokenizerStore
    images: ImageLoader
    metrics: Metrics
    lora: LoraCatalog
    model_files: ModelFiles
    image_models: ImageModels
    responses: ResponseStore | None  # None: --response-store none

    @property
    def prefix_routing(self) -> bool:
        """Whether requests carry a routing key (--routing prefix)."""
        return self.settings.routing == "prefix"
