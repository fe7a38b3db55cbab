"""Which hosts a user-given URL may make the service contact. Pure: no I/O.

A git spec is a URL anyone with the build scope chooses, and the service (then the
builder) connects to it: without a policy that is a request forgery into the service's
own network, the cloud metadata address included. The caller resolves the host name
(every address, IPv4 and IPv6) and asks `refusal()` about the name and all of them.
"""

from __future__ import annotations

import fnmatch
import ipaddress
from dataclasses import dataclass

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network

# Never a repository: cloud metadata services (AWS, GCP, Azure on 169.254.169.254; AWS's
# IPv6 one; Alibaba's), link-local, "this network", multicast, broadcast.
ALWAYS_DENIED = tuple(
    ipaddress.ip_network(n)
    for n in (
        "169.254.0.0/16",
        "fe80::/10",
        "fd00:ec2::254/128",
        "100.100.100.200/32",
        "0.0.0.0/8",
        "::/128",
        "224.0.0.0/4",
        "ff00::/8",
        "255.255.255.255/32",
    )
)
LOOPBACK = tuple(ipaddress.ip_network(n) for n in ("127.0.0.0/8", "::1/128"))
PRIVATE = tuple(
    ipaddress.ip_network(n)
    for n in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10", "fc00::/7")
)


@dataclass(frozen=True)
class HostPolicy:
    """`allowed`/`denied`: host name patterns ("git.example.org", "*.example.org") and
    networks ("10.1.0.0/16", "192.0.2.7"). Denied wins; a non-empty `allowed` admits only
    what it lists; a network listed in `allowed` admits even loopback or link-local
    addresses in it (an operator's explicit choice)."""

    allowed: tuple[str, ...] = ()
    denied: tuple[str, ...] = ()
    allow_loopback: bool = False
    allow_private: bool = True


def split_entries(entries) -> tuple[list[str], list[Network]]:
    """(name patterns, networks) of a list of host entries; ValueError for a bad one."""
    names, networks = [], []
    for entry in entries:
        entry = entry.strip().lower()
        if not entry:
            raise ValueError("an empty host entry")
        try:
            networks.append(ipaddress.ip_network(entry.strip("[]"), strict=False))
        except ValueError:
            if "/" in entry or ":" in entry:
                raise ValueError(
                    f"{entry!r} is neither a host name pattern nor a network"
                ) from None
            names.append(entry.rstrip("."))
    return names, networks


def parse_address(text: str) -> Address | None:
    """The address a host part of a URL names literally ("[::1]" too), else None."""
    try:
        address = ipaddress.ip_address(text.strip("[]").split("%", 1)[0])
    except ValueError:
        return None
    return unmapped(address)


def unmapped(address: Address) -> Address:
    """::ffff:a.b.c.d is a.b.c.d: a mapped address reaches the IPv4 host."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def _in(address: Address, networks) -> bool:
    return any(address.version == n.version and address in n for n in networks)


def _name_matches(host: str, patterns) -> bool:
    host = host.lower().rstrip(".")
    return any(fnmatch.fnmatchcase(host, p) for p in patterns)


def address_refusal(address: Address, policy: HostPolicy, name_allowed: bool) -> str | None:
    """Why `address` may not be contacted (a short reason), or None."""
    address = unmapped(address)
    allowed_names, allowed_nets = split_entries(policy.allowed)
    _, denied_nets = split_entries(policy.denied)
    if _in(address, denied_nets):
        return "a denied network"
    if _in(address, allowed_nets):
        return None
    if policy.allowed and not name_allowed:
        return "not an allowed host"
    if _in(address, ALWAYS_DENIED):
        return "a link-local, metadata or reserved address"
    if _in(address, LOOPBACK) and not policy.allow_loopback:
        return "a loopback address"
    if _in(address, PRIVATE) and not policy.allow_private:
        return "a private network"
    return None


def refusal(host: str, addresses, policy: HostPolicy) -> str | None:
    """Why `host` (a name or literal address) with its resolved `addresses` may not be
    contacted, or None when every one of them may. No addresses is a refusal: a name
    that resolves to nothing cannot be checked."""
    allowed_names, _ = split_entries(policy.allowed)
    denied_names, _ = split_entries(policy.denied)
    if _name_matches(host, denied_names):
        return "a denied host"
    addresses = list(addresses)
    if not addresses:
        return "no address"
    name_allowed = _name_matches(host, allowed_names)
    for address in addresses:
        reason = address_refusal(address, policy, name_allowed)
        if reason:
            return reason
    return None
