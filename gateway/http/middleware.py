"""Middleware, outermost first: request ids and metrics, CORS, OpenAI error envelopes, access
control, and capacity limits. Every failure leaves as an OpenAI error envelope."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Protocol

from aiohttp import HttpVersion11, hdrs, web
from aiohttp.typedefs import Handler, Middleware
from aiohttp.web_urldispatcher import AbstractRoute

from gateway import tracing
from gateway.access import UNROUTED, AccessGuard, ApiGroup, Policy
from gateway.capacity import Capacity
from gateway.errors import (
    APIError,
    GatewayTimeout,
    MethodNotAllowed,
    NotFound,
    PayloadTooLarge,
    RequestTimeout,
    ShuttingDown,
    TooManyRequests,
    UnsupportedMediaType,
)
from gateway.logs import ACCESS_FIELDS, access_line, request_id_var
from gateway.metrics import Metrics
from gateway.settings import Settings
from schemas.responses import Usage

log = logging.getLogger(__name__)
access_log = logging.getLogger("gateway.access")

REQUEST_ID = web.RequestKey("request_id", str)
DEADLINE = web.RequestKey("deadline", float)  # loop time by which the request must be done
POLICIES = web.AppKey[dict[AbstractRoute, Policy]]("route_policies")  # filled by gateway.http.routes
POLICY = web.RequestKey("policy", Policy)
IN_FLIGHT = web.AppKey[set[asyncio.Task[object]]]("in_flight")  # the handler tasks of every request being served


class ShutdownState:
    """Set once the SIGTERM drain has run out of time and is cancelling what is left."""

    draining = False


SHUTDOWN = web.AppKey("shutdown", ShutdownState)


class RequestWatcher(Protocol):
    """Told when the application starts and ends handling a request (the connection guard of
    gateway.http.server, which keeps the header deadline)."""

    def request_started(self, request: web.BaseRequest) -> None: ...

    def request_finished(self, request: web.BaseRequest) -> None: ...


CONNECTIONS = web.AppKey("connections", RequestWatcher)


def cancelled_by_shutdown(request: web.Request) -> bool:
    """Whether the CancelledError being handled comes from the drain; if so the task may go
    on (uncancelled) just long enough to tell its client."""
    if not request.app[SHUTDOWN].draining:
        return False
    task = asyncio.current_task()
    if task is not None:
        task.uncancel()
    return True


_REQUEST_ID_FORM = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")


def error_response(error: APIError, request: web.Request | None = None) -> web.Response:
    """The OpenAI envelope; on the KServe /v2 routes, KServe's {"error": "<message>"}."""
    if request is not None and (request.path == "/v2" or request.path.startswith("/v2/")):
        body = json.dumps({"error": error.message}).encode()
        return web.Response(status=error.status, body=body, content_type="application/json")
    return web.Response(status=error.status, body=error.to_json(), content_type="application/json")


def _from_http_exception(exc: web.HTTPException, request: web.Request) -> APIError:
    if isinstance(exc, web.HTTPRequestEntityTooLarge):
        limit = request.client_max_size
        return PayloadTooLarge(f"The request body is larger than the limit of {limit} bytes.")
    if isinstance(exc, web.HTTPNotFound):
        return NotFound(f"Unknown path: {request.method} {request.path}", code="unknown_url")
    if isinstance(exc, web.HTTPMethodNotAllowed):
        return MethodNotAllowed(f"Method {request.method} is not allowed on {request.path}.")
    error = APIError(exc.reason or "HTTP error")
    error.status = exc.status
    error.error_type = "invalid_request_error" if exc.status < 500 else "server_error"
    return error


def request_context(metrics: Metrics) -> Middleware:
    """Accept (or make) an X-Request-Id, return it, tag log lines with it, count the request."""

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        offered = request.headers.get("X-Request-Id", "")
        request_id = offered if _REQUEST_ID_FORM.match(offered) else uuid.uuid4().hex
        request[REQUEST_ID] = request_id
        token = request_id_var.set(request_id)
        started = request[STARTED] = time.perf_counter()
        route = request.match_info.route.resource.canonical if request.match_info.route.resource else "unmatched"
        watcher = request.app.get(CONNECTIONS)
        if watcher is not None:
            watcher.request_started(request)
        metrics.in_flight.inc()
        tasks = request.app[IN_FLIGHT]
        task = asyncio.current_task()
        assert task is not None
        tasks.add(task)
        status = 500
        try:
            with tracing.server_span(request.method, route, request.headers) as span:
                try:
                    response = await handler(request)
                    status = response.status
                    return response
                except web.HTTPException as exc:
                    status = exc.status
                    raise
                finally:
                    if span is not None:
                        _describe_span(span, request, route, status)
        finally:
            if watcher is not None:
                watcher.request_finished(request)
            tasks.discard(task)
            metrics.in_flight.dec()
            duration = time.perf_counter() - started
            metrics.e2e.labels(route).observe(duration)
            model = request.get(MODEL_NAME, "")
            metrics.requests.labels(route, model, str(status)).inc()
            _log_access(request, status, duration, model)
            request_id_var.reset(token)

    return middleware


def _describe_span(span: tracing.Span, request: web.Request, route: str, status: int) -> None:
    """What the request's span says once the response is known (errors became statuses by now)."""
    span.set_attribute("http.request.method", request.method)
    span.set_attribute("http.route", route)
    span.set_attribute("http.response.status_code", status)
    span.set_attribute("gateway.request_id", request[REQUEST_ID])
    if request.get(MODEL_NAME):
        span.set_attribute("gen_ai.request.model", request[MODEL_NAME])
    usage = request.get(USAGE)
    if usage is not None:
        span.set_attribute("gen_ai.usage.input_tokens", usage.prompt_tokens)
        span.set_attribute("gen_ai.usage.output_tokens", usage.completion_tokens)
    if status >= 500:
        span.set_status(tracing.Status(tracing.StatusCode.ERROR))


def _log_access(request: web.Request, status: int, duration: float, model: str) -> None:
    """The request's access line (its id comes with every line of this task)."""
    if not access_log.isEnabledFor(logging.INFO):
        return
    usage = request.get(USAGE)
    fields = {
        "method": request.method,
        "path": request.path,
        "status": status,
        "duration_s": round(duration, 6),
        "model": model or None,
        "prompt_tokens": usage.prompt_tokens if usage is not None else None,
        "completion_tokens": usage.completion_tokens if usage is not None else None,
    }
    access_log.info("%s", access_line(fields), extra={ACCESS_FIELDS: fields})


MODEL_NAME = web.RequestKey("model_name", str)  # set once the model is known, for metric labels
USAGE = web.RequestKey("usage", Usage)  # set once a generation's usage is known, for the access line
STARTED = web.RequestKey("started", float)  # perf_counter() when the request arrived


def allowed_origin(settings: Settings) -> Callable[[str | None], str | None]:
    """The request's Origin when the flags allow it cross-origin access, else None."""
    origins = set(settings.cors_allowed_origins)

    def allowed(origin: str | None) -> str | None:
        if origin is None or not origins:
            return None
        return origin if origin in origins or "*" in origins else None

    return allowed


def header_matcher(patterns: tuple[str, ...]) -> Callable[[str | None], str]:
    """The Access-Control-Allow-Headers value for a preflight's requested headers: the names
    given outright, and each requested header that a NAME* pattern covers (no wildcard is
    sent: `*` would not cover Authorization)."""
    exact = [pattern for pattern in patterns if not pattern.endswith("*")]
    prefixes = tuple(pattern[:-1].lower() for pattern in patterns if pattern.endswith("*"))

    def allowed(requested: str | None) -> str:
        names = list(exact)
        known = {name.lower() for name in names}
        for name in (part.strip() for part in (requested or "").split(",")):
            if name and name.lower() not in known and name.lower().startswith(prefixes):
                names.append(name)
                known.add(name.lower())
        return ", ".join(names)

    return allowed


def cors(settings: Settings) -> Middleware:
    """Answers CORS preflight requests for the origins the flags name, and nobody else's
    (the headers of every other response are set by `response_headers`)."""
    allowed = allowed_origin(settings)
    methods = ", ".join(settings.cors_allowed_methods)
    allowed_headers = header_matcher(settings.cors_allowed_headers)

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.method == "OPTIONS" and "Access-Control-Request-Method" in request.headers:
            origin = allowed(request.headers.get("Origin"))
            if origin is None:
                return web.Response(status=403)
            return web.Response(
                status=204,
                headers={
                    "Access-Control-Allow-Origin": origin,
                    "Access-Control-Allow-Methods": methods,
                    "Access-Control-Allow-Headers": allowed_headers(
                        request.headers.get("Access-Control-Request-Headers")
                    ),
                    "Access-Control-Max-Age": "600",
                    "Vary": "Origin",
                },
            )
        return await handler(request)

    return middleware


ResponseHook = Callable[[web.Request, web.StreamResponse], Awaitable[None]]


def response_headers(settings: Settings) -> ResponseHook:
    """For `on_response_prepare`: the headers every response gets, set in this one place
    whether the middleware returns the response or a handler streams it: its X-Request-Id, and
    CORS headers for an allowed Origin."""
    allowed = allowed_origin(settings)

    async def on_prepare(request: web.Request, response: web.StreamResponse) -> None:
        request_id = request.get(REQUEST_ID)
        if request_id is not None:
            response.headers["X-Request-Id"] = request_id
        origin = allowed(request.headers.get("Origin"))
        if origin is not None and "Access-Control-Allow-Origin" not in response.headers:
            response.headers["Access-Control-Allow-Origin"] = origin
            response.headers["Access-Control-Expose-Headers"] = "X-Request-Id"
            response.headers["Vary"] = "Origin"

    return on_prepare


def errors(metrics: Metrics) -> Middleware:
    """Every failure below becomes an OpenAI error envelope; server-side ones are counted."""

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        try:
            return await handler(request)
        except APIError as error:
            if error.status >= 500:
                log.warning("%s %s failed: %s", request.method, request.path, error.message)
                metrics.triton_errors.labels(error.code or "server_error").inc()
            return error_response(error, request)
        except web.HTTPException as exc:
            if exc.status < 400:
                raise
            return error_response(_from_http_exception(exc, request), request)
        except ConnectionResetError:
            raise  # the client is gone; nobody to answer
        except asyncio.CancelledError:
            if not cancelled_by_shutdown(request):
                raise  # the client left
            return error_response(ShuttingDown(), request)
        except Exception:
            log.exception("Unhandled error on %s %s", request.method, request.path)
            failure = APIError("The gateway failed to handle this request.", code="internal_error")
            return error_response(failure, request)

    return middleware


def policy_of(request: web.Request) -> Policy:
    return request.app[POLICIES].get(request.match_info.route, UNROUTED)


def access(guard: AccessGuard) -> Middleware:
    """Each route's access rule and API group (gateway.http.routes declares them)."""

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        policy = request[POLICY] = policy_of(request)
        refusal = guard.refusal(policy, request.headers.get)
        if refusal is not None:
            raise refusal
        return await handler(request)

    return middleware


def body_refusal(request: web.BaseRequest, policy: Policy) -> APIError | None:
    """Why a request's body will not be taken, judged from its headers before any of it is
    read: a declared length past --http-max-input-size (413), or a compressed body (415) on a
    route that does not forward bodies to Triton as they came. Inflating one here would cost
    up to a thousand times its size in memory and event-loop time before any limit applied;
    the server never inflates bodies (gateway.http.server). None: read it."""
    if policy.group is None:
        return None  # no such route: a 404 or 405 follows
    limit = request.client_max_size
    if request.content_length is not None and request.content_length > limit:
        return PayloadTooLarge(f"The request body is larger than the limit of {limit} bytes.")
    coding = request.headers.get(hdrs.CONTENT_ENCODING)
    if coding is None or policy.forwards_body or _is_identity(coding):
        return None
    shown = coding if len(coding) <= 40 else coding[:40] + "…"
    return UnsupportedMediaType(
        f"The request body has Content-Encoding '{shown}'; the gateway takes uncompressed bodies only: "
        "send it without that header."
    )


def _is_identity(coding: str) -> bool:
    return all(part.strip().lower() in ("", "identity") for part in coding.split(","))


def bodies() -> Middleware:
    """A body that `body_refusal` refuses is answered before it is read, and its connection
    closed (the rest of the body is never read either)."""

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        refusal = body_refusal(request, request[POLICY])
        if refusal is None:
            return await handler(request)
        response = error_response(refusal, request)
        if isinstance(refusal, UnsupportedMediaType):
            response.headers[hdrs.ACCEPT_ENCODING] = "identity"  # RFC 7694: the codings it does take
        response.force_close()
        return response

    return middleware


async def continue_if_taken(request: web.Request) -> None:
    """The routes' Expect handler: "100 Continue" only for a body that will be read, so that a
    client about to send one too large or compressed gets its 413 or 415 at once instead
    (aiohttp's own handler always says continue). Other expectations are ignored, which HTTP
    allows, so every answer still comes through the middlewares."""
    if request.version != HttpVersion11 or request.headers.get(hdrs.EXPECT, "").lower() != "100-continue":
        return
    if body_refusal(request, policy_of(request)) is None:
        await request.writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        request.writer.output_size = 0  # the response's own bytes are counted from here


def limits(settings: Settings, metrics: Metrics, capacity: Capacity) -> Middleware:
    """For inference routes: the body read within --body-read-timeout BEFORE a slot is taken
    (a client dribbling its body holds no slot), then --max-concurrent-requests (429 past it,
    rather than an unbounded queue) and a deadline of --request-timeout."""
    timeout = settings.request_timeout
    body_timeout = settings.body_read_timeout

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request[POLICY].group is not ApiGroup.INFERENCE:
            return await handler(request)
        if request.can_read_body:
            try:
                async with asyncio.timeout(body_timeout):
                    await request.read()  # kept by aiohttp: the handler's read() returns it
            except TimeoutError:
                raise RequestTimeout(f"The request body did not arrive within {body_timeout:g} seconds.") from None
        if not capacity.try_acquire():
            metrics.rejected.inc()
            limit = capacity.limit
            error = TooManyRequests(f"The gateway is at its limit of {limit} requests in flight; retry shortly.")
            response = error_response(error, request)
            response.headers["Retry-After"] = "1"
            return response
        if timeout is not None:
            request[DEADLINE] = asyncio.get_running_loop().time() + timeout
        try:
            return await handler(request)
        finally:
            capacity.release()

    return middleware


@contextlib.asynccontextmanager
async def within_deadline(request: web.Request) -> AsyncIterator[None]:
    """Run the block before the request's deadline; past it, 504 (and whatever Triton
    request the block had open is cancelled on the way out)."""
    deadline = request.get(DEADLINE)
    if deadline is None:
        yield
        return
    try:
        async with asyncio.timeout_at(deadline):
            yield
    except TimeoutError:
        raise GatewayTimeout("The request took longer than the gateway's request timeout.") from None
