"""KServe v2 HTTP pass-through (--enable-kserve-frontends): the /v2 routes that
gateway.http.routes declares are forwarded to Triton's HTTP endpoint, the path exactly as
received, responses streamed back as they come (generate_stream stays a stream)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from urllib.parse import unquote_to_bytes

import aiohttp
from aiohttp import web
from multidict import CIMultiDict
from yarl import URL

from gateway.errors import BackendUnavailable, GatewayTimeout, InvalidRequest
from gateway.http.middleware import DEADLINE, cancelled_by_shutdown
from gateway.http.state import TRITON_HTTP, state_of

log = logging.getLogger(__name__)

# Connection-level headers (RFC 9110 §7.6.1) go no further, in either direction.
_HOP_BY_HOP = frozenset(
    {"connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "proxy-connection", "te", "trailer",
     "transfer-encoding", "upgrade"}
)  # fmt: skip
# Not for Triton: the gateway's own credentials, the client's cookies, and forwarding headers
# a client could forge (Triton must not trust a client-made X-Forwarded-For); lengths and the
# host are set anew for the upstream request.
_NOT_UPSTREAM = _HOP_BY_HOP | {"host", "content-length", "authorization", "cookie", "forwarded", "x-real-ip", "via"}
_NOT_DOWNSTREAM = _HOP_BY_HOP | {"content-length", "set-cookie", "set-cookie2"}
# Bytes that must not appear in a path segment, even percent-encoded: they would change
# which path (or query, or fragment) Triton sees.
_SEGMENT_BREAKERS = frozenset(b"/\\?#\x00")

KSERVE_DROPPED_HEADERS = web.AppKey[frozenset[str]]("kserve_dropped_headers")  # the restrictions' header names


def checked_path(raw_path: str) -> str:
    """`raw_path` (percent-encoding kept) when none of its segments is a dot segment or hides
    a separator, encoded or not; otherwise a 400."""
    for segment in raw_path.split("/"):
        decoded = unquote_to_bytes(segment)
        if decoded in (b".", b"..") or _SEGMENT_BREAKERS.intersection(decoded) or "\\" in segment:
            raise InvalidRequest("The path holds a dot segment or an encoded separator.", code="invalid_path")
    return raw_path


def upstream_url(base: URL, raw_target: str) -> URL:
    """Triton's URL for the request target `raw_target` (path and query, as received): under
    the path prefix of --triton-http-url, never outside it."""
    path, sep, query = raw_target.partition("?")
    prefix = base.raw_path.rstrip("/")
    return URL(f"{base.origin()}{prefix}{checked_path(path)}{sep}{query}", encoded=True)


def filtered(headers: Iterable[tuple[str, str]], dropped: frozenset[str] | set[str]) -> CIMultiDict[str]:
    """`headers` without the `dropped` names, without Connection-named ones and X-Forwarded-*."""
    items = list(headers)
    named = {
        token.strip().lower() for name, value in items if name.lower() == "connection" for token in value.split(",")
    }
    kept: CIMultiDict[str] = CIMultiDict()
    for name, value in items:
        lower = name.lower()
        if lower in dropped or lower in named or lower.startswith("x-forwarded-"):
            continue
        kept.add(name, value)
    return kept


async def forward(request: web.Request) -> web.StreamResponse:
    state = state_of(request)
    url = upstream_url(URL(state.settings.triton_http_url), request.raw_path)
    restricted = request.app[KSERVE_DROPPED_HEADERS]
    dropped = _NOT_UPSTREAM | restricted
    body = await request.read()  # already read, within its deadline and size limit
    deadline = request.get(DEADLINE)
    remaining = None if deadline is None else max(0.0, deadline - asyncio.get_running_loop().time())
    try:
        upstream = await request.app[TRITON_HTTP].request(
            request.method,
            url,
            headers=filtered(request.headers.items(), dropped),
            data=body if body else None,
            allow_redirects=False,
            timeout=aiohttp.ClientTimeout(total=remaining, connect=5.0),
        )
    except TimeoutError:
        raise GatewayTimeout("The request took longer than the gateway's request timeout.") from None
    except aiohttp.ClientError as exc:
        log.warning("Triton's HTTP endpoint failed: %s", exc)
        raise BackendUnavailable("Triton's HTTP endpoint is unavailable; try again shortly.") from None
    async with upstream:
        response = web.StreamResponse(
            status=upstream.status, headers=filtered(upstream.headers.items(), _NOT_DOWNSTREAM)
        )
        await response.prepare(request)
        try:
            async for piece in upstream.content.iter_any():
                await response.write(piece)  # unbuffered: each piece as soon as Triton sends it
        except (TimeoutError, aiohttp.ClientError) as exc:
            # The status is sent already: all that is left is to end the connection early.
            log.warning("Triton's HTTP response ended early: %s", exc or type(exc).__name__)
            response.force_close()
            return response
        except asyncio.CancelledError:
            if not cancelled_by_shutdown(request):
                raise
            response.force_close()  # the drain's end: no error shape fits a KServe body half sent
            return response
        await response.write_eof()
    return response
