"""Every HTTP route with its API group and access rule, declared once, where it is registered.

The middleware reads a request's policy from the route it matched; nothing else decides by
path. KServe's admin surface is declared too (so it is refused by name, not by omission) and
only opens with --enable-kserve-admin and an admin key.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import msgspec
from aiohttp import web
from aiohttp.typedefs import Handler

from gateway.access import Access, ApiGroup, Policy, kserve_admin_policy
from gateway.http import chat, completions, docs, embeddings, health, kserve, models, responses, tokenize
from gateway.http import metrics as metrics_endpoint
from gateway.http.middleware import POLICIES, continue_if_taken
from gateway.openapi import openapi_document
from gateway.settings import Settings
from schemas.requests import (
    ChatCompletionRequest,
    CompletionRequest,
    DetokenizeRequest,
    EmbeddingRequest,
    TokenizeRequest,
)
from schemas.responses import (
    ChatCompletion,
    ChatCompletionChunk,
    Completion,
    CompletionChunk,
    DetokenizeResponse,
    EmbeddingList,
    ModelCard,
    ModelList,
    ModelStatus,
    TokenizeResponse,
    VersionResponse,
)
from schemas.responses_api import DeletedResponse, InputItemList, Response, ResponseEvent, ResponseRequest

ROUTES = web.AppKey("routes", list["Route"])
OPENAPI = web.AppKey("openapi", bytes)
_MODEL_CONTROL_HINT = " Start it with --enable-model-control and --admin-api-key."


@dataclass(frozen=True)
class Route:
    """One route: how it is served, who may call it, and what /openapi.json says of it."""

    method: str
    path: str
    handler: Handler
    policy: Policy
    summary: str = ""
    request: type | None = None  # the JSON body's Struct
    response: type | None = None  # the JSON answer's Struct
    events: Any = None  # the Struct (or union of Structs) of each server-sent event, when it can stream

    @property
    def access(self) -> Access:
        return self.policy.access


def openai_routes(settings: Settings) -> list[Route]:
    inference = Policy(ApiGroup.INFERENCE, Access.API_KEY)
    repository = Policy(ApiGroup.MODEL_REPOSITORY, Access.API_KEY)
    control = Policy(ApiGroup.MODEL_REPOSITORY, Access.ADMIN_KEY, settings.enable_model_control, _MODEL_CONTROL_HINT)
    return [
        Route(
            "POST",
            "/v1/chat/completions",
            chat.create_chat_completion,
            inference,
            "Create a chat completion",
            ChatCompletionRequest,
            ChatCompletion,
            ChatCompletionChunk,
        ),
        Route(
            "POST",
            "/v1/completions",
            completions.create_completion,
            inference,
            "Create a completion",
            CompletionRequest,
            Completion,
            CompletionChunk,
        ),
        Route(
            "POST",
            "/v1/responses",
            responses.create_response,
            inference,
            "Create a response",
            ResponseRequest,
            Response,
            ResponseEvent,
        ),
        Route(
            "GET",
            "/v1/responses/{response_id}",
            responses.retrieve_response,
            inference,
            "Retrieve a stored response (only with the API key that created it)",
            response=Response,
        ),
        Route(
            "DELETE",
            "/v1/responses/{response_id}",
            responses.delete_response,
            inference,
            "Delete a stored response",
            response=DeletedResponse,
        ),
        Route(
            "GET",
            "/v1/responses/{response_id}/input_items",
            responses.list_input_items,
            inference,
            "The input items a stored response answered (its whole conversation)",
            response=InputItemList,
        ),
        Route(
            "POST", "/v1/embeddings", embeddings.create_embeddings, inference, "Embed", EmbeddingRequest, EmbeddingList
        ),
        Route("POST", "/tokenize", tokenize.create_tokens, inference, "Tokenize", TokenizeRequest, TokenizeResponse),
        Route(
            "POST", "/detokenize", tokenize.create_text, inference, "Detokenize", DetokenizeRequest, DetokenizeResponse
        ),
        Route("GET", "/v1/models", models.list_models, repository, "List models", response=ModelList),
        Route("GET", "/v1/models/{model}", models.retrieve_model, repository, "Retrieve a model", response=ModelCard),
        Route(
            "POST",
            "/v1/models/{model}/{action:load|unload}",
            models.control_model,
            control,
            "Load or unload a model on Triton",
            response=ModelStatus,
        ),
        Route("GET", "/health/live", health.live, Policy(ApiGroup.HEALTH, Access.OPEN), "Liveness"),
        Route(
            "GET", "/health/ready", health.ready, Policy(ApiGroup.HEALTH, Access.OPEN), "Readiness (Triton reachable)"
        ),
        Route("GET", "/metrics", metrics_endpoint.metrics, Policy(ApiGroup.METRICS, Access.OPEN), "Prometheus metrics"),
        Route(
            "GET",
            "/version",
            health.version,
            Policy(ApiGroup.HEALTH, Access.API_KEY),
            "The gateway's and Triton's versions",
            response=VersionResponse,
        ),
        Route("GET", "/openapi.json", openapi_json, Policy(ApiGroup.HEALTH, Access.API_KEY), "This document"),
        # Static, and open so that a browser can load it: the document it shows needs the key.
        Route("GET", "/docs", docs.page, Policy(ApiGroup.HEALTH, Access.OPEN), "This document in Swagger UI"),
        Route("GET", "/docs/{name}", docs.asset, Policy(ApiGroup.HEALTH, Access.OPEN), "Swagger UI's files"),
    ]


async def openapi_json(request: web.Request) -> web.Response:
    return web.Response(body=request.app[OPENAPI], content_type="application/json")


async def document_routes(app: web.Application) -> None:
    """At start-up, once every route is registered: the OpenAPI document of them all."""
    routes: list[Route] = app[ROUTES]
    app[OPENAPI] = msgspec.json.encode(openapi_document(routes))


def _model_paths(tail: str) -> list[str]:
    """A per-model KServe path, with and without a version."""
    return [f"/v2/models/{{model}}{tail}", f"/v2/models/{{model}}/versions/{{version}}{tail}"]


def kserve_routes(settings: Settings) -> list[Route]:
    """Triton's HTTP API: inference, model metadata/config/ready, server health/metadata are
    forwarded; the admin surface (repository load takes uploaded files, i.e. code; shared
    memory exposes other requests' tensors) is refused unless explicitly opened."""
    forward = kserve.forward  # Triton's own JSON in and out (see Triton's KServe docs)
    health_group = Policy(ApiGroup.HEALTH, Access.API_KEY, forwards_body=True)
    repository = Policy(ApiGroup.MODEL_REPOSITORY, Access.API_KEY, forwards_body=True)
    inference = Policy(ApiGroup.INFERENCE, Access.API_KEY, forwards_body=True)
    admin = kserve_admin_policy(settings.enable_kserve_admin)
    routes: list[Route] = []
    # Admin paths first: /v2/models/stats would otherwise match /v2/models/{model}.
    for memory in ("systemsharedmemory", "cudasharedmemory"):
        routes += [Route("GET", f"/v2/{memory}/status", forward, admin)]
        routes += [Route("GET", f"/v2/{memory}/region/{{region}}/status", forward, admin)]
        routes += [
            Route("POST", f"/v2/{memory}/region/{{region}}/{action}", forward, admin)
            for action in ("register", "unregister")
        ]
        routes += [Route("POST", f"/v2/{memory}/unregister", forward, admin)]
    routes += [
        Route("POST", "/v2/repository/index", forward, admin),
        Route("POST", "/v2/repository/models/{model}/load", forward, admin),
        Route("POST", "/v2/repository/models/{model}/unload", forward, admin),
        Route("GET", "/v2/models/stats", forward, admin),
        *(Route(method, "/v2/logging", forward, admin) for method in ("GET", "POST")),
        *(Route(method, "/v2/trace/setting", forward, admin) for method in ("GET", "POST")),
    ]
    routes += [Route("GET", path, forward, admin) for path in _model_paths("/stats")]
    routes += [Route(m, path, forward, admin) for path in _model_paths("/trace/setting") for m in ("GET", "POST")]
    routes += [
        Route("GET", "/v2", forward, health_group),
        Route("GET", "/v2/health/live", forward, health_group),
        Route("GET", "/v2/health/ready", forward, health_group),
    ]
    for tail in ("", "/ready", "/config"):
        routes += [Route("GET", path, forward, repository) for path in _model_paths(tail)]
    for tail in ("/infer", "/generate", "/generate_stream"):
        routes += [Route("POST", path, forward, inference) for path in _model_paths(tail)]
    return routes


def register(app: web.Application, routes: list[Route]) -> None:
    """Add `routes` to the router, remembering each one's policy for the middleware (and the
    routes, for /openapi.json)."""
    policies = app.setdefault(POLICIES, {})
    app.setdefault(ROUTES, []).extend(routes)
    for route in routes:
        registered = app.router.add_route(route.method, route.path, route.handler, expect_handler=continue_if_taken)
        policies[registered] = route.policy
        if route.method == "GET":  # aiohttp answers HEAD on GET routes only if asked to
            head = app.router.add_route("HEAD", route.path, route.handler, expect_handler=continue_if_taken)
            policies[head] = route.policy
