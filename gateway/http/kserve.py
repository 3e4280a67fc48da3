"""KServe v2 HTTP pass-through (--enable-kserve-frontends): /v2/... forwarded to Triton's HTTP
endpoint, responses streamed back as they come (generate_stream stays a stream)."""

from __future__ import annotations

from collections.abc import Mapping

import aiohttp
from aiohttp import web

from gateway.errors import BackendUnavailable
from gateway.http.state import state_of

# Connection-level headers are not forwarded (RFC 9110 §7.6.1), nor lengths aiohttp recomputes.
_HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "host",
        "content-length",
        "authorization",
    }
)

KSERVE_SESSION = web.AppKey("kserve_session", aiohttp.ClientSession)


def _forwardable(headers: Mapping[str, str]) -> dict[str, str]:
    return {name: value for name, value in headers.items() if name.lower() not in _HOP_BY_HOP}


async def forward(request: web.Request) -> web.StreamResponse:
    session = request.app[KSERVE_SESSION]
    base = state_of(request).settings.triton_http_url.rstrip("/")
    url = f"{base}{request.rel_url.path_qs}"
    try:
        upstream = await session.request(
            request.method, url, headers=_forwardable(request.headers), data=request.content.iter_any()
        )
    except aiohttp.ClientError as exc:
        raise BackendUnavailable(f"Triton's HTTP endpoint is unavailable: {exc}") from None
    async with upstream:
        response = web.StreamResponse(status=upstream.status, headers=_forwardable(upstream.headers))
        await response.prepare(request)
        async for piece in upstream.content.iter_any():
            await response.write(piece)  # unbuffered: each piece as soon as Triton sends it
        await response.write_eof()
    return response
