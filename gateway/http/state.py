"""What every handler needs, stored once on the application."""

from __future__ import annotations

from dataclasses import dataclass

import aiohttp
from aiohttp import web

from gateway.chat.template import TokenizerStore
from gateway.engine import Engine
from gateway.http.images import ImageLoader
from gateway.lora import LoraCatalog
from gateway.metrics import Metrics
from gateway.model_files import ModelFiles
from gateway.multimodal import ImageModels
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


STATE = web.AppKey("state", GatewayState)
# The one HTTP client session for Triton's HTTP side (KServe forwarding, Triton's metrics).
TRITON_HTTP = web.AppKey("triton_http", aiohttp.ClientSession)


def state_of(request: web.Request) -> GatewayState:
    return request.app[STATE]
