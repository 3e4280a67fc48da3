"""The embedded response store: one SQLite file (WAL, so that --workers processes share it),
used from one thread of its own so that nothing waits on the disk on the event loop. Records
expire after the TTL; past the size bound the oldest go first."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

from gateway.errors import StartupError
from gateway.response_store.base import StoredResponse, bounded

T = TypeVar("T")
_SCHEMA = """
CREATE TABLE IF NOT EXISTS responses (
    id TEXT PRIMARY KEY,
    owner TEXT NOT NULL,
    created REAL NOT NULL,
    expires REAL NOT NULL,
    size INTEGER NOT NULL,
    response BLOB NOT NULL,
    items BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS responses_by_created ON responses (created);
"""
_EVICTED_AT_ONCE = 64


class SqliteStore:
    def __init__(self, connection: sqlite3.Connection, thread: ThreadPoolExecutor, ttl: float, max_bytes: int) -> None:
        self._db = connection
        self._thread = thread
        self._ttl = ttl
        self._max_bytes = max_bytes

    @classmethod
    def open(cls, path: Path, ttl: float, max_bytes: int) -> SqliteStore:
        thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="response-store")
        try:
            connection = thread.submit(_connect, path).result()
        except (OSError, sqlite3.Error) as exc:
            thread.shutdown()
            raise StartupError(
                f"The response store {path} cannot be opened ({exc}); give --response-store sqlite:PATH "
                "a writable place, or --response-store none"
            ) from None
        return cls(connection, thread, ttl, max_bytes)

    async def _run(self, work: Callable[[], T]) -> T:
        def transaction() -> T:
            with self._db:
                return work()

        return await bounded(asyncio.get_running_loop().run_in_executor(self._thread, transaction), (sqlite3.Error,))

    async def put(self, record: StoredResponse) -> None:
        def put() -> None:
            now = time.time()
            self._db.execute(
                "INSERT OR REPLACE INTO responses VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    record.id,
                    record.owner,
                    record.created_at,
                    now + self._ttl,
                    record.size,
                    record.response,
                    record.items,
                ),
            )
            self._db.execute("DELETE FROM responses WHERE expires < ?", (now,))
            (total,) = self._db.execute("SELECT COALESCE(SUM(size), 0) FROM responses").fetchone()
            while total > self._max_bytes:
                oldest = self._db.execute(
                    "SELECT id, size FROM responses ORDER BY created LIMIT ?", (_EVICTED_AT_ONCE,)
                ).fetchall()
                for response_id, size in oldest:
                    if total <= self._max_bytes:
                        break
                    self._db.execute("DELETE FROM responses WHERE id = ?", (response_id,))
                    total -= size

        await self._run(put)

    async def get(self, response_id: str, owner: str) -> StoredResponse | None:
        def get() -> StoredResponse | None:
            row = self._db.execute(
                "SELECT created, response, items FROM responses WHERE id = ? AND owner = ? AND expires >= ?",
                (response_id, owner, time.time()),
            ).fetchone()
            return None if row is None else StoredResponse(response_id, owner, row[0], bytes(row[1]), bytes(row[2]))

        return await self._run(get)

    async def delete(self, response_id: str, owner: str) -> bool:
        def delete() -> bool:
            cursor = self._db.execute("DELETE FROM responses WHERE id = ? AND owner = ?", (response_id, owner))
            return cursor.rowcount > 0

        return await self._run(delete)

    async def close(self) -> None:
        await asyncio.get_running_loop().run_in_executor(self._thread, self._db.close)
        self._thread.shutdown()


def _connect(path: Path) -> sqlite3.Connection:
    path.parent.mkdir(parents=True, exist_ok=True)
    connection = sqlite3.connect(path, timeout=5, check_same_thread=False, isolation_level=None)
    connection.execute("PRAGMA journal_mode=WAL")
    connection.execute("PRAGMA busy_timeout=5000")
    connection.executescript(_SCHEMA)
    return connection
