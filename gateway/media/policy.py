"""Which hosts and addresses remote image fetches may reach (--allow-remote-images).

Fetching a URL a client names makes the gateway a client of that URL, so by default only public
unicast addresses are reachable: loopback, private, shared (carrier-grade NAT), link-local (cloud
metadata services), multicast, reserved, documentation and unspecified addresses are refused, in
IPv4 and IPv6. IPv6 forms that carry an IPv4 address (IPv4-mapped ::ffff:a.b.c.d, the NAT64
well-known prefix 64:ff9b::/96 and 6to4 2002::/16) are judged as the IPv4 address they carry, so
::ffff:127.0.0.1 is allowed exactly when 127.0.0.1 is. IPv4-compatible (::a.b.c.d) and Teredo
(2001::/32) addresses are always refused. The operator may allow networks that would otherwise be
refused (--allowed-media-networks) and restrict fetches to named hosts (--allowed-media-domains).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

# IANA special-purpose ranges that are not globally reachable, spelled out rather than left to
# ipaddress's is_global alone, whose tables differ between Python versions (3.11 calls 224.0.0.1
# and fec0::1 global).
_REFUSED_IPV4 = tuple(
    ipaddress.IPv4Network(network)
    for network in (
        "0.0.0.0/8",  # "this network", including the unspecified 0.0.0.0
        "10.0.0.0/8",  # private
        "100.64.0.0/10",  # shared address space (carrier-grade NAT)
        "127.0.0.0/8",  # loopback
        "169.254.0.0/16",  # link-local, where cloud metadata services live (169.254.169.254)
        "172.16.0.0/12",  # private
        "192.0.0.0/24",  # IETF protocol assignments
        "192.0.2.0/24",  # documentation
        "192.88.99.0/24",  # 6to4 relay anycast (deprecated)
        "192.168.0.0/16",  # private
        "198.18.0.0/15",  # benchmarking
        "198.51.100.0/24",  # documentation
        "203.0.113.0/24",  # documentation
        "224.0.0.0/4",  # multicast
        "240.0.0.0/4",  # reserved, including the limited broadcast 255.255.255.255
    )
)
# The only IPv6 range handed out for public unicast; everything outside it (::/8 with ::1, ::
# and IPv4-compatible addresses, fc00::/7, fe80::/10, fec0::/10, ff00::/8, ...) is refused.
_GLOBAL_UNICAST_IPV6 = ipaddress.IPv6Network("2000::/3")
_REFUSED_IPV6 = tuple(
    ipaddress.IPv6Network(network)
    for network in (
        "2001::/23",  # IETF protocol assignments: Teredo 2001::/32, benchmarking, ORCHID
        "2001:db8::/32",  # documentation
        "3fff::/20",  # documentation
    )
)
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")


def embedded_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address stands for (mapped, NAT64 or 6to4), if any."""
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address in _NAT64:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return address.sixtofour


def is_public_address(address: IPAddress) -> bool:
    """Whether `address` is a public unicast address (IPv6 forms carrying an IPv4 address are
    judged by that IPv4 address)."""
    if isinstance(address, ipaddress.IPv6Address):
        carried = embedded_ipv4(address)
        return _is_public_ipv4(carried) if carried is not None else _is_public_ipv6(address)
    return _is_public_ipv4(address)


def _is_public_ipv4(address: ipaddress.IPv4Address) -> bool:
    return address.is_global and not address.is_multicast and not any(address in net for net in _REFUSED_IPV4)


def _is_public_ipv6(address: ipaddress.IPv6Address) -> bool:
    if address not in _GLOBAL_UNICAST_IPV6 or any(address in net for net in _REFUSED_IPV6):
        return False
    return address.is_global and not address.is_multicast


def parse_address(text: str) -> IPAddress | None:
    """`text` as an IP address (an IPv6 zone such as %eth0 is kept), or None."""
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


def looks_like_ip_literal(host: str) -> bool:
    """Whether a URL host is meant as an address rather than a name: aiohttp connects to such hosts
    without asking the resolver, so they must be judged here (the same test aiohttp uses)."""
    return ":" in host or host.replace(".", "").isdigit()


def parse_network(text: str) -> IPNetwork:
    """A CIDR such as 10.0.5.0/24 (a bare address is a /32 or /128); ValueError if it is not one."""
    return ipaddress.ip_network(text.strip(), strict=True)


def normalise_domain(name: str) -> str:
    """A host name as compared: lower case, without the trailing dot of a fully qualified name."""
    return name.strip().lower().rstrip(".")


def domain_matches(host: str, pattern: str) -> bool:
    """Exact, case-insensitive match; a pattern `*.example.com` matches every subdomain of
    example.com (not example.com itself)."""
    host, pattern = normalise_domain(host), normalise_domain(pattern)
    if pattern.startswith("*."):
        return host.endswith(pattern[1:])
    return host == pattern


@dataclass(frozen=True)
class MediaPolicy:
    """The operator's limits on which remote image URLs are fetched."""

    allowed_domains: tuple[str, ...] = ()  # empty: any host name
    allowed_networks: tuple[IPNetwork, ...] = ()  # permitted although not public

    @classmethod
    def build(cls, domains: Iterable[str] = (), networks: Iterable[str] = ()) -> MediaPolicy:
        """From the flags' strings; ValueError on a network that is not a CIDR."""
        return cls(
            allowed_domains=tuple(normalise_domain(name) for name in domains if name.strip()),
            allowed_networks=tuple(parse_network(network) for network in networks if network.strip()),
        )

    def host_allowed(self, host: str) -> bool:
        """Whether the --allowed-media-domains list (if any) names `host`."""
        return not self.allowed_domains or any(domain_matches(host, pattern) for pattern in self.allowed_domains)

    def address_allowed(self, address: str | IPAddress) -> bool:
        """Whether a connection to `address` may be made: it is public, or the operator allowed it."""
        parsed = parse_address(address) if isinstance(address, str) else address
        if parsed is None:
            return False
        return self._operator_allowed(parsed) or is_public_address(parsed)

    def refusal(self, host: str) -> str | None:
        """Why a URL's host is refused before any connection (for the log), or None. Host names
        that pass are judged again by the addresses they resolve to."""
        if not self.host_allowed(host):
            return f"host {host!r} is not in --allowed-media-domains"
        if looks_like_ip_literal(host) and not self.address_allowed(host):
            return f"address {host} is not allowed"
        return None

    def _operator_allowed(self, address: IPAddress) -> bool:
        forms: list[IPAddress] = [address]
        if isinstance(address, ipaddress.IPv6Address):
            carried = embedded_ipv4(address)
            if carried is not None:
                forms.append(carried)
        return any(form in network for form in forms for network in self.allowed_networks)
