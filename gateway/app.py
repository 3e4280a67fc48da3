"""The aiohttp application: routes, middleware, start-up and shutdown."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable

import aiohttp
from aiohttp import web

from gateway import tracing
from gateway.access import AccessGuard
from gateway.backends.base import BackendOptions
from gateway.backends.flavours import FLAVOURS
from gateway.capacity import Capacity
from gateway.chat.template import TokenizerStore
from gateway.engine import Engine
from gateway.errors import APIError
from gateway.http import routes
from gateway.http.kserve import KSERVE_DROPPED_HEADERS
from gateway.http.middleware import (
    IN_FLIGHT,
    SHUTDOWN,
    ShutdownState,
    access,
    bodies,
    cors,
    errors,
    limits,
    request_context,
    response_headers,
)
from gateway.http.server import serve
from gateway.http.state import STATE, TRITON_HTTP
from gateway.lora import LoraCatalog
from gateway.media.images import ImageLoader
from gateway.metrics import Metrics
from gateway.model_files import ModelFiles
from gateway.multimodal import ImageModels
from gateway.openai.context import GatewayState
from gateway.response_store import open_store
from gateway.settings import Settings
from gateway.triton.client import TritonClient
from gateway.triton.proxy import KServeProxy
from gateway.triton.registry import ModelRegistry

TRITON_CLIENT = web.AppKey("triton_client", TritonClient)
IMAGES = web.AppKey("images", ImageLoader)
CleanupContext = Callable[[web.Application], AsyncIterator[None]]

log = logging.getLogger(__name__)


def create_app(settings: Settings) -> web.Application:
    metrics = Metrics()
    capacity = Capacity(settings.max_concurrent_requests)
    guard = AccessGuard(settings.api_keys, settings.admin_api_keys, settings.restricted_apis)
    app = web.Application(
        client_max_size=settings.http_max_input_size,
        middlewares=[
            request_context(metrics),
            cors(settings),
            errors(metrics),
            access(guard),
            bodies(),
            limits(settings, metrics, capacity),
        ],
    )
    app.on_response_prepare.append(response_headers(settings))
    app.on_startup.append(routes.document_routes)
    app[IN_FLIGHT] = set()
    app[SHUTDOWN] = ShutdownState()
    app.cleanup_ctx.extend(_lifecycle(settings, metrics, capacity, guard))
    routes.register(app, routes.openai_routes(settings))
    if settings.enable_kserve_frontends:
        routes.register(app, routes.kserve_routes(settings))
        app[KSERVE_DROPPED_HEADERS] = guard.restricted_headers
    return app


def _lifecycle(settings: Settings, metrics: Metrics, capacity: Capacity, guard: AccessGuard) -> list[CleanupContext]:
    """The application's resources, one cleanup context each, set up in this order and closed
    in the reverse one."""

    async def triton_client(app: web.Application) -> AsyncIterator[None]:
        app[TRITON_CLIENT] = TritonClient(
            settings.triton_url,
            channels=settings.grpc_channels,
            keepalive_time=settings.grpc_keepalive_time,
            prefix_routing=settings.routing == "prefix",
        )
        yield
        await app[TRITON_CLIENT].close()

    async def traces(app: web.Application) -> AsyncIterator[None]:
        if settings.otlp_traces_endpoint is None:
            yield
            return
        provider = tracing.start_tracing(settings.otlp_traces_endpoint)
        yield
        await asyncio.get_running_loop().run_in_executor(None, provider.shutdown)  # flushes, off the loop

    async def triton_http(app: web.Application) -> AsyncIterator[None]:
        # One session for what the gateway reads from Triton's HTTP side (KServe forwarding,
        # --triton-metrics-url). Remote images have their own, whose connector refuses
        # non-public addresses: these are exactly the addresses Triton has.
        app[TRITON_HTTP] = aiohttp.ClientSession(
            auto_decompress=False,
            timeout=aiohttp.ClientTimeout(total=None),  # each use sets its own deadline
            cookie_jar=aiohttp.DummyCookieJar(),  # one client's cookies must never reach another's request
        )
        yield
        await app[TRITON_HTTP].close()

    async def images(app: web.Application) -> AsyncIterator[None]:
        app[IMAGES] = ImageLoader(
            allow_remote=settings.allow_remote_images,
            max_bytes=settings.remote_image_max_bytes,
            timeout=settings.remote_image_timeout,
            allowed_domains=settings.allowed_media_domains,
            allowed_networks=settings.allowed_media_networks,
        )
        yield
        await app[IMAGES].close()

    async def state(app: web.Application) -> AsyncIterator[None]:
        tokenizers = TokenizerStore(settings.tokenizer, settings.chat_template)
        await tokenizers.preload()
        client = app[TRITON_CLIENT]
        engine = Engine(client, BackendOptions(structured_outputs_keys=settings.structured_outputs_key))
        registry = ModelRegistry(
            client,
            flavours=FLAVOURS,
            backend_override=settings.backend,
            refresh_interval=settings.model_refresh_interval,
        )
        try:
            await registry.refresh()
        except APIError as exc:
            log.warning("Triton at %s is not reachable yet (%s); serving anyway", settings.triton_url, exc.message)
        lora = LoraCatalog(settings.lora_separator, settings.model_repository, settings.lora_modules)
        model_files = ModelFiles(settings.model_repository, settings.max_model_len)
        image_models = ImageModels(settings.image_models, model_files, tokenizers.source_for)
        responses = await asyncio.to_thread(
            open_store, settings.response_store, settings.response_store_ttl, settings.response_store_max_mb << 20
        )
        app[STATE] = GatewayState(
            settings,
            client,
            registry,
            engine,
            tokenizers,
            app[IMAGES],
            metrics,
            lora,
            model_files,
            image_models,
            responses,
        )
        yield
        if responses is not None:
            await responses.close()

    async def model_refresh(app: web.Application) -> AsyncIterator[None]:
        refresher = asyncio.create_task(app[STATE].registry.run(), name="model-registry-refresh")
        yield
        refresher.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await refresher

    async def kserve_relay(app: web.Application) -> AsyncIterator[None]:
        proxy = KServeProxy(settings, guard, capacity)
        await proxy.start(settings.host, settings.kserve_grpc_port)
        yield
        await proxy.stop()

    contexts: list[CleanupContext] = [traces, triton_client, triton_http, images, state, model_refresh]
    if settings.enable_kserve_frontends:
        contexts.append(kserve_relay)
    return contexts


def run(
    settings: Settings, announce: Callable[[web.Application], None] | None = None, *, reuse_port: bool = False
) -> None:
    """Serve until SIGINT/SIGTERM; `announce` runs once the port is open. `reuse_port` lets
    several worker processes listen on the same port."""
    app = create_app(settings)

    def started() -> None:
        log.info("OpenAI API on http://%s:%s/v1", settings.host, settings.openai_port)
        if announce is not None:
            announce(app)

    loop = new_event_loop()
    try:
        loop.run_until_complete(serve(app, settings, announce=started, reuse_port=reuse_port))
    finally:
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.close()


def new_event_loop() -> asyncio.AbstractEventLoop:
    """uvloop's loop when it is installed (faster sockets and callbacks), else asyncio's."""
    try:
        import uvloop
    except ImportError:
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()
