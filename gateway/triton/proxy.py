"""KServe v2 gRPC pass-through (--enable-kserve-frontends): GRPCInferenceService methods
relayed to Triton as raw bytes (nothing is decoded on the way), each under the policy its
entry in RELAYED_METHODS declares: the same keys, API groups, limits and deadlines as HTTP."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from typing import Any

import grpc
from tritonclient.grpc import service_pb2 as pb

from gateway.access import Access, AccessGuard, ApiGroup, Policy, kserve_admin_policy
from gateway.capacity import Capacity
from gateway.errors import APIError, StartupError
from gateway.settings import Settings
from gateway.triton.targets import SPREAD_SERVICE_CONFIG, parse_target

log = logging.getLogger(__name__)
SERVICE = "inference.GRPCInferenceService"

# Every method of the service and its API group. The admin ones (repository load takes
# model files, i.e. code; shared memory reads other requests' tensors) are refused with
# PERMISSION_DENIED unless --enable-kserve-admin opens them to the admin key.
RELAYED_METHODS: dict[str, ApiGroup] = {
    "ServerLive": ApiGroup.HEALTH,
    "ServerReady": ApiGroup.HEALTH,
    "ServerMetadata": ApiGroup.HEALTH,
    "ModelReady": ApiGroup.MODEL_REPOSITORY,
    "ModelMetadata": ApiGroup.MODEL_REPOSITORY,
    "ModelConfig": ApiGroup.MODEL_REPOSITORY,
    "ModelInfer": ApiGroup.INFERENCE,
    "ModelStreamInfer": ApiGroup.INFERENCE,
    "ModelStatistics": ApiGroup.ADMIN,
    "RepositoryIndex": ApiGroup.ADMIN,
    "RepositoryModelLoad": ApiGroup.ADMIN,
    "RepositoryModelUnload": ApiGroup.ADMIN,
    "SystemSharedMemoryStatus": ApiGroup.ADMIN,
    "SystemSharedMemoryRegister": ApiGroup.ADMIN,
    "SystemSharedMemoryUnregister": ApiGroup.ADMIN,
    "CudaSharedMemoryStatus": ApiGroup.ADMIN,
    "CudaSharedMemoryRegister": ApiGroup.ADMIN,
    "CudaSharedMemoryUnregister": ApiGroup.ADMIN,
    "TraceSetting": ApiGroup.ADMIN,
    "LogSettings": ApiGroup.ADMIN,
}
_STATUS_CODES = {401: grpc.StatusCode.UNAUTHENTICATED, 403: grpc.StatusCode.PERMISSION_DENIED}


def method_policy(group: ApiGroup, settings: Settings) -> Policy:
    if group is ApiGroup.ADMIN:
        return kserve_admin_policy(settings.enable_kserve_admin)
    return Policy(group, Access.API_KEY, forwards_body=True)  # messages reach Triton as they came


def _identity(value: bytes) -> bytes:
    return value


class KServeProxy:
    """A gRPC server on the gateway that relays Triton's gRPC API."""

    def __init__(self, settings: Settings, guard: AccessGuard, capacity: Capacity | None = None) -> None:
        self._settings = settings
        self._guard = guard
        self._capacity = capacity
        # Credentials stay here: Triton sees neither the keys nor the restrictions' secrets.
        self._withheld = {"authorization"} | guard.restricted_headers
        options: list[tuple[str, int | str]] = [
            ("grpc.max_send_message_length", settings.http_max_input_size),
            ("grpc.max_receive_message_length", -1),
        ]
        if parse_target(settings.triton_url).spread:
            options.append(("grpc.service_config", SPREAD_SERVICE_CONFIG))
        self._channel = grpc.aio.insecure_channel(settings.triton_url, options=options)
        self._server: grpc.aio.Server | None = None
        self.port = 0

    async def start(self, host: str, port: int) -> None:
        self._server = grpc.aio.server(
            options=[
                ("grpc.max_send_message_length", -1),
                # --http-max-input-size bounds what a client may send here too.
                ("grpc.max_receive_message_length", self._settings.http_max_input_size),
            ]
        )
        self._server.add_generic_rpc_handlers([self._handlers()])
        try:
            self.port = self._server.add_insecure_port(f"{host}:{port}")
        except RuntimeError:
            raise StartupError(
                f"cannot listen on {host}:{port} for the KServe gRPC pass-through; if another process has "
                "the port (a Triton beside the gateway has 8001), choose another with --kserve-grpc-port"
            ) from None
        await self._server.start()
        log.info("KServe gRPC pass-through on %s:%s", host, self.port)

    async def stop(self, grace: float = 5.0) -> None:
        if self._server is not None:
            await self._server.stop(grace)
        await self._channel.close()

    def _handlers(self) -> grpc.GenericRpcHandler:
        handlers: dict[str, grpc.RpcMethodHandler] = {}
        for method in pb.DESCRIPTOR.services_by_name["GRPCInferenceService"].methods:
            # A method this table does not know (a newer Triton's) is not relayed at all.
            group = RELAYED_METHODS.get(method.name)
            if group is None:
                continue
            path = f"/{SERVICE}/{method.name}"
            policy = method_policy(group, self._settings)
            if method.client_streaming and method.server_streaming:
                handlers[method.name] = grpc.stream_stream_rpc_method_handler(
                    self._stream(path, policy), request_deserializer=_identity, response_serializer=_identity
                )
            else:
                handlers[method.name] = grpc.unary_unary_rpc_method_handler(
                    self._unary(path, policy), request_deserializer=_identity, response_serializer=_identity
                )
        return grpc.method_handlers_generic_handler(SERVICE, handlers)

    def _metadata(self, context: grpc.aio.ServicerContext) -> list[tuple[str, str | bytes]]:
        return [(key, value) for key, value in context.invocation_metadata() or () if key not in self._withheld]

    async def _admit(self, context: grpc.aio.ServicerContext, policy: Policy) -> None:
        """The policy's keys and restrictions, then (inference only) a slot of the gateway's
        --max-concurrent-requests, shared with HTTP."""
        metadata = {key: value for key, value in context.invocation_metadata() or () if isinstance(value, str)}
        refusal: APIError | None = self._guard.refusal(policy, lambda name: metadata.get(name.lower()))
        if refusal is not None:
            await context.abort(_STATUS_CODES.get(refusal.status, grpc.StatusCode.PERMISSION_DENIED), refusal.message)
        if policy.group is ApiGroup.INFERENCE and self._capacity is not None and not self._capacity.try_acquire():
            await context.abort(
                grpc.StatusCode.RESOURCE_EXHAUSTED, "The gateway is at its limit of requests in flight."
            )

    def _release(self, policy: Policy) -> None:
        if policy.group is ApiGroup.INFERENCE and self._capacity is not None:
            self._capacity.release()

    def _timeout(self, context: grpc.aio.ServicerContext) -> float | None:
        """The client's deadline, capped by --request-timeout."""
        remaining: float | None = context.time_remaining()
        limit = self._settings.request_timeout
        if remaining is None:
            return limit
        return remaining if limit is None else min(remaining, limit)

    def _unary(self, path: str, policy: Policy) -> Any:
        relay = self._channel.unary_unary(path, request_serializer=_identity, response_deserializer=_identity)

        async def handle(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
            await self._admit(context, policy)
            try:
                call = relay(request, metadata=self._metadata(context), timeout=self._timeout(context))
                return bytes(await call)
            except grpc.aio.AioRpcError as exc:
                await context.abort(exc.code(), exc.details() or "")
                raise  # unreachable: abort raises
            finally:
                self._release(policy)

        return handle

    def _stream(self, path: str, policy: Policy) -> Any:
        relay = self._channel.stream_stream(path, request_serializer=_identity, response_deserializer=_identity)

        async def handle(requests: AsyncIterator[bytes], context: grpc.aio.ServicerContext) -> AsyncIterator[bytes]:
            await self._admit(context, policy)
            call = relay(requests, metadata=self._metadata(context), timeout=self._timeout(context))
            try:
                async for response in call:
                    yield bytes(response)
            except grpc.aio.AioRpcError as exc:
                await context.abort(exc.code(), exc.details() or "")
            finally:
                call.cancel()  # the client left: so does Triton's stream
                self._release(policy)

        return handle
