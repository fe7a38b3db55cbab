"""The host policy for user-given URLs (hostpolicy.py): pure, every rule."""

import ipaddress

import pytest

from r2dservice.hostpolicy import HostPolicy, parse_address, refusal, split_entries


def addrs(*texts):
    return [ipaddress.ip_address(t) for t in texts]


@pytest.mark.parametrize(
    "address",
    [
        "169.254.169.254",  # AWS, GCP, Azure metadata
        "fd00:ec2::254",  # AWS metadata over IPv6
        "100.100.100.200",  # Alibaba metadata
        "169.254.1.1",
        "fe80::1",
        "0.0.0.0",
        "::",
        "224.0.0.1",
        "::ffff:169.254.169.254",  # IPv4-mapped: the same host
    ],
)
def test_metadata_and_link_local_always_refused(address):
    policy = HostPolicy(allow_loopback=True, allow_private=True)
    assert refusal(address, addrs(address), policy)


def test_loopback_refused_unless_allowed():
    assert refusal("localhost", addrs("127.0.0.1", "::1"), HostPolicy()) == "a loopback address"
    assert refusal("x", addrs("::ffff:127.0.0.1"), HostPolicy()) == "a loopback address"
    assert refusal("localhost", addrs("127.0.0.1", "::1"), HostPolicy(allow_loopback=True)) is None


def test_private_allowed_unless_turned_off():
    assert refusal("git.corp", addrs("10.1.2.3"), HostPolicy()) is None
    assert refusal("git.corp", addrs("10.1.2.3"), HostPolicy(allow_private=False))
    assert refusal("git.corp", addrs("fd12::1"), HostPolicy(allow_private=False))


def test_every_address_counts():
    """A name with one public and one forbidden address is refused (a resolver that
    answers both, or round-robin DNS that rebinds, must not slip through)."""
    assert refusal("evil.example", addrs("192.0.2.10", "169.254.169.254"), HostPolicy())
    assert refusal("evil.example", addrs("192.0.2.10", "127.0.0.1"), HostPolicy())
    assert refusal("nothing.example", [], HostPolicy()) == "no address"


def test_denied_names_and_networks():
    policy = HostPolicy(denied=("*.internal.example", "192.0.2.0/24"))
    assert refusal("git.internal.example", addrs("198.51.100.1"), policy) == "a denied host"
    assert refusal("GIT.Internal.Example.", addrs("198.51.100.1"), policy) == "a denied host"
    assert refusal("ok.example", addrs("192.0.2.7"), policy) == "a denied network"
    assert refusal("ok.example", addrs("198.51.100.1"), policy) is None


def test_allowed_list_admits_only_what_it_names():
    policy = HostPolicy(allowed=("git.example.org", "*.forge.example", "10.9.0.0/16"))
    assert refusal("git.example.org", addrs("198.51.100.1"), policy) is None
    assert refusal("a.forge.example", addrs("198.51.100.2"), policy) is None
    assert refusal("other.example", addrs("198.51.100.3"), policy) == "not an allowed host"
    assert refusal("anything", addrs("10.9.1.1"), policy) is None
    # an allowed name still may not resolve to the metadata address
    assert refusal("git.example.org", addrs("169.254.169.254"), policy)


def test_an_allowed_network_overrides_the_built_in_rules_but_not_denied():
    assert refusal("h", addrs("127.0.0.1"), HostPolicy(allowed=("127.0.0.1",))) is None
    policy = HostPolicy(allowed=("127.0.0.0/8",), denied=("127.0.0.2",))
    assert refusal("h", addrs("127.0.0.2"), policy) == "a denied network"


def test_entries():
    assert split_entries(["Git.Example.org.", "10.0.0.1", "[::1]", "fd00::/8"]) == (
        ["git.example.org"],
        [
            ipaddress.ip_network("10.0.0.1/32"),
            ipaddress.ip_network("::1/128"),
            ipaddress.ip_network("fd00::/8"),
        ],
    )
    for bad in ("", "10.0.0.0/33", "host:22"):
        with pytest.raises(ValueError):
            split_entries([bad])


def test_parse_address():
    assert parse_address("[::1]") == ipaddress.ip_address("::1")
    assert parse_address("::ffff:10.0.0.1") == ipaddress.ip_address("10.0.0.1")
    assert parse_address("fe80::1%eth0") == ipaddress.ip_address("fe80::1")
    assert parse_address("example.org") is None
    assert parse_address("2130706433") is None  # decimal IPv4: a name to the resolver
