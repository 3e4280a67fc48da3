"""The gateway's version (the installed package's), and Triton's server metadata beside it."""

from __future__ import annotations

from importlib import metadata

import grpc

from gateway.triton.client import TritonClient
from schemas.responses import TritonVersion, VersionResponse

try:
    VERSION = metadata.version("triton-openai-gateway")
except metadata.PackageNotFoundError:  # run from a checkout that was never installed
    VERSION = "0.0.0+unknown"


async def version_info(client: TritonClient) -> VersionResponse:
    """The gateway's version, and Triton's (None when Triton does not answer within 2 s)."""
    try:
        reply = await client.server_metadata(timeout=2.0)
    except grpc.aio.AioRpcError:
        return VersionResponse(VERSION, None)
    return VersionResponse(VERSION, TritonVersion(reply.version, list(reply.extensions)))
