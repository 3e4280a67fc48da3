"""GET /metrics: the gateway's Prometheus metrics, and Triton's when --triton-metrics-url is set."""

from __future__ import annotations

import aiohttp
from aiohttp import web

from gateway.http.state import TRITON_HTTP, state_of

_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


async def metrics(request: web.Request) -> web.Response:
    state = state_of(request)
    body = state.metrics.render()
    url = state.settings.triton_metrics_url
    if url:
        try:
            async with request.app[TRITON_HTTP].get(url, timeout=aiohttp.ClientTimeout(total=2)) as response:
                if response.status == 200:
                    body += b"\n" + await response.read()
        except (aiohttp.ClientError, TimeoutError):
            body += b"\n# Triton's metrics could not be read from " + url.encode() + b"\n"
    return web.Response(body=body, headers={"Content-Type": _CONTENT_TYPE})
