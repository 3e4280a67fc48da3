"""KServe v2 pass-through with tritonclient's own HTTP and gRPC clients."""

from __future__ import annotations

import json
from collections.abc import Iterator

import numpy as np
import pytest
import tritonclient.grpc as grpcclient
import tritonclient.http as httpclient
from tritonclient.utils import InferenceServerException

from gateway.localtriton import free_port
from tests.conftest import spawn_gateway, stop_process


@pytest.fixture(scope="module")
def kserve_gateway(triton, tmp_path_factory) -> Iterator[tuple[str, str]]:  # type: ignore[no-untyped-def]
    """A gateway with the KServe frontends and an API key; yields (HTTP host:port, gRPC host:port)."""
    grpc_port = free_port()
    process, url = spawn_gateway(
        triton.grpc_url,
        tmp_path_factory.mktemp("kserve"),
        "--enable-kserve-frontends",
        f"--triton-http-url={triton.http_url}",
        f"--kserve-grpc-port={grpc_port}",
        "--api-key=sekret",
        "--max-concurrent-requests=1",
    )
    try:
        yield url.removeprefix("http://"), f"127.0.0.1:{grpc_port}"
    finally:
        stop_process(process)


def auth() -> dict[str, str]:
    return {"Authorization": "Bearer sekret"}  # a fresh dict: tritonclient adds to the one it is given


def add_sub_inputs(module):  # type: ignore[no-untyped-def]
    a = np.arange(4, dtype=np.float32)
    b = np.ones(4, dtype=np.float32)
    inputs = [module.InferInput("INPUT0", [4], "FP32"), module.InferInput("INPUT1", [4], "FP32")]
    inputs[0].set_data_from_numpy(a)
    inputs[1].set_data_from_numpy(b)
    return inputs, a + b


def test_http_pass_through(kserve_gateway) -> None:  # type: ignore[no-untyped-def]
    url, _ = kserve_gateway
    client = httpclient.InferenceServerClient(url)
    assert not client.is_server_live()  # no API key: 401
    with pytest.raises(InferenceServerException, match="API key"):
        client.get_model_repository_index()
    assert client.is_server_live(headers=auth()) and client.is_server_ready(headers=auth())
    assert {m["name"] for m in client.get_model_repository_index(headers=auth())} >= {"add_sub", "vllm_model"}
    inputs, expected = add_sub_inputs(httpclient)
    result = client.infer("add_sub", inputs, headers=auth())
    assert np.array_equal(result.as_numpy("OUTPUT0"), expected)


def test_http_generate_stream_is_passed_through_unbuffered(kserve_gateway) -> None:  # type: ignore[no-untyped-def]
    import httpx

    url, _ = kserve_gateway
    body = {
        "text_input": "Hello there",
        "stream": True,
        "exclude_input_in_output": True,
        "sampling_parameters": json.dumps({"max_tokens": 40, "temperature": 0}),
    }
    events = []
    with httpx.stream(
        "POST", f"http://{url}/v2/models/vllm_model/generate_stream", json=body, headers=auth()
    ) as response:
        assert response.status_code == 200
        for line in response.iter_lines():
            if line.startswith("data: "):
                events.append(json.loads(line[6:]))
    assert len(events) > 3  # one event per token, not one buffered body
    assert "".join(event["text_output"] for event in events) == "You said: Hello there"


def test_grpc_pass_through_unary_and_stream(kserve_gateway) -> None:  # type: ignore[no-untyped-def]
    _, grpc_url = kserve_gateway
    client = grpcclient.InferenceServerClient(grpc_url)
    with pytest.raises(InferenceServerException, match="API key"):
        client.is_server_ready()
    headers = {"authorization": "Bearer sekret"}
    assert client.is_server_ready(headers=headers)
    assert client.get_model_config("vllm_model", headers=headers).config.backend == "vllm"
    inputs, expected = add_sub_inputs(grpcclient)
    assert np.array_equal(client.infer("add_sub", inputs, headers=headers).as_numpy("OUTPUT0"), expected)

    received = []
    client.start_stream(callback=lambda result, error: received.append((result, error)), headers=headers)
    text = grpcclient.InferInput("text_input", [1], "BYTES")
    text.set_data_from_numpy(np.array([b"Hello there"], dtype=np.object_))
    stream = grpcclient.InferInput("stream", [1], "BOOL")
    stream.set_data_from_numpy(np.array([True]))
    exclude = grpcclient.InferInput("exclude_input_in_output", [1], "BOOL")
    exclude.set_data_from_numpy(np.array([True]))
    params = grpcclient.InferInput("sampling_parameters", [1], "BYTES")
    params.set_data_from_numpy(np.array([json.dumps({"max_tokens": 40, "temperature": 0}).encode()], dtype=np.object_))
    client.async_stream_infer("vllm_model", [text, stream, exclude, params], request_id="kserve-stream")
    client.stop_stream()  # waits for the stream to end
    assert all(error is None for _, error in received)
    pieces = [result.as_numpy("text_output")[0].decode() for result, _ in received]
    assert len(pieces) > 3 and "".join(pieces) == "You said: Hello there"
    client.close()


def test_one_limit_covers_http_and_the_grpc_relay(kserve_gateway) -> None:  # type: ignore[no-untyped-def]
    import asyncio

    import aiohttp

    url, grpc_url = kserve_gateway
    headers = {"authorization": "Bearer sekret"}
    body = {
        "model": "vllm_slow",
        "messages": [{"role": "user", "content": "go " * 20}],
        "max_tokens": 40,
        "stream": True,
    }

    def grpc_add_sub() -> str:
        client = grpcclient.InferenceServerClient(grpc_url)
        inputs, _ = add_sub_inputs(grpcclient)
        try:
            client.infer("add_sub", inputs, headers=headers)
            return "ok"
        except InferenceServerException as exc:
            return str(exc)
        finally:
            client.close()

    async def scenario() -> tuple[str, str]:
        async with (
            aiohttp.ClientSession(headers=auth()) as session,
            session.post(f"http://{url}/v1/chat/completions", json=body) as busy,
        ):
            await busy.content.readline()  # the one slot is taken by this stream
            during = await asyncio.to_thread(grpc_add_sub)
            await busy.read()
        return during, await asyncio.to_thread(grpc_add_sub)

    during, after = asyncio.run(scenario())
    assert "limit" in during and after == "ok"
