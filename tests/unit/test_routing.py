"""Prefix-affine routing's ring: keys spread evenly, a Triton that leaves takes only its own
keys with it, and no Triton holds more than the load bound even when every request has the
same key."""

from __future__ import annotations

import math
from collections import Counter

from gateway.openai.chat import conversation_start
from gateway.triton.routing import LOAD_FACTOR, PrefixRouter, routing_key
from schemas.requests import ChatMessage, TextPart

THREE = frozenset({"10.0.0.1:8001", "10.0.0.2:8001", "10.0.0.3:8001"})


def test_keys_spread_over_the_tritons() -> None:
    router = PrefixRouter()
    owners = Counter(router.pick(f"conversation {index}", THREE) for index in range(3000))
    assert set(owners) == THREE
    assert all(700 <= count <= 1300 for count in owners.values()), owners  # a third each, give or take


def test_a_triton_that_leaves_takes_only_its_keys() -> None:
    router = PrefixRouter()
    keys = [f"conversation {index}" for index in range(2000)]
    before = {key: router.pick(key, THREE) for key in keys}
    gone = "10.0.0.2:8001"
    after = {key: router.pick(key, THREE - {gone}) for key in keys}
    moved = [key for key in keys if before[key] != after[key]]
    assert moved and all(before[key] == gone for key in moved)
    assert gone not in after.values()
    back = {key: router.pick(key, THREE) for key in keys}
    assert back == before  # and its keys come back with it


def test_the_load_bound_holds_for_one_hot_key() -> None:
    router = PrefixRouter()
    placed = Counter()
    for _ in range(90):  # every request the same conversation, none finishing
        endpoint = router.pick("the same conversation", THREE)
        router.started(endpoint)
        placed[endpoint] += 1
        bound = math.ceil(LOAD_FACTOR * sum(placed.values()) / len(THREE))
        assert max(placed.values()) <= bound
    assert len(placed) == 3
    owner = router.pick("another", frozenset({"10.0.0.1:8001"}))
    assert owner == "10.0.0.1:8001"
    for endpoint, count in placed.items():
        for _ in range(count):
            router.ended(endpoint)
    assert not router.in_flight


def test_a_quiet_ring_keeps_a_key_on_its_owner() -> None:
    router = PrefixRouter()
    first = router.pick("conversation 7", THREE)
    router.started(first)
    router.ended(first)
    assert all(router.pick("conversation 7", THREE) == first for _ in range(10))


def test_the_routing_key_is_what_every_turn_repeats() -> None:
    turn_one = [ChatMessage("system", "Be brief."), ChatMessage("user", "Plan a trip")]
    turn_two = [*turn_one, ChatMessage("assistant", "Where to?"), ChatMessage("user", "Oslo")]
    assert conversation_start(turn_one) == conversation_start(turn_two)
    assert conversation_start(turn_one) != conversation_start(
        [ChatMessage("system", "Be brief."), ChatMessage("user", "x")]
    )
    parts = [ChatMessage("user", [TextPart("Plan"), TextPart("a trip")])]
    assert "Plan a trip" in conversation_start(parts)
    assert routing_key("start", "user-1") == routing_key("other start", "user-1") != routing_key("start", None)
