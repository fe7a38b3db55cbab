"""Registries for tests: the real Debian docker-registry with htpasswd auth, and a
helper that pushes a minimal image through the registry's v2 API (no Docker needed)."""

from __future__ import annotations

import hashlib
import json
import os
import shlex
import subprocess
import time
import urllib.request

import aiohttp

from r2dservice.registry import basic_auth

from .service import free_port


class AuthRegistry:
    """docker-registry on 127.0.0.1:<free port> (or `address`) requiring basic auth
    (htpasswd, bcrypt)."""

    def __init__(self, workdir: str, users: dict[str, str], address: str = "127.0.0.1"):
        import bcrypt

        self.port = free_port()
        self.host = f"{address}:{self.port}"
        self.users = users
        htpasswd = os.path.join(workdir, "htpasswd")
        with open(htpasswd, "w") as f:
            for user, password in users.items():
                f.write(f"{user}:{bcrypt.hashpw(password.encode(), bcrypt.gensalt(5)).decode()}\n")
        self.config = os.path.join(workdir, "registry.yml")
        with open(self.config, "w") as f:
            f.write(
                f"""version: 0.1
log: {{level: warn}}
storage:
  filesystem: {{rootdirectory: {workdir}/data}}
http: {{addr: "{self.host}"}}
auth:
  htpasswd: {{realm: test-registry, path: {htpasswd}}}
"""
            )
        self.proc = subprocess.Popen(
            ["docker-registry", "serve", self.config],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            try:
                urllib.request.urlopen(f"http://{self.host}/v2/", timeout=1)
            except urllib.error.HTTPError:
                return  # 401: it is up
            except OSError:
                time.sleep(0.1)
        raise RuntimeError("docker-registry did not start")

    def stop(self):
        self.proc.terminate()
        self.proc.wait(10)


async def push_minimal_image(
    base_url: str, name: str, tag: str, auth: tuple[str, str] | None = None
):
    """Upload a config blob and an OCI manifest: an image the registry reports as present."""
    config = json.dumps(
        {"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": []}}
    ).encode()
    digest = "sha256:" + hashlib.sha256(config).hexdigest()
    headers = {"Authorization": basic_auth(*auth)} if auth else {}
    async with aiohttp.ClientSession(headers=headers) as s:
        async with s.post(f"{base_url}/v2/{name}/blobs/uploads/") as r:
            assert r.status == 202, await r.text()
            location = r.headers["Location"]
        if location.startswith("/"):
            location = base_url + location
        sep = "&" if "?" in location else "?"
        async with s.put(
            f"{location}{sep}digest={digest}",
            data=config,
            headers={"Content-Type": "application/octet-stream"},
        ) as r:
            assert r.status == 201, await r.text()
        manifest = json.dumps(
            {
                "schemaVersion": 2,
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "config": {
                    "mediaType": "application/vnd.oci.image.config.v1+json",
                    "digest": digest,
                    "size": len(config),
                },
                "layers": [],
            }
        ).encode()
        async with s.put(
            f"{base_url}/v2/{name}/manifests/{tag}",
            data=manifest,
            headers={"Content-Type": "application/vnd.oci.image.manifest.v1+json"},
        ) as r:
            assert r.status == 201, await r.text()


def credential_helper(
    folder, monkeypatch, name: str, secrets: dict[str, tuple[str, str]], script: str = ""
):
    """A docker-credential-<name> program on PATH that answers `get` as docker's helpers
    do: JSON for a server it knows, "credentials not found in native keychain" and exit 1
    otherwise (or runs `script` instead). Returns the file its arguments and stdin go to."""
    bin_dir = folder / "helper-bin"
    bin_dir.mkdir(exist_ok=True)
    log = folder / f"{name}.log"
    cases = "".join(
        f"  {shlex.quote(server)}) printf '%s' {shlex.quote(json.dumps({'ServerURL': server, 'Username': user, 'Secret': secret}))};;\n"
        for server, (user, secret) in secrets.items()
    )
    body = script or (
        f'case "$server" in\n{cases}'
        '  *) echo "credentials not found in native keychain"; exit 1;;\nesac\n'
    )
    program = bin_dir / f"docker-credential-{name}"
    program.write_text(
        f'#!/bin/sh\nserver=$(cat)\necho "$1 $server" >> {shlex.quote(str(log))}\n{body}\n'
    )
    program.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    return log
