"""Prefix-affine routing over several Tritons (--routing prefix): a request goes to the Triton
that consistent hashing of its key (the start of its prompt, or its conversation key) picks,
so the turns of one conversation meet the prefix cache that the first turn filled. Load is
bounded (consistent hashing with bounded loads, Mirrokni, Thorup and Zadimoghaddam 2018): a
Triton already holding more than LOAD_FACTOR × the mean in-flight count is passed over for
the next one on the ring. A Triton that leaves the set takes only its own keys with it."""

from __future__ import annotations

import bisect
import hashlib
import math
from collections import Counter
from collections.abc import Iterable

VIRTUAL_NODES = 128  # points per Triton on the ring: keys spread evenly over a handful of Tritons
LOAD_FACTOR = 1.25
PREFIX_CHARS = 2048  # of a routing key: enough to tell conversations apart, bounded to hash
RAW_PROMPT_START = 512  # of a completions prompt, which later turns of a raw conversation repeat


def _point(text: str) -> int:
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "big")


class _Ring:
    __slots__ = ("owners", "points")

    def __init__(self, endpoints: Iterable[str]) -> None:
        nodes = sorted(
            (_point(f"{endpoint}#{index}"), endpoint) for endpoint in endpoints for index in range(VIRTUAL_NODES)
        )
        self.points = [point for point, _ in nodes]
        self.owners = [owner for _, owner in nodes]


class PrefixRouter:
    """Picks a Triton for a key among the ones that may serve it, and counts what each holds."""

    def __init__(self) -> None:
        self._rings: dict[frozenset[str], _Ring] = {}
        self.in_flight: Counter[str] = Counter()

    def pick(self, key: str, endpoints: frozenset[str]) -> str:
        """The Triton for `key`: its owner on the ring, or the next one within the load bound."""
        if len(endpoints) == 1:
            return next(iter(endpoints))
        ring = self._rings.get(endpoints)
        if ring is None:
            if len(self._rings) > 64:  # sets come and go as Tritons do: keep the recent ones
                self._rings.clear()
            ring = self._rings[endpoints] = _Ring(endpoints)
        load = sum(self.in_flight[endpoint] for endpoint in endpoints) + 1
        bound = math.ceil(LOAD_FACTOR * load / len(endpoints))
        start = bisect.bisect(ring.points, _point(key))
        size = len(ring.owners)
        for step in range(size):
            owner = ring.owners[(start + step) % size]
            if self.in_flight[owner] + 1 <= bound:
                return owner
        return ring.owners[start % size]  # not reached: the mean is within the bound

    def started(self, endpoint: str) -> None:
        self.in_flight[endpoint] += 1

    def ended(self, endpoint: str) -> None:
        self.in_flight[endpoint] -= 1
        if self.in_flight[endpoint] <= 0:
            del self.in_flight[endpoint]


def routing_key(start: str, conversation: str | None) -> str:
    """What a request is routed by: its conversation key when the client names one (the
    --routing-header header, or the `user` field), else `start`, the part of its prompt that
    every later turn repeats."""
    return f"conversation:{conversation[:PREFIX_CHARS]}" if conversation else start[:PREFIX_CHARS]
