"""A thin asyncio client for Triton's gRPC API, built on the raw protobuf stubs.

The stubs (not tritonclient's aio helper) are used because only they can set the reserved
`triton_enable_empty_final_response` parameter, and they hand back raw tensor bytes without
a numpy round trip. Each inference is its own `ModelStreamInfer` call, so cancelling the
call cancels exactly that request inside Triton.
"""

from __future__ import annotations

import logging
from types import TracebackType
from typing import Any, Self

import grpc
from tritonclient.grpc import service_pb2 as pb
from tritonclient.grpc import service_pb2_grpc as pb_grpc

from gateway.errors import APIError, BackendError, BackendUnavailable, BadGateway, InvalidRequest

log = logging.getLogger(__name__)

FINAL_FLAG = "triton_final_response"
EMPTY_FINAL_FLAG = "triton_enable_empty_final_response"


class TritonErrorMessage(Exception):
    """Triton ended a request with an error message (the status code is not passed on).
    Backend adapters translate it into what the client should see."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class TritonClient:
    """One gRPC channel to one Triton, shared by every request."""

    def __init__(self, url: str, *, max_message_bytes: int = 256 * 1024 * 1024) -> None:
        self.url = url
        options = [
            ("grpc.max_send_message_length", max_message_bytes),
            ("grpc.max_receive_message_length", max_message_bytes),
            # Reconnect quickly after a Triton restart (gRPC's default backoff grows to 2 min).
            ("grpc.initial_reconnect_backoff_ms", 250),
            ("grpc.min_reconnect_backoff_ms", 250),
            ("grpc.max_reconnect_backoff_ms", 2000),
        ]
        self._channel = grpc.aio.insecure_channel(url, options=options)
        self._stub = pb_grpc.GRPCInferenceServiceStub(self._channel)

    async def close(self) -> None:
        await self._channel.close(grace=None)

    async def is_ready(self, timeout: float = 2.0) -> bool:
        """True when Triton answers ServerReady with ready=true."""
        try:
            reply = await self._stub.ServerReady(pb.ServerReadyRequest(), timeout=timeout)
        except grpc.aio.AioRpcError:
            return False
        return bool(reply.ready)

    async def repository_index(self, timeout: float = 5.0) -> list[pb.RepositoryIndexResponse.ModelIndex]:
        try:
            reply = await self._stub.RepositoryIndex(pb.RepositoryIndexRequest(ready=False), timeout=timeout)
        except grpc.aio.AioRpcError as exc:
            raise rpc_error(exc, self.url) from None
        return list(reply.models)

    async def model_config(self, name: str, version: str = "", timeout: float = 5.0) -> pb.ModelConfig:
        try:
            reply = await self._stub.ModelConfig(pb.ModelConfigRequest(name=name, version=version), timeout=timeout)
        except grpc.aio.AioRpcError as exc:
            raise rpc_error(exc, self.url) from None
        return reply.config

    async def load_model(self, name: str, timeout: float = 300.0) -> None:
        await self._repository_call(
            self._stub.RepositoryModelLoad, pb.RepositoryModelLoadRequest(model_name=name), timeout
        )

    async def unload_model(self, name: str, timeout: float = 60.0) -> None:
        request = pb.RepositoryModelUnloadRequest(model_name=name)
        await self._repository_call(self._stub.RepositoryModelUnload, request, timeout)

    async def _repository_call(self, method: Any, request: Any, timeout: float) -> None:
        try:
            await method(request, timeout=timeout)
        except grpc.aio.AioRpcError as exc:
            details = exc.details() or ""
            if "not allowed" in details or "model control mode" in details.lower():
                raise InvalidRequest(
                    "Triton is not in explicit model-control mode, so models cannot be loaded or unloaded "
                    "through it (start tritonserver with --model-control-mode=explicit).",
                    code="model_control_disabled",
                ) from None
            if exc.code() in (grpc.StatusCode.NOT_FOUND, grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.INTERNAL):
                raise InvalidRequest(
                    f"Triton could not do it: {details}", param="model", code="model_control_failed"
                ) from None
            raise rpc_error(exc, self.url) from None

    def stream(self, request: pb.ModelInferRequest) -> InferenceStream:
        """Open a `ModelStreamInfer` call for one request; use with `async with`."""
        request.parameters[EMPTY_FINAL_FLAG].bool_param = True
        return InferenceStream(self._stub, request, self.url)


class InferenceStream:
    """The responses of one request. Leaving the `async with` block early cancels the
    call, which Triton passes on to the model as a cancellation."""

    def __init__(self, stub: pb_grpc.GRPCInferenceServiceStub, request: pb.ModelInferRequest, url: str) -> None:
        self._stub = stub
        self._request = request
        self._url = url
        self._call: grpc.aio.StreamStreamCall | None = None
        self.finished = False

    async def __aenter__(self) -> Self:
        self._call = self._stub.ModelStreamInfer()
        try:
            await self._call.write(self._request)
            await self._call.done_writing()
        except grpc.aio.AioRpcError as exc:
            self._call.cancel()
            raise rpc_error(exc, self._url) from None
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
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
            self.finished = True
            raise rpc_error(exc, self._url) from None
        if message is grpc.aio.EOF:
            self.finished = True
            raise BadGateway("Triton closed the stream before the model's final response.")
        if message.error_message:
            # Terminal: request-level errors carry no final flag, backend errors do.
            self.finished = True
            raise TritonErrorMessage(message.error_message)
        response = message.infer_response
        if FINAL_FLAG in response.parameters and response.parameters[FINAL_FLAG].bool_param:
            self.finished = True
        return response


def rpc_error(exc: grpc.aio.AioRpcError, url: str) -> APIError:
    """Map a failed RPC onto the error the client should see."""
    code = exc.code()
    if code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED):
        log.warning("Triton at %s is unavailable: %s", url, exc.details())
        return BackendUnavailable(f"The inference server is unavailable ({code.name.lower()}); try again shortly.")
    return BackendError(f"The inference server returned an error: {exc.details()}")
