"""The gateway's one limit on inference requests in flight, shared by HTTP and the gRPC relay."""

from __future__ import annotations


class Capacity:
    """At most `limit` inference requests at once, over HTTP and the gRPC relay together."""

    def __init__(self, limit: int | None) -> None:
        self.limit = limit
        self.in_flight = 0

    def try_acquire(self) -> bool:
        if self.limit is not None and self.in_flight >= self.limit:
            return False
        self.in_flight += 1
        return True

    def release(self) -> None:
        self.in_flight -= 1
