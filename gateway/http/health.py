"""GET /health/live, GET /health/ready and GET /version"""

from __future__ import annotations

from aiohttp import web

from gateway.errors import BackendUnavailable
from gateway.http.body import json_response
from gateway.http.state import state_of
from gateway.version import version_info


async def live(request: web.Request) -> web.Response:
    return web.json_response({"status": "live"})


async def ready(request: web.Request) -> web.Response:
    state = state_of(request)
    if not await state.client.is_ready(timeout=2.0):
        raise BackendUnavailable(f"Triton at {state.settings.triton_url} is not reachable or not ready.")
    return web.json_response({"status": "ready"})


async def version(request: web.Request) -> web.Response:
    return json_response(await version_info(state_of(request).client))
