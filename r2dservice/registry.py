"""Does an image exist already? In a registry (v2 API) or in the local Docker engine."""

from __future__ import annotations

import asyncio
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
# Docker Hub: images say "docker.io/..." or nothing; the API lives at registry-1.docker.io;
# docker and buildx keep its credentials under the v1 index URL (registry.IndexServer).
DOCKER_HUB = "registry-1.docker.io"
DOCKER_HUB_AUTH_KEY = "https://index.docker.io/v1/"
DOCKER_HUB_NAMES = frozenset({"docker.io", "index.docker.io", "registry-1.docker.io"})
# what docker-credential-* helpers print when they hold nothing for a registry
_NOT_FOUND = "credentials not found"
_IDENTITY_TOKEN_USER = "<token>"
# How callers' messages name the Docker config file (its path is for the service's log).
PUBLIC_CONFIG = "the service's Docker config.json"


class RegistryError(Exception):
    """The question could not be answered (registry down, credentials refused...).

    str() is the whole story, for the service's log; `public` is what callers are told:
    the same without the server's own file paths (its Docker config's location).
    """

    def __init__(self, message: str, public: str | None = None):
        super().__init__(message)
        self.public = message if public is None else public


def is_docker_hub(host: str) -> bool:
    return not host or host.lower() in DOCKER_HUB_NAMES


def registry_endpoint(host: str) -> str:
    """The host whose /v2/ API serves images named with `host` ("" for none)."""
    return DOCKER_HUB if is_docker_hub(host) else host


def auth_key(host: str) -> str:
    """The key docker login writes the credentials of `host` under (docker's
    GetAuthConfigKey): the v1 index URL for Docker Hub, "host[:port]" for the rest."""
    return DOCKER_HUB_AUTH_KEY if is_docker_hub(host) else host


def convert_to_hostname(key: str) -> str:
    """'https://reg.example:5000/v2/' -> 'reg.example:5000', as docker reads older
    "auths" keys (ConvertToHostname)."""
    if "://" in key:
        key = key.split("://", 1)[1]
    return key.split("/", 1)[0].lower()


def _matching_keys(keys, host: str) -> list[str]:
    """The config keys that name `host`, in docker's order: the exact key first."""
    wanted = auth_key(host)
    names = DOCKER_HUB_NAMES if is_docker_hub(host) else {host.lower()}
    exact = [k for k in keys if k == wanted]
    return exact + [k for k in keys if k != wanted and convert_to_hostname(k) in names]


def parse_www_authenticate(header: str) -> tuple[str, dict[str, str]]:
    """'Bearer realm="x",service="y"' -> ("bearer", {"realm": "x", "service": "y"})."""
    scheme, _, rest = header.strip().partition(" ")
    params = dict(re.findall(r'(\w+)\s*=\s*"([^"]*)"', rest))
    params.update((k, v) for k, v in re.findall(r'(\w+)\s*=\s*([^",\s]+)', rest) if k not in params)
    return scheme.lower(), params


def _mapping(value, what: str, path: str) -> dict:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise RegistryError(f"{what} in {path} must be a JSON object, not {type(value).__name__}")
    return value


def credentials_for(
    docker_config: dict, host: str, path: str = "the Docker config.json"
) -> tuple[str, str] | None:
    """(username, password) for `host` from a Docker config.json's "auths", as docker
    finds them; None when there are none. RegistryError (naming `path`) for an entry
    docker could not use either."""
    auths = _mapping(_mapping(docker_config, "the top level", path).get("auths"), '"auths"', path)
    for key in _matching_keys(auths, host):
        entry = auths[key]
        where = f'the "auths" entry {key!r} in {path}'
        if not isinstance(entry, dict):
            raise RegistryError(f"{where} must be a JSON object")
        auth = entry.get("auth")
        if auth:
            if not isinstance(auth, str):
                raise RegistryError(f'{where}: "auth" must be a string')
            try:
                decoded = base64.b64decode(auth, validate=True).decode()
            except (ValueError, UnicodeDecodeError):
                raise RegistryError(
                    f'{where}: "auth" is not base64 of "user:password" (as docker login writes it)'
                ) from None
            user, colon, password = decoded.partition(":")
            if not colon:
                raise RegistryError(f'{where}: "auth" decodes to no "user:password" (no colon)')
            return user, password
        username, password = entry.get("username"), entry.get("password", "")
        if username:
            if not isinstance(username, str) or not isinstance(password, str):
                raise RegistryError(f'{where}: "username" and "password" must be strings')
            return username, password
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
    using the credentials of the Docker config.json that the push uses: its "auths",
    or its credential helpers ("credHelpers", "credsStore") as docker runs them."""

    pushes = True

    docker_config_path = Unicode(
        help="""Docker config.json with the registry credentials ("auths", or
        "credHelpers" / "credsStore" naming docker-credential-<name> programs on PATH).
        The same file serves the existence check and the push, so both see the same
        registry. Default: $DOCKER_CONFIG/config.json or ~/.docker/config.json.""",
    ).tag(config=True)

    @default("docker_config_path")
    def _default_docker_config(self):
        folder = os.environ.get("DOCKER_CONFIG") or os.path.expanduser("~/.docker")
        return os.path.join(folder, "config.json")

    insecure_registries = List(
        Unicode(),
        ["localhost", "127.0.0.1", "[::1]"],
        help="""Registry hosts (with or without port) spoken to over plain HTTP.""",
    ).tag(config=True)
    timeout = Float(10, help="Seconds to wait for the registry.").tag(config=True)

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self._session: aiohttp.ClientSession | None = None
        self._tokens: dict[tuple[str, str], tuple[str, float]] = {}

    def _docker_config(self) -> dict:
        # Read on every check: the push secret may be rotated under us.
        try:
            with open(self.docker_config_path) as f:
                config = json.load(f)
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as e:
            raise RegistryError(f"cannot read {self.docker_config_path}: {e}") from None
        return _mapping(config, "the top level", self.docker_config_path)

    async def credentials(self, host: str) -> tuple[str, str] | None:
        """(username, password) for the registry of images named with `host`, found
        as docker finds them for a push: a credential helper when the config names one
        for this registry ("credHelpers") or for all ("credsStore"), else "auths"."""
        path = self.docker_config_path
        config = self._docker_config()
        helpers = _mapping(config.get("credHelpers"), '"credHelpers"', path)
        matching = _matching_keys(helpers, host)
        helper = helpers[matching[0]] if matching else config.get("credsStore")
        if helper:
            if not isinstance(helper, str) or not re.fullmatch(r"[A-Za-z0-9_.+-]+", helper):
                raise RegistryError(f"the credential helper name {helper!r} in {path} is not valid")
            return await self._run_helper(helper, auth_key(host))
        return credentials_for(config, host, path)

    async def _run_helper(self, helper: str, server: str) -> tuple[str, str] | None:
        program = f"docker-credential-{helper}"
        where = f"{program} (named in {self.docker_config_path})"
        try:
            proc = await asyncio.create_subprocess_exec(
                program,
                "get",
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
            )
        except OSError as e:
            raise RegistryError(f"cannot run the credential helper {where}: {e}") from None
        try:
            out, err = await asyncio.wait_for(proc.communicate(server.encode()), self.timeout)
        except (asyncio.TimeoutError, TimeoutError):
            proc.kill()
            await proc.wait()
            raise RegistryError(
                f"the credential helper {where} did not answer in {self.timeout:g}s"
            ) from None
        said = (out.decode(errors="replace").strip() or err.decode(errors="replace").strip())[:300]
        if proc.returncode:
            if _NOT_FOUND in said.lower():
                return None
            raise RegistryError(
                f"the credential helper {where} failed for {server} "
                f"(exit {proc.returncode}): {said}"
            )
        try:
            answer = json.loads(out)
            user, secret = answer.get("Username", ""), answer["Secret"]
            if not isinstance(user, str) or not isinstance(secret, str):
                raise TypeError
        except (ValueError, KeyError, TypeError, AttributeError):
            raise RegistryError(
                f"the credential helper {where} answered for {server} without the JSON "
                '{"Username": ..., "Secret": ...} docker expects'
            ) from None
        if user == _IDENTITY_TOKEN_USER:
            raise RegistryError(
                f"the credential helper {where} holds an identity token for {server}, which "
                "the registry check cannot use yet: log in with a user name and password "
                "or an access token"
            )
        return user, secret

    def _base_url(self, host: str) -> str:
        bare = host.rsplit(":", 1)[0] if not host.endswith("]") else host
        insecure = host in self.insecure_registries or bare in self.insecure_registries
        return f"{'http' if insecure else 'https'}://{host}"

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self.timeout))
        return self._session

    async def exists(self, image_name: str) -> bool:
        try:
            return await self._exists(image_name)
        except RegistryError as e:
            path = self.docker_config_path
            raise RegistryError(str(e), e.public.replace(path, PUBLIC_CONFIG)) from None

    async def _exists(self, image_name: str) -> bool:
        name_host, repo, tag = split_image_name(image_name)
        host = registry_endpoint(name_host)
        if is_docker_hub(name_host) and "/" not in repo:
            repo = f"library/{repo}"
        url = f"{self._base_url(host)}/v2/{repo}/manifests/{quote(tag)}"
        creds = await self.credentials(name_host)
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
        except (asyncio.TimeoutError, TimeoutError):
            # asyncio.TimeoutError is TimeoutError only from Python 3.11 on
            raise RegistryError(f"registry {host} did not answer in {self.timeout:g}s") from None
        if status == 200:
            return True
        if status == 404:
            return False
        if status in (401, 403):
            key = auth_key(name_host)
            if creds is None:
                raise RegistryError(
                    f"registry {host} wants credentials (HTTP {status}) and "
                    f"{self.docker_config_path} has none for {key!r}: docker login there, "
                    'or add an "auths" entry'
                )
            raise RegistryError(
                f"registry {host} refused the credentials (HTTP {status}); check the "
                f"credentials for {key!r} in {self.docker_config_path}"
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
            text = await r.text(errors="replace")
        try:
            body = json.loads(text)
        except ValueError:
            body = None
        token = body.get("token") or body.get("access_token") if isinstance(body, dict) else None
        if not isinstance(token, str) or not token:
            raise RegistryError(
                f"token service of {host} ({realm}) answered without a token "
                f'(expected a JSON object with "token"): {text[:100]!r}'
            )
        try:
            lifetime = float(body.get("expires_in") or 60)
        except (TypeError, ValueError):
            lifetime = 60
        self._tokens[(host, scope)] = (token, time.monotonic() + max(lifetime - 10, 1))
        return token

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()


class LocalImageChecker(ImageChecker):
    """Looks in the local Docker engine's images through its API socket (no push)."""

    docker_host = Unicode(
        help="""The Docker engine's API address: unix:///path/to/docker.sock or
        tcp://host:port. Default: $DOCKER_HOST or unix:///var/run/docker.sock.""",
    ).tag(config=True)

    @default("docker_host")
    def _default_docker_host(self):
        return os.environ.get("DOCKER_HOST") or "unix:///var/run/docker.sock"

    timeout = Float(10, help="Seconds to wait for the Docker engine.").tag(config=True)

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self._session: aiohttp.ClientSession | None = None

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            if self.docker_host.startswith("unix://"):
                connector = aiohttp.UnixConnector(path=self.docker_host[len("unix://") :])
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
        except (asyncio.TimeoutError, TimeoutError):
            raise RegistryError(f"Docker engine did not answer in {self.timeout:g}s") from None

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
