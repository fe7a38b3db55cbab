"""dev/bridge-gateway.py, which the demo hub, the spawner hub and the chart's end-to-end
registry all use to listen where containers reach the host. Run as the demo runs it, with
a stand-in `docker` that answers `network inspect bridge` as the real one does (its JSON
shape copied from Docker 20.10's), and the real engine's answer compared with the bridge
interface's own address."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys

from tests.support.service import REPO

SCRIPT = os.path.join(REPO, "dev", "bridge-gateway.py")
BRIDGE_NAME = '{{index .Options "com.docker.network.bridge.name"}}'


def inspect_output(config: list[dict], interface: str = "docker0") -> list[dict]:
    return [
        {
            "Name": "bridge",
            "Driver": "bridge",
            "IPAM": {"Driver": "default", "Options": None, "Config": config},
            "Options": {
                "com.docker.network.bridge.default_bridge": "true",
                "com.docker.network.bridge.name": interface,
                "com.docker.network.driver.mtu": "1500",
            },
        }
    ]


def run(tmp_path, answer: list[dict] | None, rc: int = 0) -> subprocess.CompletedProcess:
    """The script with a stand-in docker alone on PATH (None: no docker at all)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    if answer is not None:
        (tmp_path / "answer.json").write_text(json.dumps(answer))
        docker = bin_dir / "docker"
        docker.write_text(
            f"#!{sys.executable}\n"
            "import sys\n"
            "if sys.argv[1:] != ['network', 'inspect', 'bridge']:\n"
            "    sys.exit(f'unexpected: {sys.argv[1:]}')\n"
            f"print(open({str(tmp_path / 'answer.json')!r}).read())\n"
            f"sys.exit({rc})\n"
        )
        docker.chmod(0o755)
    return subprocess.run(
        [sys.executable, SCRIPT],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PATH": str(bin_dir)},
    )


def test_the_gateway_the_engine_names(tmp_path):
    out = run(tmp_path, inspect_output([{"Subnet": "172.30.0.0/16", "Gateway": "172.30.0.1"}]))
    assert (out.returncode, out.stdout) == (0, "172.30.0.1\n"), out.stderr


def test_no_gateway_named_is_the_bridge_interfaces_own_address(tmp_path):
    """As Debian 12's docker.io answers when it chose the subnet itself: no Gateway. The
    interface here is the loopback, whose address is known."""
    config = [{"Subnet": "fd00::/64", "Gateway": "fd00::1"}, {"Subnet": "172.17.0.0/16"}]
    out = run(tmp_path, inspect_output(config, interface="lo"))
    assert (out.returncode, out.stdout) == (0, "127.0.0.1\n"), out.stderr


def test_no_address_says_why(tmp_path):
    out = run(tmp_path, inspect_output([], interface="r2d-absent0"))
    assert out.returncode == 1 and out.stdout == ""
    assert "Docker's bridge r2d-absent0 has no IPv4 address" in out.stderr


def test_no_docker_says_why(tmp_path):
    out = run(tmp_path, None)
    assert out.returncode == 1 and out.stdout == ""
    assert "docker network inspect bridge: [Errno 2]" in out.stderr


def test_no_engine_says_why(tmp_path):
    out = run(tmp_path, [], rc=1)
    assert out.returncode == 1 and out.stdout == ""
    assert "docker network inspect bridge" in out.stderr


def test_the_real_engines_answer_is_its_bridge_interfaces_address(infra):
    """Whether or not the engine names a gateway, containers reach the host at the
    bridge interface's own address."""
    out = subprocess.run([sys.executable, SCRIPT], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    name = subprocess.run(
        ["docker", "network", "inspect", "bridge", "-f", BRIDGE_NAME],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    spec = importlib.util.spec_from_file_location("bridge_gateway", SCRIPT)
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    assert out.stdout.strip() == script.interface_ipv4(name)
