"""OpenTelemetry traces, with `--otlp-traces-endpoint` (OTLP over HTTP, exported by the SDK's
batch processor on its own thread, never on the event loop).

Each request is a server span (`POST /v1/chat/completions`) that continues the client's trace
when it sends a W3C `traceparent`. Its children: `plan` (the model resolved, the prompt
rendered), and per choice `triton ModelStreamInfer` (a client span whose context goes to Triton
in the gRPC metadata, so Triton's own OpenTelemetry spans join the trace), which has `first
token` (until the first response) and `streaming` (from it to the last) under it.

Off (no endpoint), nothing is created: every helper returns at once.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Mapping
from typing import Any

from opentelemetry import propagate, trace
from opentelemetry.trace import Span, SpanKind, Status, StatusCode

__all__ = ["CallSpans", "Span", "Status", "StatusCode", "child_span", "server_span", "start_tracing"]

_TRACER = trace.get_tracer("triton-openai-gateway")
_UNTRACED = ("/health", "/metrics")
_enabled = False


def start_tracing(endpoint: str) -> Any:
    """Export spans to `endpoint`; returns the provider, to shut down (and flush) at exit.
    The service name is OTEL_SERVICE_NAME's when set, else triton-openai-gateway."""
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    global _enabled
    attributes = {} if os.environ.get("OTEL_SERVICE_NAME") else {"service.name": "triton-openai-gateway"}
    provider = TracerProvider(resource=Resource.create(attributes))
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=endpoint, timeout=5)))
    trace.set_tracer_provider(provider)
    _enabled = True
    return provider


@contextlib.contextmanager
def server_span(method: str, route: str, headers: Mapping[str, str]) -> Iterator[Span | None]:
    """The request's span (`METHOD /route`), the current one while the handler runs; continues
    the caller's trace (`traceparent`). Probes and scrapes are not traced: they would drown
    the traces that matter."""
    if not _enabled or route.startswith(_UNTRACED):
        yield None
        return
    parent = propagate.extract(headers)
    with _TRACER.start_as_current_span(f"{method} {route}", context=parent, kind=SpanKind.SERVER) as span:
        yield span


@contextlib.contextmanager
def child_span(name: str, **attributes: Any) -> Iterator[None]:
    """A span under the current one (in a coroutine, not across an async generator's yields)."""
    if not _enabled:
        yield
        return
    with _TRACER.start_as_current_span(name, attributes=attributes):
        yield


class CallSpans:
    """The spans of one Triton call, made without becoming current (the call's deltas come
    from an async generator): the call, then `first token`, then `streaming`."""

    __slots__ = ("_call", "_phase", "_streaming")

    def __init__(self, model: str, request_id: str) -> None:
        self._call: Span | None = None
        self._phase: Span | None = None
        self._streaming = False
        if _enabled:
            attributes = {"rpc.system": "grpc", "rpc.method": "ModelStreamInfer", "triton.model": model}
            attributes["triton.request_id"] = request_id
            self._call = _TRACER.start_span("triton ModelStreamInfer", kind=SpanKind.CLIENT, attributes=attributes)
            self._phase = _TRACER.start_span("first token", context=trace.set_span_in_context(self._call))

    def metadata(self) -> tuple[tuple[str, str], ...]:
        """The call's context for Triton: W3C `traceparent` (and `tracestate`) gRPC metadata."""
        if self._call is None:
            return ()
        carrier: dict[str, str] = {}
        propagate.inject(carrier, context=trace.set_span_in_context(self._call))
        return tuple(carrier.items())

    def first_response(self) -> None:
        if self._call is not None and self._phase is not None and not self._streaming:
            self._streaming = True
            self._phase.end()
            self._phase = _TRACER.start_span("streaming", context=trace.set_span_in_context(self._call))

    def end(self, error: BaseException | None = None) -> None:
        if self._call is None:
            return
        if self._phase is not None:
            self._phase.end()
        if error is not None:
            self._call.set_status(Status(StatusCode.ERROR, type(error).__name__))
        self._call.end()
        self._call = self._phase = None
