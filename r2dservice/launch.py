"""Launch: start a built image in the caller's own JupyterHub server.

One mechanism for the three ways in (a v2/ link, the BinderHub event stream without
build_only, `POST api/builds/<id>/launch`): the service asks the hub, with the caller's
own token, to start one of the caller's servers with ``user_options = {"repo": <the
build's pinned spec>}``. The hub's spawner (r2dservice.spawner's mixin) turns that into
the image, which exists already: one API call. The service holds no power over servers;
a caller whose token lacks ``servers`` for themselves cannot launch through it.

Which server: a named server per repository where the hub allows named servers (the
default), else the default server. A server already running the same pinned spec is
reused; one running something else is a question for the caller (409), unless they ask
to replace it.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
import time
from dataclasses import dataclass
from urllib.parse import quote, urlencode

from traitlets import Any, Bool, CaselessStrEnum, Float, Integer, Unicode
from traitlets.config import LoggingConfigurable

from . import repoquota
from .hubapi import HubAPI, HubAPIError, said_by_hub, server_path
from .spec import SpecError, parse_spec

NAMED_SERVERS_OFF = "Named servers are not enabled"
SERVER_NAME_LENGTH = 40


class LaunchError(Exception):
    """A launch that cannot go on: an HTTP status, a message for a person, and details
    (the running server a 409 is about)."""

    def __init__(self, status: int, message: str, **details):
        super().__init__(message)
        self.status = status
        self.message = message
        self.details = details


@dataclass
class Launched:
    """A server the hub has started (or is starting) for a launch."""

    user: str
    server_name: str
    repo: str  # the user_options["repo"] it was started with
    url: str  # the server's path on the hub, "/user/<name>/<server>/"
    path: str  # where to open it, relative to url
    ready: bool
    reused: bool = False
    hub_prefix: str = "/hub/"

    @property
    def pending_url(self) -> str:
        url = f"{self.hub_prefix}spawn-pending/{quote(self.user, safe='')}"
        return url + ("/" + quote(self.server_name, safe="") if self.server_name else "")

    @property
    def redirect_url(self) -> str:
        """Where to send a browser: the server at the path asked for; while it starts,
        the hub's progress page, which goes there (`next`) once it is up. A deep link
        into a server that is not up yet gets only the hub's "not running" answer."""
        target = self.url + self.path
        if self.ready:
            return target
        return f"{self.pending_url}?{urlencode({'next': target})}"

    def to_json(self) -> dict:
        return {
            "state": "running" if self.ready else "pending",
            "user": self.user,
            "server_name": self.server_name,
            "repo": self.repo,
            "url": self.url,
            "redirect_url": self.redirect_url,
            "reused": self.reused,
            "progress_url": f"{self.hub_prefix}api/{server_path(self.user, self.server_name)}"
            "/progress",
            "pending_url": self.pending_url,
        }


# ------------------------------------------------------------------ pure parts
def launch_spec(build) -> str:
    """The spec a launch hands the hub: the build's commit-pinned spec, so the server
    runs exactly the image that was built, not what a branch points at by then."""
    pinned = build.ready_extra.get("binder_persistent_request", "")
    if not pinned:
        for event in reversed(build.events):
            pinned = event.extra.get("binder_persistent_request", "") if event.extra else ""
            if pinned:
                break
    if pinned.startswith("v2/"):
        return pinned[3:]
    return f"{build.request.provider}/{build.request.spec}"


def server_name_for(spec: str) -> str:
    """A named server's name for a repository (not its ref): "gh-owner-repo", lower case,
    [a-z0-9-], at most 40 characters (a short hash of the whole where it had to be cut).
    Two repositories that read alike share a name; that is a question for the caller
    (409), never the wrong image."""
    provider, _, rest = spec.partition("/")
    try:
        repo = parse_spec(provider, rest).repo
    except SpecError:
        repo = rest
    repo = re.sub(r"^[a-z][a-z0-9+.-]*://", "", repo, flags=re.I)  # a git URL's scheme
    slug = re.sub(r"[^a-z0-9]+", "-", f"{provider}-{repo}".lower()).strip("-")
    if len(slug) <= SERVER_NAME_LENGTH:
        return slug
    digest = hashlib.sha256(f"{provider}/{repo}".encode()).hexdigest()[:6]
    return f"{slug[: SERVER_NAME_LENGTH - 7].rstrip('-')}-{digest}"


_PATH_TYPES = {"urlpath": "", "labpath": "lab/tree/", "filepath": "tree/"}


def launch_path(urlpath: str = "", labpath: str = "", filepath: str = "") -> str:
    """Where to open the server, from BinderHub's query parameters: `urlpath` as it is
    (`lab`, `rstudio`, `voila/render/x.ipynb`), `labpath` a file in JupyterLab,
    `filepath` a file in the classic tree. Relative to the server's URL, so a link can
    never send anyone off the hub."""
    for name, value in (("urlpath", urlpath), ("labpath", labpath), ("filepath", filepath)):
        if not value:
            continue
        if any(c in value for c in "\\\r\n\t\0") or re.match(r"^[a-z][a-z0-9+.-]*:", value, re.I):
            raise LaunchError(400, f"{name}={value!r} is not a path in the server")
        value = value.lstrip("/")
        if ".." in value.split("?")[0].split("/"):
            raise LaunchError(400, f"{name}={value!r} may not contain '..'")
        return _PATH_TYPES[name] + value
    return ""


def may_launch(scopes, user: str) -> bool:
    """Whether a token with these (expanded) scopes may start and watch `user`'s servers
    (JupyterHub 6 splits `servers` into start/read/delete; 5 has only `servers`)."""
    from jupyterhub.services.auth import check_scopes

    scopes = set(scopes)
    if check_scopes({f"servers!user={user}"}, scopes):
        return True
    return bool(
        check_scopes({f"start:servers!user={user}"}, scopes)
        and check_scopes({f"read:servers!user={user}"}, scopes)
    )


def _describe(server_name: str) -> str:
    return f"Your server {server_name!r}" if server_name else "Your default server"


# ------------------------------------------------------------------ the launcher
class Launcher(LoggingConfigurable):
    """Starts built images in the callers' own servers through the hub's REST API."""

    enabled = Bool(
        True,
        help="""Offer launching: v2/ links and the Launch button start the image in the
        caller's server, and the event stream without build_only launches as BinderHub
        does. The hub's spawner must read user_options["repo"] (r2dservice.spawner's
        mixin does), and the service's oauth_client_allowed_scopes must include
        "servers!user". False: images only, as with build_only.""",
    ).tag(config=True)
    named_servers = CaselessStrEnum(
        ["auto", "always", "never"],
        "auto",
        help="""Which of the caller's servers a launch starts. "auto": a named server per
        repository when the hub allows named servers, else the default server; "always":
        a named server, failing where the hub has none; "never": the default server.""",
    ).tag(config=True)
    start_timeout = Float(
        600,
        help="""Seconds the event stream follows a starting server before it fails with
        a message (the hub's own c.Spawner.start_timeout usually ends it first).""",
    ).tag(config=True)
    hub_timeout = Float(10, help="Seconds to wait for each call to the hub's API.").tag(config=True)
    public_url = Unicode(
        "",
        help="""The hub's public URL (https://hub.example.org), for the absolute server
        URL in the event stream's last `ready` event. Empty: the URL the request came
        to the service by (the proxy passes its Host and X-Forwarded-Proto).""",
    ).tag(config=True)

    per_repo_quota = Integer(
        0,
        help="""How many servers (of all users, running or starting) may run one
        repository at once, as BinderHub's: a launch past it is refused with 429, "Too
        many users running <repo>! Try again soon." Any ref counts as the same
        repository. 0: no quota. Counting needs the service's token to have
        list:users and read:servers (docs/launch.md).""",
    ).tag(config=True)
    per_repo_quota_higher = Integer(
        0,
        help="""per_repo_quota for specs that match their provider's high_quota_specs
        (c.GitHubRepoProvider.high_quota_specs, ...), as BinderHub's. 0: no quota for
        them.""",
    ).tag(config=True)

    # Set by the app: the service's own token (counting every user's servers for the
    # quota; launches never use it), and whether a spec has the higher quota.
    service_token = Unicode("")
    higher_quota = Any(lambda provider, spec: False)

    def __init__(self, api_url: str = "", hub_prefix: str = "/hub/", **kwargs):
        super().__init__(**kwargs)
        self.api_url = api_url
        self.hub_prefix = hub_prefix

    def quota(self, requested: str) -> int:
        """The per-repository quota of a spec as requested ("<provider>/<spec>")."""
        provider, _, spec = requested.partition("/")
        return repoquota.quota_for(
            bool(self.higher_quota(provider, spec)),
            self.per_repo_quota,
            self.per_repo_quota_higher,
        )

    async def _check_quota(self, user: str, name: str, repo: str, requested: str) -> None:
        """LaunchError 429 when `repo`'s repository runs on as many servers as its quota
        allows (the caller's server `name`, which this launch replaces, not counted)."""
        quota = self.quota(requested or repo)
        if not quota:
            return
        try:
            used = await repoquota.check(
                self.hub(self.service_token), repo, quota, skip=(user, name)
            )
        except repoquota.QuotaExceeded as e:
            self.log.warning("Launch of %s for %s refused: %s", repo, user, e.message)
            raise LaunchError(429, e.message, quota=e.quota, used=e.used) from None
        except repoquota.QuotaUnknown as e:
            self.log.error("Launch of %s for %s: %s", repo, user, e.message)
            raise LaunchError(e.status, e.message) from None
        # BinderHub's warning at half the quota: a repository some class is about to fill
        log = self.log.warning if used >= 0.5 * quota else self.log.info
        log("Launching %s for %s: %d other servers run this repository", repo, user, used)

    def hub(self, token: str) -> HubAPI:
        return HubAPI(self.api_url, token, self.hub_timeout)

    async def launch(
        self,
        user: str,
        token: str,
        repo: str,
        *,
        path: str = "",
        replace: bool = False,
        requested: str = "",
    ) -> Launched:
        """Start (or find) `user`'s server on `repo`. LaunchError says why not.
        `requested` is the spec as asked for (high_quota_specs match it; default `repo`)."""
        hub = self.hub(token)
        try:
            servers = (await hub.user(user)).get("servers") or {}
            for name, server in servers.items():
                if (server.get("user_options") or {}).get("repo") == repo:
                    return self._launched(user, name, repo, path, server, reused=True)
            name = server_name_for(repo) if self.named_servers != "never" else ""
            try:
                await self._start(hub, user, name, repo, servers, replace, requested)
            except HubAPIError as e:
                if not (name and self.named_servers == "auto" and NAMED_SERVERS_OFF in e.message):
                    raise
                name = ""
                await self._start(hub, user, name, repo, servers, replace, requested)
            # the started server's model: its URL and whether it is up already
            server = ((await hub.user(user)).get("servers") or {}).get(name) or {}
            return self._launched(user, name, repo, path, server)
        except HubAPIError as e:
            raise self._error(e, user) from None

    async def _start(self, hub, user, name, repo, servers, replace, requested) -> None:
        running = servers.get(name)
        if running is not None:
            other = (running.get("user_options") or {}).get("repo") or "another image"
            if not replace:
                raise LaunchError(
                    409,
                    f"{_describe(name)} is already running {other}. Open it, or stop it "
                    f"and start {repo} in its place.",
                    server={"name": name, "url": running.get("url", ""), "repo": other},
                )
        # Before anything is stopped: a refused launch leaves the caller's servers as
        # they were.
        await self._check_quota(user, name, repo, requested)
        if running is not None:
            await self._stop(hub, user, name)
        try:
            await hub.start(user, name, {"repo": repo}, timeout=self.start_timeout)
        except HubAPIError as e:
            if e.status < 500 or e.status == 503:  # refused, or no answer: as it is
                raise
            # The spawner failed, and the hub keeps its reason for its log.
            raise LaunchError(
                502,
                f"JupyterHub could not start {_describe(name).lower()} on {repo} "
                f"({e.message}). The hub's log says why; the image must be able to run "
                "a notebook server (jupyterhub-singleuser).",
            ) from None

    async def _stop(self, hub, user, name) -> None:
        await hub.stop(user, name, timeout=self.start_timeout)
        deadline = time.monotonic() + self.start_timeout
        while time.monotonic() < deadline:
            if name not in ((await hub.user(user)).get("servers") or {}):
                return
            await asyncio.sleep(0.5)
        raise LaunchError(504, f"{_describe(name)} did not stop within {self.start_timeout:g} s.")

    def _launched(self, user, name, repo, path, server: dict, reused=False) -> Launched:
        url = server.get("url") or (
            f"{self.hub_prefix[: -len('hub/')]}user/{quote(user, safe='')}/"
            + (f"{quote(name, safe='')}/" if name else "")
        )
        return Launched(
            user=user,
            server_name=name,
            repo=repo,
            url=url,
            path=path,
            ready=bool(server.get("ready")),
            reused=reused,
            hub_prefix=self.hub_prefix,
        )

    def _error(self, e: HubAPIError, user: str) -> LaunchError:
        if e.status == 403:
            return LaunchError(
                403,
                f"JupyterHub does not let this login start {user}'s servers ({e.message}). "
                "Log in again through the hub; if that does not help, the service's "
                'oauth_client_allowed_scopes need "servers!user".',
            )
        if e.status == 400 and "maximum of" in e.message:
            return LaunchError(
                409, f"{e.message} Stop or delete one on the hub's home page, then launch again."
            )
        return LaunchError(e.status if e.status >= 400 else 502, said_by_hub(e.message))

    async def follow(self, token: str, launched: Launched):
        """The hub's progress of a starting server, as (progress, message) pairs, until it
        is ready; LaunchError when it fails or takes longer than start_timeout."""
        if launched.ready:
            return
        hub = self.hub(token)
        try:
            async for event in hub.progress(
                launched.user, launched.server_name, self.start_timeout
            ):
                if event.get("failed"):
                    raise LaunchError(
                        500, str(event.get("message") or "The server failed to start.")
                    )
                yield event.get("progress"), str(event.get("message") or "")
                if event.get("ready"):
                    launched.ready = True
                    if event.get("url"):
                        launched.url = event["url"]
                    return
            server = ((await hub.user(launched.user)).get("servers") or {}).get(
                launched.server_name
            )
        except HubAPIError as e:
            raise self._error(e, launched.user) from None
        if not server or not server.get("ready"):
            raise LaunchError(500, f"{_describe(launched.server_name)} did not start.")
        launched.ready = True
