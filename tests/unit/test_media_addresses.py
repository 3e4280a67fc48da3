"""The address and host policy of remote image fetches (gateway.media.policy), the resolver
that applies it, and the flags that configure it. Nothing here opens a connection or resolves a name."""

from __future__ import annotations

import socket

import pytest
from aiohttp.abc import AbstractResolver, ResolveResult

from gateway.cli import parse_settings
from gateway.media.images import CheckedResolver
from gateway.media.policy import MediaPolicy, domain_matches, embedded_ipv4

DEFAULT = MediaPolicy()

REFUSED = [
    "127.0.0.1",
    "127.255.255.254",
    "10.1.2.3",
    "172.16.0.1",
    "172.31.255.255",
    "192.168.1.1",
    "169.254.169.254",  # cloud metadata
    "100.64.0.1",  # shared address space (CGNAT)
    "100.127.255.254",
    "224.0.0.1",  # multicast; Python 3.11's is_global calls it global
    "239.255.255.250",
    "0.0.0.0",
    "0.1.2.3",
    "255.255.255.255",
    "240.0.0.1",
    "192.0.0.8",
    "192.0.2.1",
    "198.18.0.1",
    "::1",
    "::",
    "fe80::1",
    "fe80::1%1",  # with a zone, as getaddrinfo reports link-local addresses
    "fc00::1",
    "fd12:3456::1",
    "fec0::1",  # site-local (deprecated); Python 3.11's is_global calls it global
    "ff02::1",
    "ff0e::1",  # global-scope multicast
    "::ffff:127.0.0.1",
    "::ffff:10.0.0.1",
    "::ffff:169.254.169.254",
    "::ffff:0.0.0.0",
    "::127.0.0.1",  # IPv4-compatible (deprecated)
    "::8.8.8.8",
    "64:ff9b::7f00:1",  # NAT64 of 127.0.0.1
    "64:ff9b::a00:1",  # NAT64 of 10.0.0.1
    "64:ff9b:1::8.8.8.8",  # local-use NAT64 prefix
    "2002:7f00:1::",  # 6to4 of 127.0.0.1
    "2002:a9fe:a9fe::1",  # 6to4 of 169.254.169.254
    "2001:0:4136:e378:8000:63bf:3fff:fdd2",  # Teredo
    "2001:db8::1",  # documentation
    "100::1",  # discard-only
]

PUBLIC = [
    "8.8.8.8",
    "1.1.1.1",
    "93.184.215.14",
    "100.63.255.255",  # just below the shared address space
    "100.128.0.0",  # just above it
    "172.32.0.1",  # just above 172.16.0.0/12
    "2606:4700:4700::1111",
    "2001:4860:4860::8888",
    "::ffff:8.8.8.8",  # judged as 8.8.8.8
    "64:ff9b::808:808",  # NAT64 of 8.8.8.8
    "2002:808:808::1",  # 6to4 of 8.8.8.8
]


@pytest.mark.parametrize("address", REFUSED)
def test_non_public_addresses_are_refused(address: str) -> None:
    assert not DEFAULT.address_allowed(address)


@pytest.mark.parametrize("address", PUBLIC)
def test_public_addresses_are_allowed(address: str) -> None:
    assert DEFAULT.address_allowed(address)


@pytest.mark.parametrize("text", ["", "localhost", "127.1", "2130706433", "0x7f.0.0.1", "1.2.3.4.5", "[::1]"])
def test_what_is_not_an_address_is_refused(text: str) -> None:
    assert not DEFAULT.address_allowed(text)


def test_embedded_ipv4_forms() -> None:
    import ipaddress

    def carried(text: str) -> str | None:
        found = embedded_ipv4(ipaddress.IPv6Address(text))
        return None if found is None else str(found)

    assert carried("::ffff:127.0.0.1") == "127.0.0.1"
    assert carried("64:ff9b::7f00:1") == "127.0.0.1"
    assert carried("2002:7f00:1::") == "127.0.0.1"
    assert carried("2606:4700:4700::1111") is None
    assert carried("::127.0.0.1") is None  # IPv4-compatible: refused outright, not judged by its IPv4


def test_allowed_networks_override_the_refusal() -> None:
    policy = MediaPolicy.build(networks=["10.0.5.0/24", "127.0.0.1/32", "fd00:1::/64"])
    assert policy.address_allowed("10.0.5.7")
    assert policy.address_allowed("127.0.0.1")
    assert policy.address_allowed("fd00:1::5")
    assert not policy.address_allowed("10.0.6.1")
    assert not policy.address_allowed("127.0.0.2")
    assert not policy.address_allowed("fd00:2::5")
    assert not policy.address_allowed("169.254.169.254")
    assert policy.address_allowed("8.8.8.8")  # public addresses stay allowed


def test_mapped_addresses_are_allowed_exactly_when_their_ipv4_is() -> None:
    policy = MediaPolicy.build(networks=["127.0.0.1/32"])
    assert policy.address_allowed("::ffff:127.0.0.1")
    assert policy.address_allowed("64:ff9b::7f00:1")
    assert not policy.address_allowed("::ffff:127.0.0.2")
    assert not DEFAULT.address_allowed("::ffff:127.0.0.1")


def test_a_bad_network_is_a_value_error() -> None:
    for text in ("10.0.5.1/24", "10.0.5.0/33", "images.example", "10.0.5.0/24/8"):
        with pytest.raises(ValueError):
            MediaPolicy.build(networks=[text])


@pytest.mark.parametrize(
    ("host", "pattern", "matches"),
    [
        ("images.example", "images.example", True),
        ("IMAGES.Example.", "images.example", True),
        ("images.example", "Images.Example.", True),
        ("cdn.images.example", "images.example", False),
        ("evilimages.example", "images.example", False),
        ("images.example.evil", "images.example", False),
        ("cdn.images.example", "*.images.example", True),
        ("a.b.images.example", "*.images.example", True),
        ("images.example", "*.images.example", False),
        ("evilimages.example", "*.images.example", False),
    ],
)
def test_domain_matching(host: str, pattern: str, matches: bool) -> None:
    assert domain_matches(host, pattern) is matches


def test_the_domain_list_restricts_hosts_before_any_address_is_known() -> None:
    policy = MediaPolicy.build(domains=["images.example", "*.cdn.example"])
    assert policy.host_allowed("images.example")
    assert policy.host_allowed("eu.cdn.example")
    assert not policy.host_allowed("localhost")
    assert policy.refusal("localhost") is not None
    assert policy.refusal("images.example") is None  # its addresses are judged when it is resolved
    assert DEFAULT.host_allowed("anything.example")


def test_refusal_judges_address_literals() -> None:
    assert DEFAULT.refusal("127.0.0.1") is not None
    assert DEFAULT.refusal("::ffff:7f00:1") is not None
    assert DEFAULT.refusal("127.1") is not None  # a legacy form aiohttp would take as a literal
    assert DEFAULT.refusal("8.8.8.8") is None
    assert DEFAULT.refusal("example.com") is None  # a name: judged by the resolver
    assert MediaPolicy.build(networks=["127.0.0.1/32"]).refusal("127.0.0.1") is None


class FakeResolver(AbstractResolver):
    """Answers every name with fixed addresses, without any lookup."""

    def __init__(self, *addresses: str) -> None:
        self.addresses = addresses

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        return [
            ResolveResult(hostname=host, host=address, port=port, family=family, proto=0, flags=0)
            for address in self.addresses
        ]

    async def close(self) -> None:
        pass


async def test_the_resolver_refuses_a_name_with_any_refused_address() -> None:
    resolver = CheckedResolver(DEFAULT, FakeResolver("8.8.8.8", "10.0.0.1"))
    with pytest.raises(OSError, match="10.0.0.1"):
        await resolver.resolve("rebinding.example", 80)


async def test_the_resolver_passes_allowed_addresses_through() -> None:
    resolver = CheckedResolver(MediaPolicy.build(networks=["10.0.0.0/8"]), FakeResolver("8.8.8.8", "10.0.0.1"))
    results = await resolver.resolve("internal.example", 80)
    assert [result["host"] for result in results] == ["8.8.8.8", "10.0.0.1"]


def test_the_flags() -> None:
    settings = parse_settings(
        ["--allowed-media-domains", "images.example, *.cdn.example", "--allowed-media-networks", "10.0.5.0/24,::1"],
        environ={},
    )
    assert settings.allowed_media_domains == ("images.example", "*.cdn.example")
    assert settings.allowed_media_networks == ("10.0.5.0/24", "::1/128")
    from_env = parse_settings([], environ={"GATEWAY_ALLOWED_MEDIA_NETWORKS": "127.0.0.1/32"})
    assert from_env.allowed_media_networks == ("127.0.0.1/32",)
    assert parse_settings([], environ={}).allowed_media_networks == ()


@pytest.mark.parametrize(
    "argv",
    [
        ["--allowed-media-networks", "10.0.5.1/24"],
        ["--allowed-media-networks", "not-a-network"],
        ["--allowed-media-domains", "http://images.example"],
        ["--allowed-media-domains", "images.example:8080"],
        ["--allowed-media-domains", "*"],
    ],
)
def test_bad_flags_stop_the_gateway(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        parse_settings(argv, environ={})
    assert argv[0] in capsys.readouterr().err
