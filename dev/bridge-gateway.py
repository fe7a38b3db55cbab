"""Print the address containers on Docker's default bridge reach this machine at.

    python3 dev/bridge-gateway.py

The demo hub (dev/run.sh) listens there for the servers it spawns; the tests' spawner hub
and the chart's end-to-end registry do too. The bridge's IPAM config names the address
only when it was configured: an engine that chose its subnet itself (a fresh Debian's
docker.io) leaves Gateway out, and then the bridge interface's own address is it.

Only the standard library. Exit 0 and the address, or 1 and why not.
"""

from __future__ import annotations

import fcntl
import json
import socket
import struct
import subprocess
import sys

SIOCGIFADDR = 0x8915


def interface_ipv4(name: str) -> str:
    """An interface's IPv4 address, without iproute2 (a fresh Debian has none)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        packed = fcntl.ioctl(s.fileno(), SIOCGIFADDR, struct.pack("256s", name[:15].encode()))
    return socket.inet_ntoa(packed[20:24])


def bridge_gateway() -> str:
    """The host's IPv4 address on the bridge; RuntimeError saying why when there is none."""
    try:
        out = subprocess.run(
            ["docker", "network", "inspect", "bridge"],
            capture_output=True,
            text=True,
            timeout=30,
        )
    except (OSError, subprocess.TimeoutExpired) as e:
        raise RuntimeError(f"docker network inspect bridge: {e}") from None
    if out.returncode:
        raise RuntimeError(f"docker network inspect bridge: {out.stderr.strip()}")
    try:
        [network] = json.loads(out.stdout)
    except ValueError:
        raise RuntimeError(f"docker network inspect bridge: {out.stdout[:200]!r}") from None
    for config in (network.get("IPAM") or {}).get("Config") or []:
        if config.get("Gateway") and ":" not in config["Gateway"]:
            return config["Gateway"]
    interface = (network.get("Options") or {}).get("com.docker.network.bridge.name", "docker0")
    try:
        return interface_ipv4(interface)
    except OSError as e:
        raise RuntimeError(f"Docker's bridge {interface} has no IPv4 address ({e})") from None


if __name__ == "__main__":
    try:
        print(bridge_gateway())
    except RuntimeError as e:
        sys.exit(f"dev/bridge-gateway.py: {e}")
