"""The response store's interface, its record, and the one factory that picks a backend from
--response-store."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Awaitable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, TypeVar

from gateway.errors import BackendUnavailable, StartupError

T = TypeVar("T")
STORE_TIMEOUT = 5.0  # seconds for one store operation: a stuck store fails a request, it does not hang it
MAX_RECORD_BYTES = 16 * 1024 * 1024  # one stored response with its input items


class StoreUnavailable(BackendUnavailable):
    default_code = "response_store_unavailable"

    def __init__(self) -> None:
        super().__init__("The response store cannot be reached; try again shortly.")


@dataclass(frozen=True)
class StoredResponse:
    """One response as stored: the response object and the input items it answered (both
    encoded JSON), and whose it is (a digest of the API key that created it)."""

    id: str
    owner: str
    created_at: float
    response: bytes
    items: bytes

    @property
    def size(self) -> int:
        return len(self.response) + len(self.items)


class ResponseStore(Protocol):
    async def put(self, record: StoredResponse) -> None: ...

    async def get(self, response_id: str, owner: str) -> StoredResponse | None:
        """The record, when it exists, has not expired, and is `owner`'s."""
        ...

    async def delete(self, response_id: str, owner: str) -> bool:
        """Whether `owner`'s record was there (and is now gone)."""
        ...

    async def close(self) -> None: ...


def owner_of(api_key: str | None) -> str:
    """Who a record belongs to: a digest of the key (the key itself is never stored); "" when the
    gateway takes no keys."""
    return hashlib.sha256(api_key.encode()).hexdigest() if api_key else ""


async def bounded(operation: Awaitable[T], errors: tuple[type[Exception], ...] = ()) -> T:
    """One store operation within STORE_TIMEOUT; a store that hangs, cannot be reached or fails
    with one of its own `errors` is a 503."""
    caught: tuple[type[Exception], ...] = (TimeoutError, OSError, *errors)  # OSError: unreachable
    try:
        async with asyncio.timeout(STORE_TIMEOUT):
            return await operation
    except caught as exc:
        raise StoreUnavailable() from exc


def open_store(url: str, ttl: float, max_bytes: int) -> ResponseStore | None:
    """The store --response-store names: `none`, `sqlite:PATH`, or `redis://…` / `rediss://…`."""
    if url == "none":
        return None
    if url.startswith("sqlite:"):
        from gateway.response_store.sqlite import SqliteStore

        path = Path(url.removeprefix("sqlite:")).expanduser()
        return SqliteStore.open(path, ttl, max_bytes)
    if url.startswith(("redis://", "rediss://", "unix://")):
        from gateway.response_store.redis import RedisStore

        return RedisStore.open(url, ttl)
    raise StartupError(f"--response-store {url!r} is not one of none, sqlite:PATH, redis://HOST:PORT/DB")
