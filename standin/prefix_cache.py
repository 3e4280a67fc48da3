"""A simulated prefix cache for the vLLM stand-in (`stand_in.prefix_cache` in model.json), after
vLLM's automatic prefix caching: the prompt is cut into fixed-size blocks, each named by a hash
of everything up to its end, so a block is found only if the whole prefix before it was seen.
The blocks a request finds cost nothing before its first token; each block it does not find
costs `miss_ms_per_block` (the prefill that a cache hit saves). The newest `capacity_blocks`
blocks are kept (least recently used go first), per model instance, as in vLLM per engine."""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from typing import Any


class PrefixCache:
    def __init__(self, block_chars: int, miss_ms_per_block: float, capacity_blocks: int) -> None:
        self.block_chars = block_chars
        self.miss_seconds = miss_ms_per_block / 1000.0
        self.capacity = capacity_blocks
        self._blocks: OrderedDict[bytes, None] = OrderedDict()

    @classmethod
    def from_knobs(cls, knobs: dict[str, Any] | None) -> PrefixCache | None:
        if not knobs:
            return None
        return cls(
            int(knobs.get("block_chars", 64)),
            float(knobs.get("miss_ms_per_block", 2.0)),
            int(knobs.get("capacity_blocks", 4096)),
        )

    def visit(self, prompt: str) -> tuple[int, int]:
        """(blocks found, blocks in the prompt), the prompt's blocks then kept as the newest."""
        digest = hashlib.blake2b(digest_size=16)
        found = total = 0
        missed = False
        for start in range(0, len(prompt) - self.block_chars + 1, self.block_chars):
            digest.update(prompt[start : start + self.block_chars].encode())
            name = digest.copy().digest()
            total += 1
            if not missed and name in self._blocks:
                found += 1
                self._blocks.move_to_end(name)
            else:
                missed = True
                self._blocks[name] = None
        while len(self._blocks) > self.capacity:
            self._blocks.popitem(last=False)
        return found, total

    def prefill_seconds(self, found: int, total: int) -> float:
        return (total - found) * self.miss_seconds
