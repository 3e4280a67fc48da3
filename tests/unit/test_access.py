"""Route policies, the access guard, and the /v2 pass-through's path and header rules."""

from __future__ import annotations

import pytest
from tritonclient.grpc import service_pb2 as pb
from yarl import URL

from gateway.access import UNROUTED, Access, AccessGuard, ApiGroup, Policy, kserve_admin_policy
from gateway.app import create_app
from gateway.errors import APIError
from gateway.http.kserve import checked_path, filtered, upstream_url
from gateway.http.middleware import POLICIES
from gateway.settings import Settings
from gateway.triton.proxy import RELAYED_METHODS


def test_every_route_has_exactly_one_policy() -> None:
    app = create_app(Settings(enable_kserve_frontends=True))
    routes = list(app.router.routes())
    assert routes and all(route in app[POLICIES] for route in routes)
    by_path = {(route.method, route.resource.canonical): app[POLICIES][route] for route in routes if route.resource}
    assert by_path[("GET", "/v2")].group is ApiGroup.HEALTH  # bare /v2 too
    assert by_path[("POST", "/v2/repository/index")] == kserve_admin_policy(enabled=False)
    assert by_path[("POST", "/v1/models/{model}/{action}")].access is Access.ADMIN_KEY
    assert by_path[("GET", "/health/live")].access is Access.OPEN
    # Bodies go to Triton as they came on /v2 only; the gateway's own routes take them uncompressed.
    forwarding = {path.startswith("/v2") for (_, path), policy in by_path.items() if policy.forwards_body}
    assert forwarding == {True}
    assert all(policy.forwards_body for (_, path), policy in by_path.items() if path.startswith("/v2"))


def test_every_grpc_method_is_declared() -> None:
    methods = {method.name for method in pb.DESCRIPTOR.services_by_name["GRPCInferenceService"].methods}
    assert methods == set(RELAYED_METHODS)
    for name in ("RepositoryModelLoad", "SystemSharedMemoryRegister", "CudaSharedMemoryStatus", "LogSettings"):
        assert RELAYED_METHODS[name] is ApiGroup.ADMIN


def refusal(guard: AccessGuard, policy: Policy, **headers: str) -> APIError | None:
    lowered = {name.lower(): value for name, value in headers.items()}
    return guard.refusal(policy, lambda name: lowered.get(name.lower()))


INFERENCE = Policy(ApiGroup.INFERENCE, Access.API_KEY)
ADMIN = Policy(ApiGroup.ADMIN, Access.ADMIN_KEY)


def test_inference_keys_and_admin_keys_open_different_doors() -> None:
    guard = AccessGuard(["user-key"], ["root-key"], [])
    assert refusal(guard, INFERENCE, Authorization="Bearer user-key") is None
    assert refusal(guard, INFERENCE, Authorization="Bearer root-key").status == 401  # type: ignore[union-attr]
    assert refusal(guard, ADMIN, Authorization="Bearer root-key") is None
    assert refusal(guard, ADMIN, Authorization="Bearer user-key").status == 401  # type: ignore[union-attr]
    assert refusal(guard, ADMIN, Authorization="Basic root-key").status == 401  # type: ignore[union-attr]
    assert refusal(guard, UNROUTED).status == 401  # type: ignore[union-attr]
    assert refusal(guard, Policy(ApiGroup.HEALTH, Access.OPEN)) is None


def test_admin_routes_stay_shut_without_an_admin_key_or_their_flag() -> None:
    open_guard = AccessGuard([], [], [])
    assert refusal(open_guard, INFERENCE) is None  # no keys: inference is open
    assert refusal(open_guard, ADMIN, Authorization="Bearer anything").status == 403  # type: ignore[union-attr]
    guard = AccessGuard([], ["root-key"], [])
    disabled = Policy(ApiGroup.ADMIN, Access.ADMIN_KEY, enabled=False, disabled_hint=" Use --flag.")
    error = refusal(guard, disabled, Authorization="Bearer root-key")
    assert error is not None and error.status == 403 and error.code == "endpoint_disabled" and "--flag" in error.message


def test_restricted_groups_need_their_header() -> None:
    guard = AccessGuard([], [], [(("inference", "admin"), "X-Team", "blue")])
    assert refusal(guard, INFERENCE).code == "restricted_api"  # type: ignore[union-attr]
    assert refusal(guard, INFERENCE, **{"x-team": "red"}) is not None
    assert refusal(guard, INFERENCE, **{"X-Team": "blue"}) is None
    assert refusal(guard, Policy(ApiGroup.HEALTH, Access.API_KEY)) is None
    assert guard.restricted_headers == {"x-team"}


@pytest.mark.parametrize(
    "path",
    ["/v2/models/my%20model/infer", "/v2/models/caf%C3%A9/versions/3/ready", "/v2", "/v2/models/a.b..c/config"],
)
def test_ordinary_paths_pass_unchanged(path: str) -> None:
    assert checked_path(path) == path


@pytest.mark.parametrize(
    "path",
    [
        "/v2/models/../x",
        "/v2/./models",
        "/v2/models/%2e%2e/x",
        "/v2/models/%2E./x",
        "/v2/models/.%2e/x",
        "/v2/models/%2e/x",
        "/v2/models/a%2fb",
        "/v2/models/a%2Fb",
        "/v2/models/a%5Cb",
        "/v2/models/a\\b",
        "/v2/models/a%3Fb",
        "/v2/models/a%23b",
        "/v2/models/a%00b",
        "/v2/models/%252e%252e/x%2f",
    ],
)
def test_dot_segments_and_encoded_separators_are_refused(path: str) -> None:
    with pytest.raises(APIError) as raised:
        checked_path(path)
    assert raised.value.status == 400 and raised.value.code == "invalid_path"


def test_the_upstream_url_keeps_the_prefix_and_the_encoding() -> None:
    base = URL("http://triton:8000/inference/")
    url = upstream_url(base, "/v2/models/my%20model/infer?x=%2F")
    assert str(url) == "http://triton:8000/inference/v2/models/my%20model/infer?x=%2F"
    assert str(upstream_url(URL("http://triton:8000"), "/v2")) == "http://triton:8000/v2"


def test_filtered_headers() -> None:
    headers = [
        ("Connection", "keep-alive, X-Secret"),
        ("X-Secret", "1"),
        ("X-Forwarded-For", "10.0.0.1"),
        ("X-Forwarded-Proto", "https"),
        ("Cookie", "a=b"),
        ("Accept", "application/json"),
        ("accept", "text/plain"),
    ]
    kept = filtered(headers, frozenset({"connection", "cookie"}))
    assert list(kept.items()) == [("Accept", "application/json"), ("accept", "text/plain")]
