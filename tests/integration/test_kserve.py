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
        client.get_model_metadata("add_sub")
    assert client.is_server_live(headers=auth()) and client.is_server_ready(headers=auth())
    assert client.get_model_metadata("add_sub", headers=auth())["name"] == "add_sub"
    assert client.is_model_ready("add_sub", headers=auth())
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


def test_http_admin_surface_is_refused(kserve_gateway) -> None:  # type: ignore[no-untyped-def]
    """Triton's admin API: repository (load takes model files, i.e. code), shared memory
    (other requests' tensors), logging, trace, statistics. Refused even with the API key."""
    import httpx

    url, _ = kserve_gateway
    calls = [
        ("POST", "/v2/repository/index", {}),
        ("POST", "/v2/repository/models/add_sub/unload", {}),
        (
            "POST",
            "/v2/repository/models/evil/load",
            {"parameters": {"config": "{}", "file:1/model.py": "aW1wb3J0IG9z"}},
        ),
        ("GET", "/v2/systemsharedmemory/status", None),
        ("POST", "/v2/systemsharedmemory/region/r/register", {"key": "/x", "offset": 0, "byte_size": 64}),
        ("POST", "/v2/systemsharedmemory/unregister", {}),
        ("GET", "/v2/cudasharedmemory/status", None),
        ("POST", "/v2/cudasharedmemory/region/r/unregister", {}),
        ("GET", "/v2/logging", None),
        ("POST", "/v2/logging", {"log_verbose_level": 1}),
        ("GET", "/v2/trace/setting", None),
        ("POST", "/v2/models/add_sub/trace/setting", {"trace_level": ["TIMESTAMPS"]}),
        ("GET", "/v2/models/stats", None),
        ("GET", "/v2/models/add_sub/stats", None),
        ("GET", "/v2/models/add_sub/versions/1/stats", None),
    ]
    with httpx.Client(base_url=f"http://{url}", headers=auth()) as client:
        for method, path, body in calls:
            response = client.request(method, path, json=body)
            assert response.status_code == 403, (method, path, response.text)
            assert set(response.json()) == {"error"} and "admin" in response.json()["error"], path  # KServe-shaped
        assert client.get("/v2/models/add_sub/ready").status_code == 200  # nothing was unloaded
        # Unknown /v2 paths are not forwarded either.
        assert client.get("/v2/anything/else").status_code == 404


def test_grpc_admin_surface_is_refused(kserve_gateway) -> None:  # type: ignore[no-untyped-def]
    import grpc as grpc_lib

    _, grpc_url = kserve_gateway
    client = grpcclient.InferenceServerClient(grpc_url)
    headers = {"authorization": "Bearer sekret"}
    calls = [
        lambda: client.get_model_repository_index(headers=headers),
        lambda: client.unload_model("add_sub", headers=headers),
        lambda: client.load_model("evil", headers=headers, config="{}", files={"file:1/model.py": b"import os"}),
        lambda: client.get_system_shared_memory_status(headers=headers),
        lambda: client.register_system_shared_memory("r", "/x", 64, headers=headers),
        lambda: client.unregister_cuda_shared_memory(headers=headers),
        lambda: client.get_log_settings(headers=headers),
        lambda: client.update_trace_settings(settings={"trace_level": ["TIMESTAMPS"]}, headers=headers),
        lambda: client.get_inference_statistics(headers=headers),
    ]
    for call in calls:
        with pytest.raises(InferenceServerException) as raised:
            call()
        assert raised.value.status() == str(grpc_lib.StatusCode.PERMISSION_DENIED), raised.value
    assert client.is_model_ready("add_sub", headers=headers)
    client.close()


@pytest.fixture(scope="module")
def kserve_admin_gateway(triton, tmp_path_factory) -> Iterator[tuple[str, str]]:  # type: ignore[no-untyped-def]
    """KServe frontends with the admin API opened to an admin key, a restricted inference
    group, a 2 s request timeout and a 4 KiB input limit."""
    grpc_port = free_port()
    process, url = spawn_gateway(
        triton.grpc_url,
        tmp_path_factory.mktemp("kserve-admin"),
        "--enable-kserve-frontends",
        "--enable-kserve-admin",
        f"--triton-http-url={triton.http_url}",
        f"--kserve-grpc-port={grpc_port}",
        "--api-key=sekret",
        "--admin-api-key=root-key",
        "--openai-restricted-api",
        "inference",
        "X-Team",
        "blue",
        "--request-timeout=2",
        "--http-max-input-size=4096",
    )
    try:
        yield url.removeprefix("http://"), f"127.0.0.1:{grpc_port}"
    finally:
        stop_process(process)


def test_admin_surface_opens_only_to_the_admin_key(kserve_admin_gateway) -> None:  # type: ignore[no-untyped-def]
    import grpc as grpc_lib
    import httpx

    url, grpc_url = kserve_admin_gateway
    with httpx.Client(base_url=f"http://{url}") as http:
        assert http.post("/v2/repository/index", headers=auth()).status_code == 401
        index = http.post("/v2/repository/index", headers={"Authorization": "Bearer root-key"})
        assert index.status_code == 200 and "add_sub" in {model["name"] for model in index.json()}
    client = grpcclient.InferenceServerClient(grpc_url)
    with pytest.raises(InferenceServerException) as raised:
        client.get_model_repository_index(headers={"authorization": "Bearer sekret"})
    assert raised.value.status() == str(grpc_lib.StatusCode.UNAUTHENTICATED)
    names = {
        model.name for model in client.get_model_repository_index(headers={"authorization": "Bearer root-key"}).models
    }
    assert "add_sub" in names
    client.close()


def test_restricted_groups_apply_to_the_grpc_relay(kserve_admin_gateway) -> None:  # type: ignore[no-untyped-def]
    import grpc as grpc_lib

    _, grpc_url = kserve_admin_gateway
    client = grpcclient.InferenceServerClient(grpc_url)
    headers = {"authorization": "Bearer sekret"}
    assert client.is_server_ready(headers=headers)  # health is not restricted here
    inputs, expected = add_sub_inputs(grpcclient)
    with pytest.raises(InferenceServerException, match="X-Team") as raised:
        client.infer("add_sub", inputs, headers=headers)
    assert raised.value.status() == str(grpc_lib.StatusCode.UNAUTHENTICATED)
    with pytest.raises(InferenceServerException, match="X-Team"):
        client.infer("add_sub", inputs, headers={**headers, "x-team": "red"})
    result = client.infer("add_sub", inputs, headers={**headers, "x-team": "blue"})
    assert np.array_equal(result.as_numpy("OUTPUT0"), expected)
    client.close()


def test_input_size_limit_covers_v2_and_the_relay(kserve_admin_gateway) -> None:  # type: ignore[no-untyped-def]
    import grpc as grpc_lib
    import httpx

    url, grpc_url = kserve_admin_gateway
    headers = {"authorization": "Bearer sekret", "x-team": "blue"}
    big = np.zeros(2048, dtype=np.float32)  # 8 KiB per input, over the 4 KiB limit
    client = grpcclient.InferenceServerClient(grpc_url)
    inputs = [grpcclient.InferInput("INPUT0", [2048], "FP32"), grpcclient.InferInput("INPUT1", [2048], "FP32")]
    for tensor in inputs:
        tensor.set_data_from_numpy(big)
    with pytest.raises(InferenceServerException) as raised:
        client.infer("add_sub", inputs, headers=headers)
    assert raised.value.status() == str(grpc_lib.StatusCode.RESOURCE_EXHAUSTED)
    client.close()
    body = {"inputs": [{"name": "INPUT0", "shape": [2048], "datatype": "FP32", "data": [0.0] * 2048}]}
    response = httpx.post(f"http://{url}/v2/models/add_sub/infer", json=body, headers=headers)
    assert response.status_code == 413 and set(response.json()) == {"error"}


def test_request_timeout_covers_v2_and_the_relay(kserve_admin_gateway, triton) -> None:  # type: ignore[no-untyped-def]
    import grpc as grpc_lib
    import httpx

    url, grpc_url = kserve_admin_gateway
    headers = {"authorization": "Bearer sekret", "x-team": "blue"}
    slow = {
        "text_input": "go " * 20,
        "stream": False,
        "sampling_parameters": json.dumps({"max_tokens": 400, "ignore_eos": True}),
    }
    response = httpx.post(f"http://{url}/v2/models/vllm_slow/generate", json=slow, headers=headers, timeout=30)
    assert response.status_code == 504 and set(response.json()) == {"error"}

    received: list = []
    client = grpcclient.InferenceServerClient(grpc_url)
    client.start_stream(callback=lambda result, error: received.append(error), headers=headers)
    text = grpcclient.InferInput("text_input", [1], "BYTES")
    text.set_data_from_numpy(np.array([b"go " * 20], dtype=np.object_))
    stream = grpcclient.InferInput("stream", [1], "BOOL")
    stream.set_data_from_numpy(np.array([True]))
    params = grpcclient.InferInput("sampling_parameters", [1], "BYTES")
    params.set_data_from_numpy(
        np.array([json.dumps({"max_tokens": 400, "ignore_eos": True}).encode()], dtype=np.object_)
    )
    client.async_stream_infer("vllm_slow", [text, stream, params], request_id="relay-deadline")
    client.stop_stream()  # returns once the relay ends the stream
    errors = [error for error in received if error is not None]
    assert errors and errors[-1].status() == str(grpc_lib.StatusCode.DEADLINE_EXCEEDED)
    client.close()


@pytest.mark.parametrize("algorithm", ["gzip", "deflate"])
def test_compressed_infer_bodies_reach_triton_as_sent(kserve_gateway, algorithm: str) -> None:  # type: ignore[no-untyped-def]
    """Triton's HTTP endpoint decompresses gzip and deflate bodies itself, within its own
    --http-max-input-size: the pass-through hands them on compressed, Content-Encoding and all."""
    url, _ = kserve_gateway
    client = httpclient.InferenceServerClient(url)
    inputs, expected = add_sub_inputs(httpclient)
    result = client.infer("add_sub", inputs, headers=auth(), request_compression_algorithm=algorithm)
    assert np.array_equal(result.as_numpy("OUTPUT0"), expected)


def test_compressed_generate_bodies_get_tritons_own_answer(kserve_gateway) -> None:  # type: ignore[no-untyped-def]
    import gzip
    import urllib.error
    import urllib.request

    url, _ = kserve_gateway
    body = gzip.compress(json.dumps({"text_input": "Hello", "sampling_parameters": "{}"}).encode())
    headers = {**auth(), "Content-Type": "application/json", "Content-Encoding": "gzip"}
    request = urllib.request.Request(f"http://{url}/v2/models/vllm_model/generate", body, headers, method="POST")
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request, timeout=30)
    assert refused.value.code == 400
    assert "only 'identity' is supported" in json.loads(refused.value.read())["error"]
