"""Hostile input: thousands of malformed, wrongly typed and odd bodies and headers. Every answer
is a success or a 4xx OpenAI envelope (never a 5xx or a traceback), and the server keeps serving."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4),
    max_leaves=12,
)
VALID = {
    "/v1/chat/completions": {"model": "vllm_model", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 4},
    "/v1/completions": {"model": "vllm_model", "prompt": "hi", "max_tokens": 4},
    "/v1/embeddings": {"model": "vllm_embed", "input": "hi"},
}
FIELDS = [
    "model",
    "messages",
    "prompt",
    "input",
    "max_tokens",
    "temperature",
    "top_p",
    "n",
    "stop",
    "seed",
    "logit_bias",
    "tools",
    "tool_choice",
    "response_format",
    "logprobs",
    "top_logprobs",
    "echo",
    "best_of",
    "stream_options",
    "min_tokens",
    "top_k",
    "stop_token_ids",
    "chat_template_kwargs",
    "dimensions",
    "encoding_format",
]


@st.composite
def bodies(draw: st.DrawFn) -> tuple[str, bytes, dict[str, str]]:
    path = draw(st.sampled_from(list(VALID)))
    kind = draw(st.sampled_from(["mutated", "mutated", "json", "bytes"]))
    if kind == "mutated":
        body: Any = dict(VALID[path])
        for field in draw(st.lists(st.sampled_from(FIELDS), min_size=1, max_size=3)):
            body[field] = draw(JSON)
        raw = json.dumps(body).encode()
    elif kind == "json":
        raw = json.dumps(draw(JSON)).encode()
    else:
        raw = draw(st.binary(max_size=200))
    headers = {"Content-Type": draw(st.sampled_from(["application/json", "text/plain", "application/x-www-form"]))}
    if draw(st.booleans()):
        headers["X-Request-Id"] = draw(
            st.text(alphabet=st.characters(min_codepoint=33, max_codepoint=126), max_size=200)
        )
    return path, raw, headers


@pytest.fixture(scope="module")
def http(gateway_process: str) -> httpx.Client:
    with httpx.Client(base_url=gateway_process, timeout=30) as client:
        yield client


# Derandomized: the same 600 hostile cases on every run, so CI is reproducible (set
# derandomize=False locally to hunt for new ones).
@settings(
    max_examples=600, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(case=bodies())
def test_hostile_bodies_get_4xx_envelopes(http: httpx.Client, case: tuple[str, bytes, dict[str, str]]) -> None:
    path, raw, headers = case
    if json.loads(raw).get("stream") if raw.startswith(b"{") and _is_json(raw) else False:
        headers["Accept"] = "text/event-stream"
    response = http.post(path, content=raw, headers=headers)
    assert response.status_code < 500, (response.status_code, response.text)
    if response.status_code >= 400:
        body = response.json()
        assert set(body) == {"error"} and set(body["error"]) == {"message", "type", "param", "code"}
        assert "Traceback" not in body["error"]["message"]
    else:
        assert b"Traceback" not in response.content


def _is_json(raw: bytes) -> bool:
    try:
        return isinstance(json.loads(raw), dict)
    except ValueError:
        return False


def test_the_server_still_serves_after_the_fuzzing(http: httpx.Client) -> None:
    assert http.get("/health/ready").status_code == 200
    reply = http.post("/v1/chat/completions", json=VALID["/v1/chat/completions"])
    assert reply.status_code == 200 and reply.json()["choices"][0]["message"]["content"]
