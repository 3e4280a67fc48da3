"""Every HTTP route with its API group and access rule, declared once, where it is registered.

The middleware reads a request's policy from the route it matched; nothing else decides by
path. KServe's admin surface is declared too (so it is refused by name, not by omission) and
only opens with --enable-kserve-admin and an admin key.
"""

from __future__ import annotations

from dataclasses import dataclass

from aiohttp import web
from aiohttp.typedefs import Handler

from gateway.access import Access, ApiGroup, Policy, kserve_admin_policy
from gateway.http import chat, completions, embeddings, health, kserve, models, tokenize
from gateway.http import metrics as metrics_endpoint
from gateway.http.middleware import POLICIES
from gateway.settings import Settings

_MODEL_CONTROL_HINT = " Start it with --enable-model-control and --admin-api-key."


@dataclass(frozen=True)
class Route:
    method: str
    path: str
    handler: Handler
    policy: Policy


def openai_routes(settings: Settings) -> list[Route]:
    inference = Policy(ApiGroup.INFERENCE, Access.API_KEY)
    repository = Policy(ApiGroup.MODEL_REPOSITORY, Access.API_KEY)
    control = Policy(ApiGroup.MODEL_REPOSITORY, Access.ADMIN_KEY, settings.enable_model_control, _MODEL_CONTROL_HINT)
    return [
        Route("POST", "/v1/chat/completions", chat.create_chat_completion, inference),
        Route("POST", "/v1/completions", completions.create_completion, inference),
        Route("POST", "/v1/embeddings", embeddings.create_embeddings, inference),
        Route("POST", "/tokenize", tokenize.create_tokens, inference),
        Route("POST", "/detokenize", tokenize.create_text, inference),
        Route("GET", "/v1/models", models.list_models, repository),
        Route("GET", "/v1/models/{model}", models.retrieve_model, repository),
        Route("POST", "/v1/models/{model}/{action:load|unload}", models.control_model, control),
        Route("GET", "/health/live", health.live, Policy(ApiGroup.HEALTH, Access.OPEN)),
        Route("GET", "/health/ready", health.ready, Policy(ApiGroup.HEALTH, Access.OPEN)),
        Route("GET", "/metrics", metrics_endpoint.metrics, Policy(ApiGroup.METRICS, Access.OPEN)),
        Route("GET", "/version", tokenize.version, Policy(ApiGroup.HEALTH, Access.API_KEY)),
    ]


def _model_paths(tail: str) -> list[str]:
    """A per-model KServe path, with and without a version."""
    return [f"/v2/models/{{model}}{tail}", f"/v2/models/{{model}}/versions/{{version}}{tail}"]


def kserve_routes(settings: Settings) -> list[Route]:
    """Triton's HTTP API: inference, model metadata/config/ready, server health/metadata are
    forwarded; the admin surface (repository load takes uploaded files, i.e. code; shared
    memory exposes other requests' tensors) is refused unless explicitly opened."""
    forward = kserve.forward
    health_group = Policy(ApiGroup.HEALTH, Access.API_KEY)
    repository = Policy(ApiGroup.MODEL_REPOSITORY, Access.API_KEY)
    inference = Policy(ApiGroup.INFERENCE, Access.API_KEY)
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
    """Add `routes` to the router, remembering each one's policy for the middleware."""
    policies = app.setdefault(POLICIES, {})
    for route in routes:
        registered = app.router.add_route(route.method, route.path, route.handler)
        policies[registered] = route.policy
        if route.method == "GET":  # aiohttp answers HEAD on GET routes only if asked to
            policies[app.router.add_route("HEAD", route.path, route.handler)] = route.policy
