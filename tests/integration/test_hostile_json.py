"""Hostile JSON and JSON Schema input: each case is a 400 with the full error envelope (or,
for a strict output that cannot be checked in time, a 502), nothing hangs, nothing is
fetched, /health/live keeps answering, and the gateway serves normally afterwards."""

from __future__ import annotations

import asyncio
import json
import threading
import time
import urllib.request
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, Self

import pytest
from aiohttp import ClientResponse
from aiohttp.test_utils import TestClient

from gateway import schema_check
from gateway.http.body import MAX_JSON_DEPTH
from gateway.schema_check import SCHEMA_THREADS
from gateway.schema_limits import MAX_SCHEMA_NODES, MAX_TOOL_SCHEMA_NODES
from tests.conftest import sse_events, user

SCHEMA_PARAM = "response_format.json_schema.schema"
HEAD = b'{"model": "vllm_model", "max_tokens": 8, "messages": [{"role": "user", "content": "hi"}]'
# The costliest schemas the bounds accept: jsonschema's own check of one empty subschema
# takes about 0.5 ms, so these hold a schema-check thread for seconds.
WORST_SCHEMA = {"allOf": [{} for _ in range(MAX_SCHEMA_NODES - 2)]}
WORST_TOOLS = [
    {"type": "function", "function": {"name": f"t{index}", "parameters": WORST_SCHEMA}}
    for index in range(MAX_TOOL_SCHEMA_NODES // MAX_SCHEMA_NODES)
]


async def error_of(response: ClientResponse, status: int, param: str | None, code: str) -> dict[str, Any]:
    assert response.status == status, await response.text()
    body = await response.json()
    assert set(body) == {"error"} and set(body["error"]) == {"message", "type", "param", "code"}
    error: dict[str, Any] = body["error"]
    assert (error["param"], error["code"]) == (param, code), error
    assert error["type"] == ("invalid_request_error" if status == 400 else "server_error")
    return error


async def assert_serving(client: TestClient) -> None:
    response = await client.post("/v1/chat/completions", json={"model": "vllm_model", "messages": user("hi")})
    assert response.status == 200, await response.text()
    assert (await client.get("/health/live")).status == 200


def with_schema(schema: Any, *, strict: bool = True, said: str = "hi", **extra: Any) -> dict[str, Any]:
    response_format = {"type": "json_schema", "json_schema": {"name": "x", "schema": schema, "strict": strict}}
    return {
        "model": "vllm_model",
        "messages": user(said),
        "max_tokens": 60,
        "response_format": response_format,
        **extra,
    }


def with_tool(parameters: Any, index: int = 2) -> dict[str, Any]:
    tools = [{"type": "function", "function": {"name": f"t{i}", "parameters": {"type": "object"}}} for i in range(4)]
    tools[index]["function"]["parameters"] = parameters
    return {"model": "vllm_model", "messages": user("hi"), "tools": tools, "tool_choice": "none"}


# --- the body -----------------------------------------------------------------------------


@pytest.mark.parametrize("levels", [1000, 100_000])
@pytest.mark.parametrize("field", ["metadata", "unknown_field"])
async def test_deep_bodies_are_400s(client: TestClient, levels: int, field: str) -> None:
    body = HEAD + b', "%s": {"a": ' % field.encode() + b"[" * levels + b"]" * levels + b"}}"
    error = await error_of(await client.post("/v1/chat/completions", data=body), 400, None, "invalid_json")
    assert "nests" in error["message"] and str(MAX_JSON_DEPTH) in error["message"]
    await assert_serving(client)


async def test_the_depth_bound_is_exact(client: TestClient) -> None:
    def body(levels: int) -> bytes:  # the body itself and metadata are two levels
        inner = levels - 2
        return HEAD + b', "metadata": {"a": ' + b"[" * inner + b"]" * inner + b"}}"

    assert (await client.post("/v1/chat/completions", data=body(MAX_JSON_DEPTH))).status == 200
    await error_of(await client.post("/v1/chat/completions", data=body(MAX_JSON_DEPTH + 1)), 400, None, "invalid_json")


@pytest.mark.parametrize(
    "extra",
    [
        b', "user": "\xff\xfe"',
        b', "\xff\xfe": 1',
        b', "unknown": {"\xc3": "x"}',
        b', "metadata": {"k": "\xed\xa0\x80"}',
    ],
    ids=["value", "unknown key", "key in an unknown field", "surrogate"],
)
async def test_invalid_utf8_anywhere_is_a_400(client: TestClient, extra: bytes) -> None:
    response = await client.post("/v1/chat/completions", data=HEAD + extra + b"}")
    error = await error_of(response, 400, None, "invalid_json")
    assert "UTF-8" in error["message"]
    await assert_serving(client)


# --- schemas refused at request time ------------------------------------------------------


@pytest.mark.parametrize(
    ("schema", "code"),
    [
        ({"$ref": "#"}, "invalid_schema"),
        (
            {"$defs": {"a": {"$ref": "#/$defs/b"}, "b": {"anyOf": [{"$ref": "#/$defs/a"}]}}, "$ref": "#/$defs/a"},
            "invalid_schema",
        ),
        ({"properties": {"a": {"$ref": "#/$defs/missing"}}}, "invalid_schema"),
        ({"properties": {"a": {"$ref": "#anchor"}}}, "invalid_schema"),
        ({"type": "string", "pattern": "(("}, "invalid_schema"),
        ({"type": "string", "pattern": "(a{1000}){1000}"}, "schema_too_complex"),
        ({"enum": list(range(MAX_SCHEMA_NODES))}, "schema_too_complex"),
        ({"description": "x" * 70_000}, "schema_too_complex"),
        ({"not": json.loads('{"not": ' * 40 + "{}" + "}" * 40)}, "schema_too_complex"),
    ],
    ids=[
        "root cycle",
        "a-b cycle",
        "unresolved",
        "anchor",
        "bad pattern",
        "pattern expansion",
        "nodes",
        "strings",
        "depth",
    ],
)
async def test_hostile_schemas_are_400s_naming_the_field(client: TestClient, schema: Any, code: str) -> None:
    for strict in (True, False):
        response = await client.post("/v1/chat/completions", json=with_schema(schema, strict=strict))
        await error_of(response, 400, SCHEMA_PARAM, code)
    await error_of(
        await client.post("/v1/chat/completions", json=with_tool(schema)), 400, "tools[2].function.parameters", code
    )
    completion = {"model": "vllm_model", "prompt": "hi", "response_format": with_schema(schema)["response_format"]}
    await error_of(await client.post("/v1/completions", json=completion), 400, SCHEMA_PARAM, code)
    await assert_serving(client)


async def test_recursion_through_items_is_still_served(client: TestClient) -> None:
    tree = {"type": "object", "properties": {"children": {"type": "array", "items": {"$ref": "#"}}}}
    response = await client.post("/v1/chat/completions", json=with_schema(tree))
    assert response.status == 200, await response.text()


async def test_remote_refs_are_refused_and_never_fetched(
    client: TestClient, schema_server: tuple[str, list[str]]
) -> None:
    url, requested = schema_server
    schema = {"type": "object", "properties": {"city": {"$ref": url}}, "required": ["city"]}
    error = await error_of(
        await client.post("/v1/chat/completions", json=with_schema(schema)), 400, SCHEMA_PARAM, "invalid_schema"
    )
    assert url in error["message"]
    tool = with_tool({"type": "object", "properties": {"city": {"$ref": url}}}, index=1)
    await error_of(
        await client.post("/v1/chat/completions", json=tool), 400, "tools[1].function.parameters", "invalid_schema"
    )
    assert requested == []
    await assert_serving(client)


async def test_tools_are_bounded_together(client: TestClient) -> None:
    tools = [*WORST_TOOLS, {"type": "function", "function": {"name": "last", "parameters": {"enum": [1, 2, 3]}}}]
    body = {"model": "vllm_model", "messages": user("hi"), "tools": tools, "tool_choice": "none"}
    param = f"tools[{len(WORST_TOOLS)}].function.parameters"
    error = await error_of(await client.post("/v1/chat/completions", json=body), 400, param, "schema_too_complex")
    assert f"{MAX_TOOL_SCHEMA_NODES:,}" in error["message"]


# --- strict outputs that cannot be checked quickly ----------------------------------------

CATASTROPHIC = {
    # stdlib `re` takes 2**n steps on "a"*n + "!"; the gateway matches with `regex`, which
    # answers at once, so this output is simply reported as not matching
    "^(a+)+$": "does not match",
    # catastrophic for `regex` too: the match times out and the output counts as unchecked
    "^(a|a)*$": "could not be checked",
}


@pytest.mark.timeout(60)
@pytest.mark.parametrize("pattern", list(CATASTROPHIC))
async def test_catastrophic_patterns_do_not_hang_a_strict_request(client: TestClient, pattern: str) -> None:
    schema = {"type": "object", "properties": {"s": {"type": "string", "pattern": pattern}}, "required": ["s"]}
    body = with_schema(schema, said="a" * 40 + "!")  # the stand-in writes the user's words into the string
    error = await error_of(
        await client.post("/v1/chat/completions", json=body), 502, None, "structured_output_violation"
    )
    assert CATASTROPHIC[pattern] in error["message"]
    events = await sse_events(await client.post("/v1/chat/completions", json={**body, "stream": True}))
    assert events[-1] == "[DONE]" and events[-2]["error"]["code"] == "structured_output_violation"
    # the same pattern on a key: the stand-in writes the required names as keys
    keys = {"required": ["a" * 40 + "!"], "patternProperties": {pattern: {}}, "additionalProperties": False}
    response = await client.post("/v1/chat/completions", json=with_schema({"type": "object", **keys}))
    error = await error_of(response, 502, None, "structured_output_violation")
    assert CATASTROPHIC[pattern] in error["message"]
    await assert_serving(client)


# --- liveness while the worst accepted input is being checked -----------------------------


class LivenessProbe:
    """GET /health/live from another thread, again and again, counting the answers. A probe
    has a 30 s deadline (a hang, not a measurement): its thread keeps its own clock, so an
    event loop blocked by a check cannot hide from it."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.answered = 0
        self.changed = threading.Condition()
        self.failures: list[BaseException] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._probe, daemon=True)

    def _probe(self) -> None:
        while not self._stop.is_set():
            try:
                with urllib.request.urlopen(self.url, timeout=30) as response:
                    assert response.status == 200
            except (OSError, AssertionError) as exc:
                self.failures.append(exc)
            with self.changed:
                self.answered += 1
                self.changed.notify_all()
            time.sleep(0.02)

    def answered_after(self, count: int) -> bool:
        """Whether a probe is answered after the `count`-th, waiting up to 30 s for one."""
        with self.changed:
            return self.changed.wait_for(lambda: self.answered > count, timeout=30)

    async def __aenter__(self) -> Self:
        self._thread.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        self._stop.set()
        await asyncio.to_thread(self._thread.join)  # joining on the loop would block the probe's answer
        assert not self.failures, self.failures


class WatchedChecks(ThreadPoolExecutor):
    """The schema-check pool, holding each check's thread until the liveness probe has been
    answered while the check ran: the answer proves the event loop was free meanwhile (a
    check on the loop would block the probe and end in the 30 s deadline)."""

    def __init__(self, probe: LivenessProbe) -> None:
        super().__init__(max_workers=SCHEMA_THREADS, thread_name_prefix="watched-check")
        self.probe = probe
        self.checks: list[bool] = []  # per check: a probe was answered while it ran

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        def watched() -> Any:
            before = self.probe.answered
            try:
                return fn(*args, **kwargs)
            finally:
                self.checks.append(self.probe.answered_after(before))

        return super().submit(watched)


@pytest.mark.timeout(180)
async def test_liveness_while_the_worst_accepted_input_is_checked(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    defs: dict[str, Any] = {f"d{i}": {"anyOf": [{"$ref": f"#/$defs/d{i + 1}"}] * 2} for i in range(30)}
    defs["d30"] = {"type": "string", "pattern": "^(a|a)*$"}
    cases = [
        (with_schema(WORST_SCHEMA), 200),
        ({"model": "vllm_model", "messages": user("hi"), "tools": WORST_TOOLS, "tool_choice": "none"}, 200),
        (with_schema({"$defs": defs, "$ref": "#/$defs/d0"}, said="a" * 40 + "!"), 502),  # 2**30 paths
        (with_schema({"type": "string", "pattern": "^(a|a)*$"}, said="a" * 40 + "!"), 502),
    ]
    async with LivenessProbe(str(client.make_url("/health/live"))) as probe:
        pool = WatchedChecks(probe)
        monkeypatch.setattr(schema_check, "_POOL", pool)
        for body, status in cases:
            checked = len(pool.checks)
            response = await client.post("/v1/chat/completions", json=body)
            assert response.status == status, await response.text()
            assert len(pool.checks) > checked  # the case was checked in the pool
        assert all(pool.checks), pool.checks
        pool.shutdown()
    await assert_serving(client)
