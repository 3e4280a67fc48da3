"""Every failure leaves the gateway as an OpenAI error envelope, never as a traceback."""

from __future__ import annotations

import logging

from aiohttp import web
from aiohttp.typedefs import Handler

from gateway.errors import APIError, MethodNotAllowed, NotFound, PayloadTooLarge

log = logging.getLogger(__name__)


def error_response(error: APIError) -> web.Response:
    return web.Response(status=error.status, body=error.to_json(), content_type="application/json")


def _from_http_exception(exc: web.HTTPException, request: web.Request) -> APIError:
    if isinstance(exc, web.HTTPRequestEntityTooLarge):
        limit = request.app._client_max_size
        return PayloadTooLarge(f"The request body is larger than the limit of {limit} bytes.")
    if isinstance(exc, web.HTTPNotFound):
        return NotFound(f"Unknown path: {request.method} {request.path}", code="unknown_url")
    if isinstance(exc, web.HTTPMethodNotAllowed):
        return MethodNotAllowed(f"Method {request.method} is not allowed on {request.path}.")
    error = APIError(exc.reason or "HTTP error")
    error.status = exc.status
    error.error_type = "invalid_request_error" if exc.status < 500 else "server_error"
    return error


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except APIError as error:
        if error.status >= 500:
            log.warning("%s %s failed: %s", request.method, request.path, error.message)
        return error_response(error)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        return error_response(_from_http_exception(exc, request))
    except ConnectionResetError:
        raise  # the client is gone; nobody to answer
    except Exception:
        log.exception("Unhandled error on %s %s", request.method, request.path)
        return error_response(APIError("The gateway failed to handle this request.", code="internal_error"))
