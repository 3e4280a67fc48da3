"""Parsing --triton-url gRPC targets (one Triton, a list, a DNS name)."""

from __future__ import annotations

import pytest

from gateway.triton.targets import Target, TargetError, parse_target, subset_target


def test_one_triton() -> None:
    target = parse_target("triton:8001")
    assert target == Target("triton:8001", ("triton:8001",))
    assert not target.spread


def test_address_lists() -> None:
    target = parse_target("ipv4:10.0.0.1:8001,10.0.0.2:8002")
    assert target.endpoints == ("10.0.0.1:8001", "10.0.0.2:8002") and target.spread
    assert parse_target("ipv6:[::1]:8001,[fe80::1]:8001").endpoints == ("[::1]:8001", "[fe80::1]:8001")
    assert not parse_target("ipv4:10.0.0.1:8001").spread


@pytest.mark.parametrize("text", ["dns:///triton-headless:8001", "dns://10.96.0.10/triton-headless:8001"])
def test_dns_names(text: str) -> None:
    target = parse_target(text)
    assert (target.dns_name, target.dns_port, target.endpoints) == ("triton-headless", 8001, ())
    assert target.spread and target.text == text


async def test_dns_names_resolve_to_endpoints() -> None:
    assert await parse_target("dns:///127.0.0.1:8001").resolve() == ("127.0.0.1:8001",)
    assert await parse_target("dns:///localhost:8001").resolve() in (
        ("127.0.0.1:8001",),
        ("127.0.0.1:8001", "[::1]:8001"),
        ("[::1]:8001",),
    )


@pytest.mark.parametrize(
    "text",
    [
        "triton",
        "triton:port",
        "triton:0",
        "ipv4:",
        "ipv4:triton:8001",
        "ipv4:::1:8001",
        "ipv6:10.0.0.1:8001",
        "dns:///x",
    ],
)
def test_bad_targets(text: str) -> None:
    with pytest.raises(TargetError):
        parse_target(text)


def test_subset_targets() -> None:
    assert subset_target(("10.0.0.1:8001", "10.0.0.2:8001")) == "ipv4:10.0.0.1:8001,10.0.0.2:8001"
    assert subset_target(("[::1]:8001",)) == "ipv6:[::1]:8001"
    assert subset_target(("triton-a:8001",)) is None  # gRPC lists take addresses only
    assert subset_target(("10.0.0.1:8001", "[::1]:8001")) is None
