"""The serving state stored once on the aiohttp application, and the shared HTTP session."""

from __future__ import annotations

import aiohttp
from aiohttp import web

from gateway.openai.context import GatewayState

STATE = web.AppKey("state", GatewayState)
# The one HTTP client session for Triton's HTTP side (KServe forwarding, Triton's metrics).
TRITON_HTTP = web.AppKey("triton_http", aiohttp.ClientSession)


def state_of(request: web.Request) -> GatewayState:
    return request.app[STATE]


def conversation_key(request: web.Request) -> str | None:
    """The conversation the client names in the --routing-header header, if it does (with
    --routing prefix its requests then go to one Triton)."""
    header = request.app[STATE].settings.routing_header
    return request.headers.get(header) or None if header else None
