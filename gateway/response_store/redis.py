"""The shared response store for several gateway replicas: one Redis hash per response, with
the TTL as its expiry (bound Redis's memory with its own maxmemory and a volatile-* policy)."""

from __future__ import annotations

from typing import Any

from gateway.errors import StartupError
from gateway.response_store.base import STORE_TIMEOUT, StoredResponse, bounded

_PREFIX = "triton-openai-gateway:response:"
# Delete a record only if it is the caller's, in one step.
_DELETE_OWN = "if redis.call('HGET', KEYS[1], 'owner') == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0"


class RedisStore:
    def __init__(self, client: Any, errors: tuple[type[Exception], ...], ttl: float) -> None:
        self._client = client
        self._errors = errors
        self._ttl = max(1, int(ttl))

    @classmethod
    def open(cls, url: str, ttl: float) -> RedisStore:
        try:
            import redis.asyncio
            import redis.exceptions
        except ImportError:
            raise StartupError(
                "--response-store redis://… needs the redis package: pip install 'triton-openai-gateway[redis]'"
            ) from None
        client = redis.asyncio.from_url(
            url, socket_timeout=STORE_TIMEOUT, socket_connect_timeout=STORE_TIMEOUT, decode_responses=False
        )
        return cls(client, (redis.exceptions.RedisError,), ttl)

    async def put(self, record: StoredResponse) -> None:
        key = _PREFIX + record.id
        fields: dict[str, str | bytes] = {
            "owner": record.owner,
            "created": repr(record.created_at),
            "response": record.response,
            "items": record.items,
        }

        async def put() -> None:
            async with self._client.pipeline(transaction=True) as pipe:
                pipe.hset(key, mapping=fields)
                pipe.expire(key, self._ttl)
                await pipe.execute()

        await bounded(put(), self._errors)

    async def get(self, response_id: str, owner: str) -> StoredResponse | None:
        fields = await bounded(self._client.hgetall(_PREFIX + response_id), self._errors)
        if not fields or fields.get(b"owner", b"").decode() != owner:
            return None
        created = float(fields[b"created"])
        return StoredResponse(response_id, owner, created, fields[b"response"], fields[b"items"])

    async def delete(self, response_id: str, owner: str) -> bool:
        deleted = self._client.eval(_DELETE_OWN, 1, _PREFIX + response_id, owner)
        return bool(await bounded(deleted, self._errors))

    async def close(self) -> None:
        await self._client.aclose()
