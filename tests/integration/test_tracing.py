"""OpenTelemetry: the gateway's spans and Triton's own, in one trace that the client started,
received by an OTLP/HTTP receiver the test runs (the real protocol, protobuf over HTTP)."""

from __future__ import annotations

import base64
import gzip
import http.server
import json
import os
import secrets
import subprocess
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from google.protobuf import json_format
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2

from gateway.demo import stand_in_triton
from gateway.localtriton import free_port
from tests.conftest import MODEL_REPOSITORY, gateway_command, stop_process, wait_for_http


def _base64_ids(value: Any) -> Any:
    """OTLP's JSON writes trace and span ids in hex; protobuf's JSON mapping reads bytes as base64."""
    if isinstance(value, list):
        return [_base64_ids(item) for item in value]
    if not isinstance(value, dict):
        return value
    ids = ("traceId", "spanId", "parentSpanId")
    return {
        key: base64.b64encode(bytes.fromhex(item)).decode() if key in ids and item else _base64_ids(item)
        for key, item in value.items()
    }


class Receiver:
    """An OTLP/HTTP trace receiver on loopback: every span it was sent, with its service."""

    def __init__(self) -> None:
        self.spans: list[tuple[str, Any]] = []
        self._lock = threading.Lock()
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                if self.headers.get("Content-Encoding") == "gzip":
                    body = gzip.decompress(body)
                request = trace_service_pb2.ExportTraceServiceRequest()
                if "json" in self.headers.get("Content-Type", ""):  # OTLP/HTTP's JSON encoding (Triton's)
                    json_format.ParseDict(_base64_ids(json.loads(body)), request, ignore_unknown_fields=True)
                else:
                    request.ParseFromString(body)
                with receiver._lock:
                    for resource_spans in request.resource_spans:
                        service = next(
                            (
                                a.value.string_value
                                for a in resource_spans.resource.attributes
                                if a.key == "service.name"
                            ),
                            "",
                        )
                        for scope in resource_spans.scope_spans:
                            receiver.spans += [(service, span) for span in scope.spans]
                answer = trace_service_pb2.ExportTraceServiceResponse().SerializeToString()
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1/traces"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def of_trace(self, trace_id: bytes) -> list[tuple[str, Any]]:
        with self._lock:
            return [(service, span) for service, span in self.spans if span.trace_id == trace_id]


@pytest.fixture(scope="module")
def traced(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Receiver, str]]:
    """A receiver, a tritonserver tracing every request to it, and a gateway tracing to it."""
    receiver = Receiver()
    triton = stand_in_triton(
        MODEL_REPOSITORY,
        model_control_mode="explicit",
        load_models=("vllm_model",),
        extra_args=(
            "--trace-config=mode=opentelemetry",
            f"--trace-config=opentelemetry,url={receiver.url}",
            "--trace-config=opentelemetry,resource=service.name=triton",
            "--trace-config=opentelemetry,bsp_schedule_delay=100",
            "--trace-config=rate=1",
            "--trace-config=count=-1",
            "--trace-config=level=TIMESTAMPS",
        ),
    )
    with triton.running():
        port = free_port()
        log = tmp_path_factory.mktemp("tracing") / "gateway.log"
        command = gateway_command(triton.grpc_url, port, f"--otlp-traces-endpoint={receiver.url}")
        env = {**os.environ, "OTEL_BSP_SCHEDULE_DELAY": "100"}
        with open(log, "wb") as out:
            process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=env)
        try:
            wait_for_http(f"http://127.0.0.1:{port}/health/live", process)
            _warm_up(receiver, f"http://127.0.0.1:{port}")
            yield receiver, f"http://127.0.0.1:{port}"
        finally:
            stop_process(process)
    receiver.server.shutdown()


def traced_chat(url: str, stream: bool) -> tuple[bytes, bytes]:
    """A chat completion sent as part of a client's trace: (its trace id, the client's span id)."""
    trace_id, client_span = secrets.token_bytes(16), secrets.token_bytes(8)
    headers = {"traceparent": f"00-{trace_id.hex()}-{client_span.hex()}-01"}
    body = {"model": "vllm_model", "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 8, "stream": stream}
    response = httpx.post(f"{url}/v1/chat/completions", json=body, headers=headers, timeout=30)
    assert response.status_code == 200
    return trace_id, client_span


def _warm_up(receiver: Receiver, url: str) -> None:
    """One traced request first, until Triton's exporter has delivered a span of it: Triton's
    first export may come long after its first request."""
    trace_id, _ = traced_chat(url, stream=False)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not any(s == "triton" for s, _ in receiver.of_trace(trace_id)):
        time.sleep(0.2)


GATEWAY_SPANS = {"POST /v1/chat/completions", "plan", "triton ModelStreamInfer", "first token", "streaming"}


def spans_of(receiver: Receiver, trace_id: bytes, within: float) -> list[tuple[str, Any]]:
    """The trace's spans once the gateway's five and at least one of Triton's have arrived
    (each side exports on its own schedule), or what there is after `within` seconds."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        found = receiver.of_trace(trace_id)
        ours = {span.name for service, span in found if service == "triton-openai-gateway"}
        if GATEWAY_SPANS <= ours and any(service == "triton" for service, _ in found):
            return found
        time.sleep(0.2)
    return receiver.of_trace(trace_id)


@pytest.mark.parametrize("stream", [False, True])
def test_one_trace_from_the_client_through_the_gateway_into_triton(traced: tuple[Receiver, str], stream: bool) -> None:
    receiver, url = traced
    # Triton's own spans must join the trace under the gateway's call. This tritonserver now and
    # then traces a ModelStreamInfer call as a root of its own (its InferRequest span with no
    # parent, in a trace of its own; about one fixture run in eight here, the gateway's spans and
    # traceparent alike), so up to three requests are made for one whose Triton spans joined.
    for _ in range(3):
        trace_id, client_span = traced_chat(url, stream)
        spans = spans_of(receiver, trace_id, within=20)
        ours = {span.name: span for service, span in spans if service == "triton-openai-gateway"}
        assert set(ours) >= GATEWAY_SPANS
        server = ours["POST /v1/chat/completions"]
        assert server.parent_span_id == client_span  # the client's trace, continued
        call = ours["triton ModelStreamInfer"]
        assert ours["plan"].parent_span_id == server.span_id and call.parent_span_id == server.span_id
        assert ours["first token"].parent_span_id == call.span_id == ours["streaming"].parent_span_id
        attributes = {a.key: a.value for a in server.attributes}
        assert attributes["http.response.status_code"].int_value == 200
        assert attributes["gen_ai.request.model"].string_value == "vllm_model"
        triton_spans = [span for service, span in spans if service == "triton"]
        if triton_spans:
            break
    assert triton_spans and any(span.parent_span_id == call.span_id for span in triton_spans)
