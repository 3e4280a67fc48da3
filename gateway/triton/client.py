"""A thin asyncio client for Triton's gRPC API, built on the raw protobuf stubs.

The stubs (not tritonclient's aio helper) are used because only they can set the reserved
`triton_enable_empty_final_response` parameter, and they hand back raw tensor bytes without
a numpy round trip. Each inference is its own `ModelStreamInfer` call, so cancelling the
call cancels exactly that request inside Triton.

Several Tritons behind one target are balanced by gRPC (round_robin with health checks);
the client only narrows a model's requests to the Tritons that have it. With prefix routing,
a request with a routing key goes to the Triton that gateway/triton/routing.py picks for it.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections.abc import Awaitable, Callable, Sequence
from types import TracebackType
from typing import Any, Protocol, Self

import grpc
from tritonclient.grpc import service_pb2 as pb
from tritonclient.grpc import service_pb2_grpc as pb_grpc

from gateway.errors import APIError, BackendUnavailable, BadGateway, InvalidRequest
from gateway.triton.routing import PrefixRouter
from gateway.triton.targets import SPREAD_SERVICE_CONFIG, Target, parse_target, subset_target

log = logging.getLogger(__name__)

FINAL_FLAG = "triton_final_response"
EMPTY_FINAL_FLAG = "triton_enable_empty_final_response"
STREAM_INFER_METHOD = "/inference.GRPCInferenceService/ModelStreamInfer"


class Stub:
    """One channel's calls: `service`, the generated stub, and `stream_one`, ModelStreamInfer
    called with its one request up front. On the wire that is the same call (the request
    message, then the half-close), but gRPC sends the metadata, the message and the
    half-close as one batch, where writing them waits three times for the event loop (metadata
    sent, message written, half-closed) before the first read."""

    def __init__(self, channel: grpc.aio.Channel) -> None:
        self.service = pb_grpc.GRPCInferenceServiceStub(channel)
        self.stream_one = channel.unary_stream(
            STREAM_INFER_METHOD,
            request_serializer=pb.ModelInferRequest.SerializeToString,
            response_deserializer=pb.ModelStreamInferResponse.FromString,
        )


KEEPALIVE_ANSWER_SECONDS = 20.0  # how long a ping may go unanswered before the connection is dropped


class TritonErrorMessage(Exception):
    """Triton ended a request with an error message (the status code is not passed on).
    Backend adapters translate it into what the client should see."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class ChannelPool:
    """`size` channels to one target, each with connections of its own, taken in turn:
    one HTTP/2 connection carrying every stream becomes a bottleneck under load."""

    def __init__(
        self, target: str, size: int, max_message_bytes: int, spread: bool, keepalive_time: float | None = None
    ) -> None:
        options: list[tuple[str, Any]] = [
            ("grpc.max_send_message_length", max_message_bytes),
            ("grpc.max_receive_message_length", max_message_bytes),
            # Reconnect quickly after a Triton restart (gRPC's default backoff grows to 2 min).
            ("grpc.initial_reconnect_backoff_ms", 250),
            ("grpc.min_reconnect_backoff_ms", 250),
            ("grpc.max_reconnect_backoff_ms", 2000),
            # Without it, channels with equal options share one connection.
            ("grpc.use_local_subchannel_pool", 1),
        ]
        if keepalive_time is not None:
            # Pings while calls are open: a frozen Triton (or a dropped route) fails the calls
            # as UNAVAILABLE within keepalive + timeout instead of leaving them hanging. Triton
            # tolerates a ping every 5 min without data by default; see the README.
            options += [
                ("grpc.keepalive_time_ms", int(keepalive_time * 1000)),
                ("grpc.keepalive_timeout_ms", int(min(keepalive_time, KEEPALIVE_ANSWER_SECONDS) * 1000)),
                ("grpc.keepalive_permit_without_calls", 0),
                ("grpc.http2.max_pings_without_data", 0),
            ]
        if spread:
            options.append(("grpc.service_config", SPREAD_SERVICE_CONFIG))
        self.target = target
        self._channels = [grpc.aio.insecure_channel(target, options=options) for _ in range(max(1, size))]
        self._turns = itertools.cycle([(channel, Stub(channel)) for channel in self._channels])

    def stub(self) -> Stub:
        """The next connected channel's stub (after a Triton restart the channels reconnect
        one by one); the next one in turn when none is."""
        for _ in self._channels:
            channel, stub = next(self._turns)
            if channel.get_state(try_to_connect=True) is grpc.ChannelConnectivity.READY:
                return stub
        return stub

    async def close(self, grace: float | None = None) -> None:
        """Close the channels; with `grace`, calls under way get that long to finish."""
        await asyncio.gather(*(channel.close(grace=grace) for channel in self._channels))


class TritonClient:
    """Every request's way to Triton: one server or several behind one gRPC target."""

    def __init__(
        self,
        url: str,
        *,
        channels: int = 2,
        max_message_bytes: int = 256 * 1024 * 1024,
        keepalive_time: float | None = None,
        prefix_routing: bool = False,
    ) -> None:
        self.url = url
        self._keepalive_time = keepalive_time
        self._target: Target = parse_target(url)
        self._size = channels
        self._max_message_bytes = max_message_bytes
        self._pool = self._new_pool(url, channels, self._target.spread)
        # Several Tritons only: one channel per endpoint to ask it what it serves, which
        # Tritons serve each model, and pools for models that only some Tritons have.
        self._endpoint_pools: dict[str, ChannelPool] = {}
        self._model_endpoints: dict[str, frozenset[str]] = {}
        self._answering: frozenset[str] = frozenset()
        self._subset_pools: dict[frozenset[str], ChannelPool] = {}
        self._retiring: set[asyncio.Task[None]] = set()
        # Prefix routing: over the endpoint pools, skipping a Triton that just failed a call
        # until the next repository index finds it answering.
        self._router = PrefixRouter() if prefix_routing and self._target.spread else None
        self._failed: set[str] = set()

    def _new_pool(self, target: str, size: int, spread: bool) -> ChannelPool:
        return ChannelPool(target, size, self._max_message_bytes, spread, self._keepalive_time)

    async def close(self) -> None:
        pools = [self._pool, *self._endpoint_pools.values(), *self._subset_pools.values()]
        await asyncio.gather(*(pool.close() for pool in pools))
        for task in self._retiring:
            task.cancel()

    def _stub_for(self, model: str) -> Stub:
        """A stub whose channels reach only Tritons that serve `model`."""
        endpoints = self._model_endpoints.get(model)
        if endpoints is None or endpoints == self._answering:
            return self._pool.stub()
        pool = self._subset_pools.get(endpoints)
        if pool is None:
            target = subset_target(tuple(sorted(endpoints)))
            if target is None:  # no gRPC scheme for this set: let the whole target serve it
                return self._pool.stub()
            pool = self._subset_pools[endpoints] = self._new_pool(target, 1, True)
        return pool.stub()

    async def is_ready(self, timeout: float = 2.0) -> bool:
        """True when Triton (any of them) answers ServerReady with ready=true."""
        try:
            reply = await self._pool.stub().service.ServerReady(pb.ServerReadyRequest(), timeout=timeout)
        except grpc.aio.AioRpcError:
            return False
        return bool(reply.ready)

    async def server_metadata(self, timeout: float = 2.0) -> pb.ServerMetadataResponse:
        """Triton's name, version and extensions (raises grpc.aio.AioRpcError when it is away)."""
        reply: pb.ServerMetadataResponse = await self._pool.stub().service.ServerMetadata(
            pb.ServerMetadataRequest(), timeout=timeout
        )
        return reply

    async def repository_index(self, timeout: float = 5.0) -> list[pb.RepositoryIndexResponse.ModelIndex]:
        """Every model of every Triton (one entry per Triton that has it)."""
        if not self._target.spread:
            return await self._index(self._pool.stub(), timeout)
        return await self._spread_index(timeout)

    async def _index(self, stub: Stub, timeout: float) -> list[pb.RepositoryIndexResponse.ModelIndex]:
        try:
            reply = await stub.service.RepositoryIndex(pb.RepositoryIndexRequest(ready=False), timeout=timeout)
        except grpc.aio.AioRpcError as exc:
            raise rpc_error(exc, self.url) from None
        return list(reply.models)

    async def _spread_index(self, timeout: float) -> list[pb.RepositoryIndexResponse.ModelIndex]:
        try:
            endpoints = await self._target.resolve()
        except OSError as exc:
            raise BackendUnavailable(f"The inference servers' name did not resolve ({exc}).") from None
        await self._follow(endpoints)
        replies = await asyncio.gather(
            *(self._index(self._endpoint_pools[endpoint].stub(), timeout) for endpoint in endpoints),
            return_exceptions=True,
        )
        entries: list[pb.RepositoryIndexResponse.ModelIndex] = []
        served: dict[str, set[str]] = {}
        answering = set()
        for endpoint, reply in zip(endpoints, replies, strict=True):
            if isinstance(reply, BaseException):
                log.debug("Triton at %s did not answer: %s", endpoint, reply)
                continue
            answering.add(endpoint)
            entries += reply
            for entry in reply:
                if entry.state == "READY":
                    served.setdefault(entry.name, set()).add(endpoint)
        if not answering:
            raise BackendUnavailable("None of the inference servers is reachable; try again shortly.")
        self._answering = frozenset(answering)
        self._failed -= answering
        self._model_endpoints = {name: frozenset(where) for name, where in served.items()}
        self._drop_unused_subsets()
        return entries

    async def _follow(self, endpoints: tuple[str, ...]) -> None:
        """Keep one channel per current endpoint. When a DNS name gains addresses, the main
        channels are replaced too, since gRPC re-resolves names only after a failure."""
        known = set(self._endpoint_pools)
        for endpoint in known - set(endpoints):
            await self._endpoint_pools.pop(endpoint).close()
        for endpoint in set(endpoints) - known:
            # A routed request rides its Triton's endpoint pool: as many channels as the main one.
            size = self._size if self._router is not None else 1
            self._endpoint_pools[endpoint] = self._new_pool(endpoint, size, False)
        if self._target.dns_name is not None and known and set(endpoints) - known:
            log.info("Triton endpoints of %s are now %s", self.url, ", ".join(endpoints))
            self._retire(self._pool)
            self._pool = self._new_pool(self.url, self._size, True)

    def _drop_unused_subsets(self) -> None:
        used = set(self._model_endpoints.values())
        for endpoints in [key for key in self._subset_pools if key not in used]:
            self._retire(self._subset_pools.pop(endpoints))

    def _retire(self, pool: ChannelPool) -> None:
        """Close `pool` once the streams it carries have ended (new ones go elsewhere)."""
        task = asyncio.create_task(pool.close(grace=24 * 3600))
        self._retiring.add(task)
        task.add_done_callback(self._retiring.discard)

    async def model_config(self, name: str, version: str = "", timeout: float = 5.0) -> pb.ModelConfig:
        try:
            reply = await self._stub_for(name).service.ModelConfig(
                pb.ModelConfigRequest(name=name, version=version), timeout=timeout
            )
        except grpc.aio.AioRpcError as exc:
            raise rpc_error(exc, self.url) from None
        return reply.config

    async def load_model(self, name: str, timeout: float = 300.0) -> None:
        """Load `name` (on every Triton of the target)."""
        request = pb.RepositoryModelLoadRequest(model_name=name)
        await self._on_every_triton(lambda stub: stub.service.RepositoryModelLoad(request, timeout=timeout))

    async def unload_model(self, name: str, timeout: float = 60.0) -> None:
        request = pb.RepositoryModelUnloadRequest(model_name=name)
        # Said outright (it is Triton's default): an ensemble's composing models stay loaded;
        # each goes only when asked for by its own name.
        request.parameters["unload_dependents"].bool_param = False
        await self._on_every_triton(lambda stub: stub.service.RepositoryModelUnload(request, timeout=timeout))

    async def _on_every_triton(self, call: Callable[[Stub], Awaitable[Any]]) -> None:
        if not self._target.spread:
            stubs = [self._pool.stub()]
        else:
            await self.repository_index()  # the current endpoints
            stubs = [self._endpoint_pools[endpoint].stub() for endpoint in sorted(self._answering)]
        results = await asyncio.gather(*(call(stub) for stub in stubs), return_exceptions=True)
        for result in results:
            if isinstance(result, grpc.aio.AioRpcError):
                raise self._repository_error(result)
            if isinstance(result, BaseException):
                raise result

    def _repository_error(self, exc: grpc.aio.AioRpcError) -> APIError:
        details = exc.details() or ""
        if "not allowed" in details or "model control mode" in details.lower():
            return InvalidRequest(
                "Triton is not in explicit model-control mode, so models cannot be loaded or unloaded "
                "through it (start tritonserver with --model-control-mode=explicit).",
                code="model_control_disabled",
            )
        if exc.code() in (grpc.StatusCode.NOT_FOUND, grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.INTERNAL):
            return InvalidRequest(f"Triton could not do it: {details}", param="model", code="model_control_failed")
        return rpc_error(exc, self.url)

    def stream(
        self, request: pb.ModelInferRequest, metadata: Sequence[tuple[str, str]] = (), routing_key: str | None = None
    ) -> InferenceStream:
        """Open a `ModelStreamInfer` call for one request; use with `async with`. `metadata`
        goes with the call (a trace context, `traceparent`); with prefix routing, `routing_key`
        picks the Triton."""
        request.parameters[EMPTY_FINAL_FLAG].bool_param = True
        model = request.model_name
        route: Route = _Balanced(lambda: self._stub_for(model))
        if self._router is not None and routing_key is not None:
            route = _Routed(self, model, routing_key)
        return InferenceStream(route, request, self.url, tuple(metadata))

    def routed_stub(self, model: str, key: str) -> tuple[str | None, Stub]:
        """(the Triton picked for `key`, a stub to it), counted as in flight until
        `route_ended`; (None, the balanced stub) when there is nothing to pick from (no index
        yet, or every Triton that serves the model just failed)."""
        serving = self._model_endpoints.get(model, self._answering)
        endpoints = frozenset(endpoint for endpoint in serving if endpoint in self._endpoint_pools) - self._failed
        if self._router is None or not endpoints:
            return None, self._stub_for(model)
        endpoint = self._router.pick(key, endpoints)
        self._router.started(endpoint)
        return endpoint, self._endpoint_pools[endpoint].stub()

    def route_failed(self, endpoint: str) -> None:
        """`endpoint` failed a call as unavailable: no routed request goes there until the
        next repository index finds it answering."""
        if endpoint not in self._failed:
            log.info("Triton at %s is unavailable: its keys go to the other Tritons", endpoint)
            self._failed.add(endpoint)

    def route_ended(self, endpoint: str) -> None:
        if self._router is not None:
            self._router.ended(endpoint)


class Route(Protocol):
    """Where one request's call goes: `stub()` for each attempt, `failed()` when an attempt
    found its Triton unavailable, `ended()` once the call is over."""

    def stub(self) -> Stub: ...

    def failed(self) -> None: ...

    def ended(self) -> None: ...


class _Balanced:
    """gRPC's own balancing: the next channel of the pool for the model."""

    def __init__(self, stub: Callable[[], Stub]) -> None:
        self.stub = stub

    def failed(self) -> None:
        pass

    def ended(self) -> None:
        pass


class _Routed:
    """A call to the Triton the prefix router picks for the key, counted while it runs."""

    def __init__(self, client: TritonClient, model: str, key: str) -> None:
        self._client = client
        self._model = model
        self._key = key
        self._endpoint: str | None = None

    def stub(self) -> Stub:
        self.ended()  # a retry: the earlier attempt no longer counts
        self._endpoint, stub = self._client.routed_stub(self._model, self._key)
        return stub

    def failed(self) -> None:
        if self._endpoint is not None:
            self._client.route_failed(self._endpoint)

    def ended(self) -> None:
        if self._endpoint is not None:
            self._client.route_ended(self._endpoint)
            self._endpoint = None


class InferenceStream:
    """The responses of one request. Leaving the `async with` block early cancels the
    call, which Triton passes on to the model as a cancellation.

    A call that fails as unavailable before its first response is sent once more: the
    Triton it went to is gone or going, and gRPC picks another one if there is one."""

    def __init__(
        self,
        route: Route,
        request: pb.ModelInferRequest,
        url: str,
        metadata: tuple[tuple[str, str], ...] = (),
    ) -> None:
        self._route = route
        self._request = request
        self._url = url
        self._metadata = metadata or None
        self._call: grpc.aio.UnaryStreamCall | None = None
        self._answered = False
        self._retries = 1
        self.finished = False

    def _open(self) -> None:
        """Start the call, its request going out with it; whatever goes wrong sending it
        comes out of the first read."""
        self._cancel()  # a retry: the broken attempt is let go
        self._call = self._route.stub().stream_one(self._request, metadata=self._metadata)

    def _may_retry(self, code: grpc.StatusCode, details: str | None) -> bool:
        if code != grpc.StatusCode.UNAVAILABLE:
            return False
        self._route.failed()
        if self._answered or self._retries <= 0:
            return False
        self._retries -= 1
        log.info("Triton went away before answering (%s); sending the request again", details)
        return True

    async def __aenter__(self) -> Self:
        self._open()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._cancel()
        self._route.ended()

    def _cancel(self) -> None:
        """Cancel the call if it is still under way (Triton passes that on to the model)."""
        if self._call is not None and not self._call.done():
            self._call.cancel()

    def __aiter__(self) -> InferenceStream:
        return self

    async def __anext__(self) -> pb.ModelInferResponse:
        if self.finished:
            raise StopAsyncIteration
        assert self._call is not None
        try:
            message = await self._call.read()
        except grpc.aio.AioRpcError as exc:
            if self._may_retry(exc.code(), exc.details()):
                self._open()
                return await self.__anext__()
            self.finished = True
            raise rpc_error(exc, self._url) from None
        except (grpc.aio.UsageError, grpc.aio.InternalError) as exc:
            # The connection went (a killed Triton): as UNAVAILABLE, sent again if nothing came yet.
            if self._may_retry(grpc.StatusCode.UNAVAILABLE, f"{type(exc).__name__}: {exc}"):
                self._open()
                return await self.__anext__()
            self.finished = True
            log.warning("Triton at %s: the call broke: %s: %s", self._url, type(exc).__name__, exc)
            raise BackendUnavailable("The inference server is unavailable; try again shortly.") from None
        self._answered = True
        if message is grpc.aio.EOF:
            self.finished = True
            raise BadGateway("Triton closed the stream before the model's final response.")
        if message.error_message:
            # Terminal: request-level errors carry no final flag, backend errors do.
            self.finished = True
            raise TritonErrorMessage(message.error_message)
        response = message.infer_response
        final = response.parameters.get(FINAL_FLAG)
        if final is not None and final.bool_param:
            self.finished = True
        return response


# RPC failures a retry may cure: 503. Every other RPC failure is the server misbehaving from
# the client's point of view (a killed Triton ends calls with INTERNAL "Internal error from
# Core"): 502. Model errors do not come this way; they arrive as error messages in the stream.
_TRANSIENT = frozenset(
    {
        grpc.StatusCode.UNAVAILABLE,
        grpc.StatusCode.DEADLINE_EXCEEDED,
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        grpc.StatusCode.CANCELLED,
        grpc.StatusCode.ABORTED,
    }
)


def rpc_error(exc: grpc.aio.AioRpcError, url: str) -> APIError:
    """Map a failed RPC onto the error the client should see."""
    code = exc.code()
    if code in _TRANSIENT:
        log.warning("Triton at %s is unavailable: %s", url, exc.details())
        return BackendUnavailable(f"The inference server is unavailable ({code.name.lower()}); try again shortly.")
    log.warning("Triton at %s failed a call with %s: %s", url, code.name, exc.details())
    return BadGateway(f"The inference server failed the request ({code.name.lower()}): {exc.details()}")
