"""Who may call what: every route (HTTP) and relayed method (gRPC) declares one API group and
one access rule, and one guard judges both transports the same way."""

from __future__ import annotations

import hmac
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import Enum

from gateway.errors import APIError, Forbidden, Unauthorized


class ApiGroup(str, Enum):
    """The groups --openai-restricted-api names (the reference frontend's four, plus admin)."""

    INFERENCE = "inference"
    MODEL_REPOSITORY = "model-repository"
    METRICS = "metrics"
    HEALTH = "health"
    ADMIN = "admin"  # Triton's admin surface: repository, shared memory, logging, trace, statistics


class Access(Enum):
    OPEN = "open"  # no key: probes and scrapers (an --openai-restricted-api header can still guard it)
    API_KEY = "api key"  # one of --api-key, when any is set
    ADMIN_KEY = "admin key"  # one of --admin-api-key, always; inference keys never open it


@dataclass(frozen=True)
class Policy:
    group: ApiGroup | None  # None: no such route (the answer will be 404 or 405)
    access: Access
    enabled: bool = True  # False: refused with 403 (an opt-in flag is off)
    disabled_hint: str = ""  # what turns it on, for the 403's message
    # The body goes to Triton as it came, Content-Encoding and all (Triton's HTTP endpoint
    # decompresses gzip and deflate within its own --http-max-input-size); other routes take
    # uncompressed bodies only.
    forwards_body: bool = False


KSERVE_ADMIN_HINT = " Triton's admin API opens only with --enable-kserve-admin and --admin-api-key."


def kserve_admin_policy(enabled: bool) -> Policy:
    """Triton's admin surface, over /v2 and the gRPC relay alike: the admin key, once opened."""
    return Policy(ApiGroup.ADMIN, Access.ADMIN_KEY, enabled, KSERVE_ADMIN_HINT, forwards_body=True)


# Paths and methods that are not declared anywhere: a key is still needed before the 404,
# so that an unauthenticated client cannot map what is there.
UNROUTED = Policy(group=None, access=Access.API_KEY)

HeaderLookup = Callable[[str], "str | None"]


class AccessGuard:
    """Judges a call by its policy and its headers (HTTP headers or gRPC metadata)."""

    def __init__(
        self,
        api_keys: Sequence[str],
        admin_keys: Sequence[str],
        restrictions: Sequence[tuple[Sequence[str], str, str]],
    ) -> None:
        self._api_keys = [key.encode() for key in api_keys]
        self._admin_keys = [key.encode() for key in admin_keys]
        self._restrictions = [(frozenset(groups), header, value.encode()) for groups, header, value in restrictions]

    @property
    def restricted_headers(self) -> frozenset[str]:
        """Header names that carry a restriction's secret (never forwarded upstream)."""
        return frozenset(header.lower() for _, header, _ in self._restrictions)

    def refusal(self, policy: Policy, header: HeaderLookup) -> APIError | None:
        """Why the call may not go on, or None when it may."""
        if not policy.enabled:
            return Forbidden(
                f"This endpoint is disabled on this gateway.{policy.disabled_hint}", code="endpoint_disabled"
            )
        if policy.access is Access.ADMIN_KEY:
            if not self._admin_keys:
                return Forbidden("This endpoint needs an admin key, and none is configured.", code="endpoint_disabled")
            if not _bearer_matches(header("authorization"), self._admin_keys):
                return Unauthorized("This endpoint needs the admin key: 'Authorization: Bearer <admin key>'.")
        elif (
            policy.access is Access.API_KEY
            and self._api_keys
            and not _bearer_matches(header("authorization"), self._api_keys)
        ):
            return Unauthorized("Missing or invalid API key; send 'Authorization: Bearer <key>'.")
        if policy.group is not None:
            for groups, name, value in self._restrictions:
                if policy.group.value in groups and not hmac.compare_digest((header(name) or "").encode(), value):
                    return Unauthorized(
                        f"This API ({policy.group.value}) requires the {name} header.", code="restricted_api"
                    )
        return None


def _bearer_matches(offered: str | None, keys: Sequence[bytes]) -> bool:
    scheme, _, token = (offered or "").partition(" ")
    candidate = token.strip().encode()
    # Compare with every key so the time taken does not tell which one came close.
    matched = [hmac.compare_digest(candidate, key) for key in keys]
    return scheme.lower() == "bearer" and any(matched)
