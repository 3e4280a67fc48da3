"""The embedded SQLite response store: records only for their owner, expiry, the size bound
(oldest first), and a clear start-up error where the file cannot be made."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from gateway.errors import StartupError
from gateway.response_store import StoredResponse, open_store
from gateway.response_store.base import owner_of
from gateway.response_store.sqlite import SqliteStore


def record(response_id: str, owner: str = "a", size: int = 10) -> StoredResponse:
    return StoredResponse(response_id, owner, time.time(), b"r" * size, b"[]")


async def test_records_are_their_owners(tmp_path: Path) -> None:
    store = SqliteStore.open(tmp_path / "r.db", ttl=60, max_bytes=1 << 20)
    try:
        await store.put(record("resp_1"))
        found = await store.get("resp_1", "a")
        assert found is not None and found.response == b"r" * 10 and found.items == b"[]"
        assert await store.get("resp_1", "b") is None
        assert not await store.delete("resp_1", "b")
        assert await store.delete("resp_1", "a")
        assert await store.get("resp_1", "a") is None
    finally:
        await store.close()


async def test_records_expire(tmp_path: Path) -> None:
    store = SqliteStore.open(tmp_path / "r.db", ttl=0.2, max_bytes=1 << 20)
    try:
        await store.put(record("resp_1"))
        assert await store.get("resp_1", "a") is not None
        await asyncio.sleep(0.3)
        assert await store.get("resp_1", "a") is None
    finally:
        await store.close()


async def test_the_oldest_go_first_past_the_size_bound(tmp_path: Path) -> None:
    store = SqliteStore.open(tmp_path / "r.db", ttl=60, max_bytes=250)
    try:
        for index in range(5):
            await store.put(StoredResponse(f"resp_{index}", "a", float(index), b"r" * 98, b"[]"))  # 100 bytes each
        kept = [index for index in range(5) if await store.get(f"resp_{index}", "a") is not None]
        assert kept == [3, 4]
    finally:
        await store.close()


async def test_processes_share_the_file(tmp_path: Path) -> None:
    one = SqliteStore.open(tmp_path / "r.db", ttl=60, max_bytes=1 << 20)
    two = SqliteStore.open(tmp_path / "r.db", ttl=60, max_bytes=1 << 20)  # as a second --workers process would
    try:
        await one.put(record("resp_1"))
        assert await two.get("resp_1", "a") is not None
    finally:
        await one.close()
        await two.close()


def test_the_store_is_named_by_url(tmp_path: Path) -> None:
    assert open_store("none", 60, 1) is None
    with pytest.raises(StartupError, match="--response-store"):
        open_store("mysql://x", 60, 1)
    with pytest.raises(StartupError, match="cannot be opened"):
        open_store("sqlite:/proc/no/such/place.db", 60, 1)
    assert owner_of(None) == owner_of("") == ""
    assert owner_of("key-one") != owner_of("key-two") and "key-one" not in owner_of("key-one")
