"""KServe v2 gRPC pass-through (--enable-kserve-frontends): every GRPCInferenceService method,
streams included, forwarded to Triton as raw bytes (nothing is decoded on the way)."""

from __future__ import annotations

import hmac
import logging
from collections.abc import AsyncIterator, Sequence
from typing import Any

import grpc
from tritonclient.grpc import service_pb2 as pb

from gateway.http.middleware import Capacity
from gateway.triton.targets import SPREAD_SERVICE_CONFIG, parse_target

log = logging.getLogger(__name__)
SERVICE = "inference.GRPCInferenceService"
_FORWARDED_METADATA_SKIP = {"authorization"}


def _metadata(context: grpc.aio.ServicerContext) -> list[tuple[str, str | bytes]]:
    return [(key, value) for key, value in context.invocation_metadata() or () if key not in _FORWARDED_METADATA_SKIP]


def _identity(value: bytes) -> bytes:
    return value


class KServeProxy:
    """A gRPC server on the gateway that relays Triton's gRPC API."""

    def __init__(self, triton_url: str, api_keys: Sequence[str], capacity: Capacity | None = None) -> None:
        self._capacity = capacity
        options: list[tuple[str, int | str]] = [
            ("grpc.max_send_message_length", -1),
            ("grpc.max_receive_message_length", -1),
        ]
        if parse_target(triton_url).spread:
            options.append(("grpc.service_config", SPREAD_SERVICE_CONFIG))
        self._channel = grpc.aio.insecure_channel(triton_url, options=options)
        self._keys = [key.encode() for key in api_keys]
        self._server: grpc.aio.Server | None = None
        self.port = 0

    async def start(self, host: str, port: int) -> None:
        self._server = grpc.aio.server(
            options=[("grpc.max_send_message_length", -1), ("grpc.max_receive_message_length", -1)]
        )
        self._server.add_generic_rpc_handlers([self._handlers()])
        self.port = self._server.add_insecure_port(f"{host}:{port}")
        await self._server.start()
        log.info("KServe gRPC pass-through on %s:%s", host, self.port)

    async def stop(self, grace: float = 5.0) -> None:
        if self._server is not None:
            await self._server.stop(grace)
        await self._channel.close()

    def _handlers(self) -> grpc.GenericRpcHandler:
        handlers: dict[str, grpc.RpcMethodHandler] = {}
        for method in pb.DESCRIPTOR.services_by_name["GRPCInferenceService"].methods:
            path = f"/{SERVICE}/{method.name}"
            if method.client_streaming and method.server_streaming:
                handlers[method.name] = grpc.stream_stream_rpc_method_handler(
                    self._stream(path), request_deserializer=_identity, response_serializer=_identity
                )
            else:
                handlers[method.name] = grpc.unary_unary_rpc_method_handler(
                    self._unary(path), request_deserializer=_identity, response_serializer=_identity
                )
        return grpc.method_handlers_generic_handler(SERVICE, handlers)

    async def _check(self, context: grpc.aio.ServicerContext) -> None:
        if not self._keys:
            return
        offered = dict(context.invocation_metadata() or ()).get("authorization", "")
        scheme, _, token = str(offered).partition(" ")
        matched = [hmac.compare_digest(token.strip().encode(), key) for key in self._keys]
        if scheme.lower() != "bearer" or not any(matched):
            await context.abort(
                grpc.StatusCode.UNAUTHENTICATED, "Missing or invalid API key (authorization: Bearer <key>)."
            )

    async def _acquire(self, context: grpc.aio.ServicerContext) -> None:
        """The gateway's --max-concurrent-requests covers the relay too."""
        if self._capacity is not None and not self._capacity.try_acquire():
            await context.abort(
                grpc.StatusCode.RESOURCE_EXHAUSTED, "The gateway is at its limit of requests in flight."
            )

    def _release(self) -> None:
        if self._capacity is not None:
            self._capacity.release()

    def _unary(self, path: str) -> Any:
        relay = self._channel.unary_unary(path, request_serializer=_identity, response_deserializer=_identity)

        async def handle(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
            await self._check(context)
            await self._acquire(context)
            try:
                return bytes(await relay(request, metadata=_metadata(context), timeout=context.time_remaining()))
            except grpc.aio.AioRpcError as exc:
                await context.abort(exc.code(), exc.details() or "")
                raise  # unreachable: abort raises
            finally:
                self._release()

        return handle

    def _stream(self, path: str) -> Any:
        relay = self._channel.stream_stream(path, request_serializer=_identity, response_deserializer=_identity)

        async def handle(requests: AsyncIterator[bytes], context: grpc.aio.ServicerContext) -> AsyncIterator[bytes]:
            await self._check(context)
            await self._acquire(context)
            call = relay(requests, metadata=_metadata(context))
            try:
                async for response in call:
                    yield bytes(response)
            except grpc.aio.AioRpcError as exc:
                await context.abort(exc.code(), exc.details() or "")
            finally:
                call.cancel()  # the client left: so does Triton's stream
                self._release()

        return handle
