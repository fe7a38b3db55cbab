"""Does an image exist already? In a registry (v2 API) or in the local Docker engine."""
from __future__ import annotations

import base64
import json
import os
import re
import time
from urllib.parse import quote

import aiohttp
from traitlets import Float, List, Unicode, default
from traitlets.config import LoggingConfigurable

from .naming import split_image_name

MANIFEST_ACCEPT = ", ".join(
    [
        "application/vnd.docker.distribution.manifest.v2+json",
        "application/vnd.docker.distribution.manifest.list.v2+json",
        "application/vnd.oci.image.manifest.v1+json",
        "application/vnd.oci.image.index.v1+json",
    ]
)
DOCKER_HUB = "registry-1.docker.io"
DOCKER_HUB_AUTH_KEY = "https://index.docker.io/v1/"


class RegistryError(Exception):
    """The question could not be answered (registry down, credentials refused...)."""


def parse_www_authenticate(header: str) -> tuple[str, dict[str, str]]:
    """'Bearer realm="x",service="y"' -> ("bearer", {"realm": "x", "service": "y"})."""
    scheme, _, rest = header.strip().partition(" ")
    params = dict(re.findall(r'(\w+)\s*=\s*"([^"]*)"', rest))
    params.update(
        (k, v) for k, v in re.findall(r'(\w+)\s*=\s*([^",\s]+)', rest) if k not in params
    )
    return scheme.lower(), params


def credentials_for(docker_config: dict, host: str) -> tuple[str, str] | None:
    """(username, password) for `host` from a Docker config.json's "auths"."""
    auths = docker_config.get("auths") or {}
    keys = [host, f"https://{host}", f"http://{host}", f"https://{host}/v1/", f"https://{host}/v2/"]
    if host == DOCKER_HUB:
        keys.insert(0, DOCKER_HUB_AUTH_KEY)
    for key in keys:
        entry = auths.get(key)
        if not entry:
            continue
        if entry.get("auth"):
            user, _, password = base64.b64decode(entry["auth"]).decode().partition(":")
            return user, password
        if entry.get("username"):
            return entry["username"], entry.get("password", "")
    return None


def basic_auth(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


class ImageChecker(LoggingConfigurable):
    """Answers: does this image exist where builds put it?"""

    pushes = False  # do builds push to where this checker looks?

    async def exists(self, image_name: str) -> bool:
        raise NotImplementedError

    async def close(self) -> None:
        pass


class RegistryImageChecker(ImageChecker):
    """HEAD /v2/<name>/manifests/<tag>, with basic auth or the Bearer token flow,
    using the credentials of the Docker config.json that the push uses."""

    pushes = True

    docker_config_path = Unicode(
        config=True,
        help="""Docker config.json with the registry credentials ("auths"). The same file
        serves the existence check and the push, so both see the same registry.
        Default: $DOCKER_CONFIG/config.json or ~/.docker/config.json.""",
    )

    @default("docker_config_path")
    def _default_docker_config(self):
        folder = os.environ.get("DOCKER_CONFIG") or os.path.expanduser("~/.docker")
        return os.path.join(folder, "config.json")

    insecure_registries = List(
        Unicode(),
        ["localhost", "127.0.0.1", "[::1]"],
        config=True,
        help="""Registry hosts (with or without port) spoken to over plain HTTP.""",
    )
    timeout = Float(10, config=True, help="Seconds to wait for the registry.")

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self._session: aiohttp.ClientSession | None = None
        self._tokens: dict[tuple[str, str], tuple[str, float]] = {}

    def _docker_config(self) -> dict:
        # Read on every check: the push secret may be rotated under us.
        try:
            with open(self.docker_config_path) as f:
                return json.load(f)
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as e:
            raise RegistryError(f"cannot read {self.docker_config_path}: {e}") from None

    def _base_url(self, host: str) -> str:
        bare = host.rsplit(":", 1)[0] if not host.endswith("]") else host
        insecure = host in self.insecure_registries or bare in self.insecure_registries
        return f"{'http' if insecure else 'https'}://{host}"

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=self.timeout)
            )
        return self._session

    async def exists(self, image_name: str) -> bool:
        host, repo, tag = split_image_name(image_name)
        if not host:
            host = DOCKER_HUB
            if "/" not in repo:
                repo = f"library/{repo}"
        url = f"{self._base_url(host)}/v2/{repo}/manifests/{quote(tag)}"
        creds = credentials_for(self._docker_config(), host)
        scope = f"repository:{repo}:pull"
        headers = {"Accept": MANIFEST_ACCEPT}
        token = self._cached_token(host, scope)
        if token:
            headers["Authorization"] = f"Bearer {token}"
        try:
            status, challenge = await self._head(url, headers)
            if status == 401 and challenge:
                scheme, params = parse_www_authenticate(challenge)
                if scheme == "basic" and creds:
                    headers["Authorization"] = basic_auth(*creds)
                elif scheme == "bearer":
                    token = await self._fetch_token(host, params, scope, creds)
                    headers["Authorization"] = f"Bearer {token}"
                status, _ = await self._head(url, headers)
        except aiohttp.ClientError as e:
            raise RegistryError(f"registry {host} unreachable: {e}") from None
        except TimeoutError:
            raise RegistryError(f"registry {host} did not answer in {self.timeout:g}s") from None
        if status == 200:
            return True
        if status == 404:
            return False
        if status in (401, 403):
            raise RegistryError(
                f"registry {host} refused the credentials (HTTP {status}); check the "
                f"\"auths\" entry for {host} in {self.docker_config_path}"
            )
        raise RegistryError(f"registry {host} answered HTTP {status}")

    async def _head(self, url: str, headers: dict) -> tuple[int, str]:
        async with self.session.head(url, headers=headers, allow_redirects=True) as r:
            return r.status, r.headers.get("WWW-Authenticate", "")

    def _cached_token(self, host: str, scope: str) -> str | None:
        token, expires = self._tokens.get((host, scope), (None, 0))
        return token if token and expires > time.monotonic() else None

    async def _fetch_token(self, host, params, scope, creds) -> str:
        realm = params.get("realm")
        if not realm:
            raise RegistryError(f"registry {host} asked for a token without a realm")
        query = {"scope": scope}
        if params.get("service"):
            query["service"] = params["service"]
        headers = {"Authorization": basic_auth(*creds)} if creds else {}
        async with self.session.get(realm, params=query, headers=headers) as r:
            if r.status != 200:
                raise RegistryError(
                    f"token service of {host} answered HTTP {r.status}; check the "
                    f"credentials for {host} in {self.docker_config_path}"
                )
            body = await r.json(content_type=None)
        token = body.get("token") or body.get("access_token")
        if not token:
            raise RegistryError(f"token service of {host} returned no token")
        lifetime = float(body.get("expires_in") or 60)
        self._tokens[(host, scope)] = (token, time.monotonic() + max(lifetime - 10, 1))
        return token

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()


class LocalImageChecker(ImageChecker):
    """Looks in the local Docker engine's images through its API socket (no push)."""

    docker_host = Unicode(
        config=True,
        help="""The Docker engine's API address: unix:///path/to/docker.sock or
        tcp://host:port. Default: $DOCKER_HOST or unix:///var/run/docker.sock.""",
    )

    @default("docker_host")
    def _default_docker_host(self):
        return os.environ.get("DOCKER_HOST") or "unix:///var/run/docker.sock"

    timeout = Float(10, config=True, help="Seconds to wait for the Docker engine.")

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self._session: aiohttp.ClientSession | None = None

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            if self.docker_host.startswith("unix://"):
                connector = aiohttp.UnixConnector(path=self.docker_host[len("unix://"):])
                self._base = "http://docker"
            else:
                connector = aiohttp.TCPConnector()
                self._base = "http://" + self.docker_host.split("://", 1)[-1]
            self._session = aiohttp.ClientSession(
                connector=connector, timeout=aiohttp.ClientTimeout(total=self.timeout)
            )
        return self._session

    async def exists(self, image_name: str) -> bool:
        session = self.session
        try:
            async with session.get(f"{self._base}/images/{quote(image_name, safe='')}/json") as r:
                if r.status == 200:
                    return True
                if r.status == 404:
                    return False
                text = await r.text()
                raise RegistryError(f"Docker engine answered HTTP {r.status}: {text[:200]}")
        except aiohttp.ClientError as e:
            raise RegistryError(f"Docker engine at {self.docker_host} unreachable: {e}") from None
        except TimeoutError:
            raise RegistryError(f"Docker engine did not answer in {self.timeout:g}s") from None

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
