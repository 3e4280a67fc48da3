"""gRPC targets naming one Triton or several.

`--triton-url` takes any gRPC target: `host:port` (one Triton), `ipv4:a:8001,b:8001` or
`ipv6:[::1]:8001,...` (a fixed list), or `dns:///name:port` (every address the name resolves
to, such as a Kubernetes headless Service). gRPC itself balances requests over the endpoints
(round_robin) and skips unhealthy ones; the gateway only needs the endpoints themselves to
learn which Triton serves which model.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from dataclasses import dataclass

# Balance over every resolved address and ask each Triton's standard gRPC health service
# whether it is serving, so a draining or dead endpoint stops receiving requests.
SPREAD_SERVICE_CONFIG = '{"loadBalancingConfig": [{"round_robin": {}}], "healthCheckConfig": {"serviceName": ""}}'


class TargetError(ValueError):
    """A --triton-url that is not a usable gRPC target."""


@dataclass(frozen=True)
class Target:
    """A parsed gRPC target."""

    text: str  # as given; what the main channels connect to
    endpoints: tuple[str, ...]  # fixed endpoints (host:port); empty for dns: targets
    dns_name: str | None = None  # host of a dns: target
    dns_port: int = 0

    @property
    def spread(self) -> bool:
        """True when requests may go to more than one Triton."""
        return self.dns_name is not None or len(self.endpoints) > 1

    async def resolve(self) -> tuple[str, ...]:
        """The endpoints now: the fixed list, or the addresses the DNS name has."""
        if self.dns_name is None:
            return self.endpoints
        loop = asyncio.get_running_loop()
        infos = await loop.getaddrinfo(self.dns_name, self.dns_port, type=socket.SOCK_STREAM)
        addresses = sorted({str(info[4][0]) for info in infos})
        return tuple(join_endpoint(address, self.dns_port) for address in addresses)


def parse_target(text: str) -> Target:
    """Parse `host:port`, `ipv4:...`, `ipv6:...` or `dns:[//authority/]host:port`."""
    text = text.strip()
    scheme, sep, rest = text.partition(":")
    if sep and scheme in ("ipv4", "ipv6"):
        endpoints = tuple(_split_endpoint(part, text) for part in rest.split(",") if part)
        if not endpoints:
            raise TargetError(f"--triton-url {text!r} lists no endpoints")
        for host, _ in endpoints:
            _check_address(host, 4 if scheme == "ipv4" else 6, text)
        return Target(text, tuple(join_endpoint(host, port) for host, port in endpoints))
    if sep and scheme == "dns":
        name = rest[2:].partition("/")[2] if rest.startswith("//") else rest
        host, port = _split_endpoint(name, text)
        return Target(text, (), dns_name=host, dns_port=port)
    host, port = _split_endpoint(text, text)
    return Target(text, (join_endpoint(host, port),))


def subset_target(endpoints: tuple[str, ...]) -> str | None:
    """A target for exactly these endpoints, or None when gRPC has no scheme for them
    (host names, or IPv4 mixed with IPv6)."""
    versions = set()
    for endpoint in endpoints:
        host, _ = _split_endpoint(endpoint, endpoint)
        try:
            versions.add(ipaddress.ip_address(host).version)
        except ValueError:
            return None
    if len(versions) != 1:
        return None
    return f"ipv{versions.pop()}:" + ",".join(endpoints)


def join_endpoint(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _split_endpoint(endpoint: str, target: str) -> tuple[str, int]:
    if endpoint.startswith("["):
        host, _, port_text = endpoint[1:].partition("]:")
    else:
        host, _, port_text = endpoint.rpartition(":")
    if not host or not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise TargetError(f"--triton-url {target!r}: {endpoint!r} is not HOST:PORT")
    return host, int(port_text)


def _check_address(host: str, version: int, target: str) -> None:
    try:
        ok = ipaddress.ip_address(host).version == version
    except ValueError:
        ok = False
    if not ok:
        raise TargetError(f"--triton-url {target!r}: {host!r} is not an IPv{version} address")
