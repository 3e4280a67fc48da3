"""--routing prefix in front of two real tritonservers whose vLLM stand-ins simulate a prefix
cache: every turn of a conversation goes to one Triton, so later turns find the conversation
in its cache (more blocks found than round_robin finds, counted from the Tritons' logs); a
conversation key (`user`) routes on its own; with one Triton killed, its conversations go to
the other and every request is answered."""

from __future__ import annotations

import signal
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient

from gateway.app import create_app
from gateway.localtriton import LocalTriton
from gateway.settings import Settings
from tests.benchmarks.routing import MODEL, cache_hits, multi_turn_load, skewed_load, two_cached_tritons
from tests.conftest import TOKENIZER_DIR

CONVERSATIONS, TURNS = 6, 4


@pytest.fixture(scope="module")
def tritons(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LocalTriton, LocalTriton]]:
    with two_cached_tritons(tmp_path_factory.mktemp("cached"), miss_ms_per_block=1.0) as pair:
        yield pair


def gateway_settings(tritons: tuple[LocalTriton, LocalTriton], routing: str, header: str = "") -> Settings:
    target = "ipv4:" + ",".join(triton.grpc_url for triton in tritons)
    return Settings(
        triton_url=target,
        tokenizer=(str(TOKENIZER_DIR),),
        model_refresh_interval=0.5,
        routing=routing,
        routing_header=header,
    )


async def run(aiohttp_client, tritons, routing: str, label: str) -> tuple[float, dict[str, str]]:  # type: ignore[no-untyped-def]
    client: TestClient = await aiohttp_client(create_app(gateway_settings(tritons, routing)))
    # One conversation at a time: the load bound never diverts a turn (it does under load, as it should).
    await multi_turn_load(str(client.make_url("")).rstrip("/"), label, CONVERSATIONS, TURNS, concurrency=1)
    found, asked, where = cache_hits(tritons, f"{label}-")
    assert len(where) == CONVERSATIONS * TURNS
    return found / asked, where


async def test_a_conversation_stays_with_its_cache(aiohttp_client, tritons) -> None:  # type: ignore[no-untyped-def]
    prefix_rate, where = await run(aiohttp_client, tritons, "prefix", "affine")
    round_robin_rate, _ = await run(aiohttp_client, tritons, "round_robin", "spread")
    served_by: dict[str, set[str]] = defaultdict(set)
    for request_id, triton in where.items():
        served_by[request_id.rsplit("-t", 1)[0]].add(triton)
    assert all(len(servers) == 1 for servers in served_by.values()), served_by
    assert len({server for servers in served_by.values() for server in servers}) == 2  # both are used
    assert prefix_rate > round_robin_rate, (prefix_rate, round_robin_rate)


async def test_a_conversation_key_routes_on_its_own(aiohttp_client, tritons) -> None:  # type: ignore[no-untyped-def]
    client: TestClient = await aiohttp_client(create_app(gateway_settings(tritons, "prefix")))
    url = str(client.make_url("")).rstrip("/")
    for index in range(4):  # different prompts, one user: one Triton
        body = {"model": MODEL, "messages": [{"role": "user", "content": f"q{index}"}], "max_tokens": 4, "user": "ada"}
        response = await client.post("/v1/chat/completions", json=body, headers={"X-Request-Id": f"keyed-{index}"})
        assert response.status == 200, await response.text()
    _, _, where = cache_hits(tritons, "keyed-")
    assert len(set(where.values())) == 1 and len(where) == 4
    await skewed_load(url, "hot", 40, concurrency=8, keys=3)  # one hot key, many at a time
    _, _, hot = cache_hits(tritons, "hot-")
    assert len(set(hot.values())) == 2  # the load bound spread the hot key over both


async def test_a_session_header_routes_before_the_user_field(aiohttp_client, tritons) -> None:  # type: ignore[no-untyped-def]
    client: TestClient = await aiohttp_client(create_app(gateway_settings(tritons, "prefix", "X-Session-ID")))
    for session in range(6):
        for turn in range(3):  # a prompt and a user of its own each time: only the header is shared
            body = {
                "model": MODEL,
                "messages": [{"role": "user", "content": f"s{session} t{turn}"}],
                "max_tokens": 4,
                "user": f"user-{session}-{turn}",
            }
            headers = {"X-Request-Id": f"session{session}-t{turn}", "X-Session-ID": f"session-{session}"}
            response = await client.post("/v1/chat/completions", json=body, headers=headers)
            assert response.status == 200, await response.text()
    _, _, where = cache_hits(tritons, "session")
    assert len(where) == 18
    served_by: dict[str, set[str]] = defaultdict(set)
    for request_id, triton in where.items():
        served_by[request_id.rsplit("-t", 1)[0]].add(triton)
    assert all(len(servers) == 1 for servers in served_by.values()), served_by


async def test_a_dead_triton_leaves_the_ring(aiohttp_client, tritons, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    client: TestClient = await aiohttp_client(create_app(gateway_settings(tritons, "prefix")))
    first, _ = tritons
    assert first.process is not None
    first.process.send_signal(signal.SIGKILL)
    first.process.wait(30)
    for index in range(8):  # some of these keys were the dead Triton's
        body = {"model": MODEL, "messages": [{"role": "user", "content": f"after {index}"}], "max_tokens": 4}
        response = await client.post("/v1/chat/completions", json=body)
        assert response.status == 200, await response.text()
