"""The hub side: a spawner mixin that gets its image from r2dservice.

In ``jupyterhub_config.py``::

    c.JupyterHub.spawner_class = "r2dservice.spawner.R2DDockerSpawner"   # or R2DKubeSpawner
    c.R2DServiceSpawnerMixin.r2dservice_url = "http://127.0.0.1:8585/services/binder/"

A spawn whose ``user_options`` name a repository (``{"repo": "gh/owner/repo", "ref":
"main"}``, or a repository URL) asks r2dservice for its image, on the user's behalf, with a
short-lived token the hub makes for that user (only the scopes the build needs, and only
those the user holds), follows the build's events into the hub's progress page, and starts
the server on the image. A spawn without a repository is the base spawner's own.

This module imports only the standard library, traitlets, tornado (the hub has both) and
r2dservice's pure spec parser: no repo2docker, no Kubernetes client, no web application.
``R2DKubeSpawner`` and ``R2DDockerSpawner`` come from ``r2dservice.spawners.kube`` and
``r2dservice.spawners.docker``, imported only when asked for.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from urllib.parse import quote, unquote, urlsplit

from tornado.httpclient import AsyncHTTPClient, HTTPClientError, HTTPRequest
from traitlets import Float, Integer, Unicode
from traitlets.config import LoggingConfigurable

from .spec import ALL_PROVIDERS, PROVIDERS, SpecError, format_spec, parse_spec, split_spec
from .sseclient import SSEParser

__all__ = [
    "OPTIONS_FORM",
    "R2DServiceSpawnError",
    "R2DServiceSpawnerMixin",
    "repo_to_spec",
]  # and, imported when asked for: R2DDockerSpawner, R2DKubeSpawner

BUILD_SCOPE = "custom:r2dservice:build"
STATE_KEY = "r2dservice_build"
TOKEN_NOTE = "r2dservice spawn"

# A simple spawn form; run_options_from_form() reads its two fields.
OPTIONS_FORM = """
<div class="form-group mb-3">
  <label for="r2d-repo" class="form-label">Repository</label>
  <input class="form-control" id="r2d-repo" name="repo" type="text"
         placeholder="https://github.com/owner/repo or gh/owner/repo (empty: the default image)">
</div>
<div class="form-group mb-3">
  <label for="r2d-ref" class="form-label">Branch, tag or commit</label>
  <input class="form-control" id="r2d-ref" name="ref" type="text" placeholder="HEAD">
</div>
"""

# Progress (out of 100) while the image is made; the base spawner's own progress follows.
_PHASE_PROGRESS = {
    "waiting": 2,
    "fetching": 5,
    "building": 10,
    "pushing": 40,
    "built": 45,
    "ready": 48,
}


class R2DServiceSpawnError(Exception):
    """A spawn that could not get its image; the hub shows the message on its pages."""

    def __init__(self, message: str):
        super().__init__(message)
        self.jupyterhub_message = message  # JupyterHub's format_exception() shows this


# ------------------------------------------------------------------ repositories -> specs
_GH_HOSTS = {"github.com", "www.github.com"}
_GL_HOSTS = {"gitlab.com", "www.gitlab.com"}
_GIST_HOSTS = {"gist.github.com"}
_SCP = re.compile(r"[\w.-]+@[\w.-]+:(?!//).+")
# How many "/"-separated parts a spec has with its ref, per provider.
_PARTS_WITH_REF = {"gh": 3, "gl": 2, "git": 2, "gist": 3}  # gist: the ref is optional


def _strip_git(name: str) -> str:
    return name[: -len(".git")] if name.endswith(".git") else name


def _url_to_spec(url: str, ref: str) -> str:
    """A repository's web or clone URL -> "<provider>/<spec>" (ref: the given one, else one
    in a pasted /tree/<ref> link, else HEAD)."""
    if _SCP.fullmatch(url):
        return "git/" + format_spec("git", url, ref or "HEAD")
    parts = urlsplit(url)
    host = (parts.hostname or "").lower()
    path = [unquote(p) for p in parts.path.split("/") if p]
    if parts.scheme in ("http", "https") and not parts.username and not parts.query:
        if host in _GH_HOSTS and len(path) >= 2:
            owner, repo = path[0], _strip_git(path[1])
            if not ref and len(path) >= 4 and path[2] in ("tree", "blob", "commit"):
                ref = "/".join(path[3:]) if path[2] == "tree" else path[3]
            return "gh/" + format_spec("gh", f"{owner}/{repo}", ref or "HEAD")
        if host in _GL_HOSTS and len(path) >= 2:
            if "-" in path:
                i = path.index("-")
                project, rest = path[:i], path[i + 1 :]
                if not ref and len(rest) >= 2 and rest[0] in ("tree", "blob", "commit"):
                    ref = "/".join(rest[1:]) if rest[0] == "tree" else rest[1]
            else:
                project = path
            project[-1] = _strip_git(project[-1])
            return "gl/" + format_spec("gl", "/".join(project), ref or "HEAD")
        if host in _GIST_HOSTS and len(path) >= 2:
            return "gist/" + format_spec("gist", f"{path[0]}/{path[1]}", ref or "HEAD")
    return "git/" + format_spec("git", url, ref or "HEAD")


def repo_to_spec(repo: str, ref: str = "") -> str:
    """``user_options`` -> the "<provider>/<spec>" r2dservice builds; raises SpecError.

    ``repo`` is "<provider>/<spec>" (with its ref; or without one, and then ``ref`` or
    HEAD) or a repository URL (GitHub, GitLab, gist, any git URL; a pasted
    ``/tree/<ref>`` link names its ref). With ``ref``, ``repo`` must not name one.
    """
    repo, ref = (repo or "").strip(), (ref or "").strip()
    if not repo:
        raise SpecError("no repository given")
    head = repo.split("/", 1)[0]
    if head in ALL_PROVIDERS and head not in PROVIDERS and "/" in repo:
        # Data repositories and the others without a ref in this table: the spec as it is
        # (a data record names its version; a gitea spec names its ref).
        if ref:
            raise SpecError(f"{repo!r} takes no separate 'ref'")
        provider, rest = split_spec(repo)
        return f"{provider}/{parse_spec(provider, rest).spec}"
    if head in PROVIDERS and "/" in repo:
        provider, rest = split_spec(repo)
        rest = rest.rstrip("/")
        if provider == "git" and "://" in rest:  # an unescaped clone URL
            name = rest
        else:
            parts = rest.count("/") + 1
            has_ref = parts >= _PARTS_WITH_REF[provider]
            if has_ref and ref:
                raise SpecError(
                    f"{repo!r} names a ref already: give the repository without it, or no 'ref'"
                )
            if has_ref or (provider == "gist" and not ref):
                return f"{provider}/{parse_spec(provider, rest).spec}"
            name = unquote(rest) if provider in ("gl", "git") else rest
        full = f"{provider}/" + format_spec(provider, name, ref or "HEAD")
    elif "://" in repo or _SCP.fullmatch(repo):
        full = _url_to_spec(repo, ref)
    else:
        raise SpecError(
            f"{repo!r} is neither '<provider>/<spec>' (providers: {', '.join(PROVIDERS)}) "
            "nor a repository URL"
        )
    provider, rest = split_spec(full)
    return f"{provider}/{parse_spec(provider, rest).spec}"


# ------------------------------------------------------------------ the mixin
class R2DServiceSpawnerMixin(LoggingConfigurable):
    """Mix into any spawner with an ``image`` trait: ``class S(R2DServiceSpawnerMixin, Base)``.

    The image is made before the base spawner starts (in the pre-spawn step, so the
    build's minutes do not count against ``start_timeout``; ``r2dservice_build_timeout``
    bounds them).
    """

    r2dservice_url = Unicode(
        "",
        help="""r2dservice's URL as the hub reaches it, with its prefix, e.g.
        ``http://127.0.0.1:8585/services/binder/`` (managed or external service on this
        host) or ``http://r2dservice:8585/services/binder/`` (the helm chart). Empty: the
        URL of the hub's service named ``r2dservice_name`` (its ``url`` and prefix).""",
    ).tag(config=True)

    r2dservice_name = Unicode(
        "binder",
        help="The name of r2dservice's entry in ``c.JupyterHub.services`` (its scopes name it).",
    ).tag(config=True)

    r2dservice_build_scope = Unicode(
        BUILD_SCOPE,
        help="""The scope that lets a user start builds (r2dservice's
        ``c.R2DServiceAuth.build_scope``). The helper's token carries it when the user holds
        it; without it, users get images that exist already, and no builds.""",
    ).tag(config=True)

    r2dservice_token_lifetime = Integer(
        3600,
        help="""Seconds the token made for each spawn lives (it is revoked as soon as the
        image is known). A build that outlasts it gets a fresh token when it reconnects.""",
    ).tag(config=True)

    r2dservice_build_timeout = Float(
        3600,
        help="Seconds to wait for an image to be built before the spawn fails.",
    ).tag(config=True)

    r2dservice_request_timeout = Float(
        30, help="Seconds for one request to r2dservice (not the event stream)."
    ).tag(config=True)

    r2dservice_repo = Unicode(
        "",
        help="""The repository to build when ``user_options`` name none: for a profile's
        ``kubespawner_override`` (a profile option's ``unlisted_choice`` with
        ``{"r2dservice_repo": "{value}"}``), or a fixed repository for everyone.""",
    ).tag(config=True)

    r2dservice_ref = Unicode("", help="The ref that goes with ``r2dservice_repo``.").tag(
        config=True
    )

    # ------------------------------------------------------------- state
    _r2d_build: dict | None = None  # {"id", "spec"} of a build not yet seen to its end
    _r2d_image: str = ""

    def load_state(self, state):
        super().load_state(state)
        build = state.get(STATE_KEY)
        self._r2d_build = dict(build) if isinstance(build, dict) and build.get("id") else None

    def get_state(self):
        state = super().get_state()
        if self._r2d_build:
            state[STATE_KEY] = dict(self._r2d_build)
        return state

    def clear_state(self):
        # JupyterHub clears a spawner's state before each start: a build that has not been
        # seen to its end stays, so that the next start (after a hub restart) re-attaches.
        super().clear_state()
        self._r2d_image = ""
        self._r2d_reset_progress()

    def _r2d_reset_progress(self):
        old = getattr(self, "_r2d_changed", None)
        if old is not None:
            old.set()  # wakes progress() readers of the previous spawn, who then stop
        self._r2d_events = []
        self._r2d_changed = asyncio.Event()
        self._r2d_done = False

    def _r2d_save_state(self):
        orm_spawner, db = getattr(self, "orm_spawner", None), getattr(self, "db", None)
        if orm_spawner is not None and db is not None:
            orm_spawner.state = self.get_state()
            db.commit()

    # ------------------------------------------------------------- the user's token
    def r2dservice_new_token(self, scopes: list[str], expires_in: int) -> str:
        """A new API token of this spawner's user with exactly `scopes`; raises ValueError
        when the user does not hold them (JupyterHub's rule)."""
        return self.user.new_api_token(
            note=f"{TOKEN_NOTE} {self._log_name}", scopes=scopes, expires_in=expires_in
        )

    def r2dservice_revoke_token(self, token: str) -> None:
        """Delete a token r2dservice_new_token() made."""
        from jupyterhub import orm  # in the hub, where this runs

        db = self.user.db
        orm_token = orm.APIToken.find(db, token)
        if orm_token is not None:
            db.delete(orm_token)
            db.commit()

    # ------------------------------------------------------------- options
    def run_options_from_form(self, form_data):
        return _take_repo_fields(super().run_options_from_form(form_data), form_data)

    def options_from_query(self, query_data):
        # /hub/spawn?repo=...&ref=... (JupyterHub calls this, not run_options_from_form)
        return _take_repo_fields(super().options_from_query(query_data), query_data)

    def r2dservice_spec(self) -> str | None:
        """The "<provider>/<spec>" this spawn builds, or None for the base spawner's image."""
        options = self.user_options or {}
        repo = _one(options.get("repo")) or self.r2dservice_repo
        if not repo:
            return None
        ref = _one(options.get("ref")) if _one(options.get("repo")) else self.r2dservice_ref
        if not isinstance(repo, str) or not isinstance(ref or "", str):
            raise R2DServiceSpawnError("'repo' and 'ref' must be strings")
        try:
            return repo_to_spec(repo, ref or "")
        except SpecError as e:
            raise R2DServiceSpawnError(f"Cannot build {repo!r}: {e}") from None

    # ------------------------------------------------------------- the spawn
    async def run_pre_spawn_hook(self):
        # After JupyterHub applied group overrides and user options, before start() and its
        # start_timeout: the build may take minutes.
        await self.r2dservice_get_image()
        result = super().run_pre_spawn_hook()
        if asyncio.iscoroutine(result) or isinstance(result, asyncio.Future):
            result = await result
        return result

    async def start(self):
        if self._r2d_image:
            self.image = self._r2d_image
        return await super().start()

    async def r2dservice_get_image(self) -> str | None:
        """Ask r2dservice for this spawn's image and set ``self.image``; None without a repo."""
        if getattr(self, "_r2d_events", None) is None or self._r2d_done:
            self._r2d_reset_progress()
        self._r2d_image = ""
        try:
            spec = self.r2dservice_spec()
            if spec is None:
                return None
            t0 = time.perf_counter()
            image = await _Session(self, spec).run()
            self._r2d_image = self.image = image
            self.log.info(
                "r2dservice: image %s of %s for %s in %.1f ms",
                image,
                spec,
                self._log_name,
                (time.perf_counter() - t0) * 1000,
            )
            return image
        finally:
            self._r2d_done = True
            self._r2d_changed.set()

    def _r2d_emit(self, progress: int | None, message: str):
        event = {"message": message}
        if progress is not None:
            event["progress"] = progress
        self._r2d_events.append(event)
        self._r2d_changed.set()

    async def progress(self):
        """The build's events (queue position, repo2docker's log), then the base spawner's."""
        events = getattr(self, "_r2d_events", None)
        if events is not None:
            i = 0
            while True:
                while i < len(events):
                    yield events[i]
                    i += 1
                if self._r2d_done or events is not self._r2d_events:
                    break
                # nothing awaited since the check: no event can have come in between
                self._r2d_changed.clear()
                await self._r2d_changed.wait()
        async for event in super().progress():
            yield event


def _one(value):
    """A form field's value: forms and query strings give lists of one."""
    if isinstance(value, (list, tuple)):
        return value[0] if value else ""
    return value


def _take_repo_fields(options, data) -> dict:
    """`options` with the form's (or query's) `repo` and `ref`, stripped; empty: none."""
    options = dict(options or {})
    for key in ("repo", "ref"):
        if key in data:
            value = _one(data[key])
            value = value.strip() if isinstance(value, str) else value
            if value:
                options[key] = value
            else:
                options.pop(key, None)
    return options


class _Session:
    """One spawn's conversation with r2dservice: token, build, events, revoke."""

    def __init__(self, spawner: R2DServiceSpawnerMixin, spec: str):
        self.spawner = spawner
        self.log = spawner.log
        self.spec = spec
        self.url = self._service_url()
        self.token = ""
        self.token_expires = 0.0
        self.may_build = False
        self.client = AsyncHTTPClient(force_instance=True)
        self.deadline = time.monotonic() + spawner.r2dservice_build_timeout
        self.building_lines = 0
        self.recent: list[str] = []  # the last lines of the build's log, for an error

    # ----------------------------------------------------------- where and who
    def _service_url(self) -> str:
        url = self.spawner.r2dservice_url
        if not url:
            url = _hub_service_url(self.spawner.r2dservice_name)
        if not url:
            raise R2DServiceSpawnError(
                "r2dservice's URL is not configured: set c.R2DServiceSpawnerMixin.r2dservice_url "
                f"(e.g. 'http://127.0.0.1:8585/services/{self.spawner.r2dservice_name}/'), or give "
                f"the hub a service named {self.spawner.r2dservice_name!r} with a 'url'."
            )
        return url if url.endswith("/") else url + "/"

    def _make_token(self):
        """A token of the user with the service's access scope and, if the user holds it,
        the build scope (a token cannot carry scopes its owner lacks)."""
        sp = self.spawner
        access = f"access:services!service={sp.r2dservice_name}"
        wanted = [access] + ([sp.r2dservice_build_scope] if sp.r2dservice_build_scope else [])
        lifetime = max(60, int(sp.r2dservice_token_lifetime))
        for scopes in (wanted, [access]):
            try:
                self.token = sp.r2dservice_new_token(scopes, lifetime)
            except (ValueError, KeyError) as e:  # scopes the user lacks, or unknown ones
                self.log.debug("No token with %s for %s: %s", scopes, sp.user.name, e)
                continue
            self.may_build = sp.r2dservice_build_scope in scopes
            self.token_expires = time.monotonic() + lifetime - 30
            return
        raise R2DServiceSpawnError(
            f"{sp.user.name} may not use r2dservice: building images needs the scope "
            f"{access!r} (and {sp.r2dservice_build_scope!r} to start builds)."
        )

    def _revoke_token(self):
        if not self.token:
            return
        token, self.token = self.token, ""
        try:
            self.spawner.r2dservice_revoke_token(token)
        except Exception:  # it expires by itself
            self.log.exception(
                "Could not revoke the r2dservice token of %s", self.spawner._log_name
            )

    def _headers(self) -> dict:
        if not self.token or time.monotonic() > self.token_expires:
            self._revoke_token()
            self._make_token()
        return {"Authorization": f"token {self.token}"}

    # ----------------------------------------------------------- requests
    async def _api(self, method: str, path: str, body=None) -> tuple[int, dict]:
        headers = {**self._headers(), "Accept": "application/json"}
        if body is not None:
            headers["Content-Type"] = "application/json"
        req = HTTPRequest(
            self.url + path,
            method=method,
            headers=headers,
            body=json.dumps(body) if body is not None else None,
            connect_timeout=self.spawner.r2dservice_request_timeout,
            request_timeout=self.spawner.r2dservice_request_timeout,
        )
        try:
            resp = await self.client.fetch(req, raise_error=False)
        except (OSError, HTTPClientError) as e:  # refused, unreachable, timed out
            raise R2DServiceSpawnError(f"r2dservice at {self.url} does not answer: {e}") from None
        if resp.code == 599:
            raise R2DServiceSpawnError(f"r2dservice at {self.url} does not answer: {resp.error}")
        try:
            reply = json.loads(resp.body or b"{}")
        except ValueError:
            reply = {"message": (resp.body or b"").decode(errors="replace")[:500]}
        return resp.code, reply if isinstance(reply, dict) else {"message": str(reply)}

    async def run(self) -> str:
        sp = self.spawner
        try:
            build = await self._reattach()
            if build is None:
                build = await self._create()
            if build["state"] == "ready":
                sp._r2d_emit(_PHASE_PROGRESS["ready"], f"Image {build['image_name']} is ready.")
                self._forget_build()
                return build["image_name"]
            if build["state"] in ("failed", "cancelled"):
                self._forget_build()
                raise R2DServiceSpawnError(
                    self._failure(build.get("message") or "the build failed")
                )
            sp._r2d_build = {"id": build["id"], "spec": self.spec}
            sp._r2d_save_state()
            image = await self._follow(build)
            self._forget_build()
            return image
        finally:
            self._revoke_token()
            self.client.close()

    def _forget_build(self):
        if self.spawner._r2d_build:
            self.spawner._r2d_build = None
            self.spawner._r2d_save_state()

    async def _reattach(self) -> dict | None:
        known = self.spawner._r2d_build
        if not known or known.get("spec") != self.spec:
            if known:
                self._forget_build()
            return None
        status, reply = await self._api("GET", f"api/builds/{quote(known['id'], safe='')}")
        if status == 200 and reply.get("state") in ("queued", "running", "ready"):
            self.log.info(
                "Re-attaching %s to r2dservice build %s", self.spawner._log_name, known["id"]
            )
            self.spawner._r2d_emit(1, f"Re-attached to build {known['id']} of {self.spec}.")
            return reply
        self._forget_build()
        return None

    async def _create(self) -> dict:
        status, reply = await self._api("POST", "api/builds", {"spec": self.spec})
        if status in (200, 201):
            return reply
        message = reply.get("message") or f"HTTP {status}"
        if status == 403 and not self.may_build:
            message += (
                f" ({self.spawner.user.name} lacks the scope {self.spawner.r2dservice_build_scope!r}:"
                " only images that exist already can be used)"
            )
        raise R2DServiceSpawnError(f"r2dservice could not make the image of {self.spec}: {message}")

    def _failure(self, message: str) -> str:
        message = message.strip()
        detail = [line for line in self.recent if line and line not in message]
        text = f"Building the image of {self.spec} failed: {message}"
        if detail and "repo2docker" not in message.lower():
            text += "\n" + "\n".join(detail[-5:])
        return text

    # ----------------------------------------------------------- events
    def _on_event(self, event: dict):
        sp = self.spawner
        phase = event.get("phase") or ""
        message = str(event.get("message") or "").rstrip("\n")
        if phase == "building":
            self.building_lines += 1
            progress = min(39, _PHASE_PROGRESS["building"] + self.building_lines // 5)
        else:
            progress = _PHASE_PROGRESS.get(phase)
        if message:
            for line in message.splitlines()[-3:]:
                self.recent = (self.recent + [line.rstrip()])[-20:]
            sp._r2d_emit(progress, message)

    async def _follow(self, build: dict) -> str:
        """Follow api/builds/<id>/events to its last event, resuming with Last-Event-ID."""
        build_id = build["id"]
        last_id = ""
        failures = 0
        while True:
            remaining = self.deadline - time.monotonic()
            if remaining <= 0:
                await self._withdraw(build_id)
                raise R2DServiceSpawnError(
                    f"The image of {self.spec} was not ready within "
                    f"{self.spawner.r2dservice_build_timeout:g} seconds."
                )
            parser = SSEParser()
            final: list[dict] = []

            def on_chunk(chunk: bytes, parser=parser, final=final):
                for event_id, data in parser.feed(chunk):
                    nonlocal last_id
                    if event_id:
                        last_id = event_id
                    try:
                        event = json.loads(data)
                    except ValueError:
                        continue
                    self._on_event(event)
                    if event.get("phase") in ("ready", "failed"):
                        final.append(event)

            headers = {**self._headers(), "Accept": "text/event-stream"}
            if last_id:
                headers["Last-Event-ID"] = last_id
            req = HTTPRequest(
                f"{self.url}api/builds/{quote(build_id, safe='')}/events",
                headers=headers,
                streaming_callback=on_chunk,
                connect_timeout=self.spawner.r2dservice_request_timeout,
                request_timeout=remaining,
            )
            error = None
            try:
                resp = await self.client.fetch(req, raise_error=False)
                if resp.code == 599:
                    error = str(resp.error)
                elif resp.code != 200 and not final:
                    if resp.code == 404:
                        raise R2DServiceSpawnError(
                            f"r2dservice forgot build {build_id} of {self.spec}; start the server again."
                        )
                    if 400 <= resp.code < 500:
                        raise R2DServiceSpawnError(
                            f"r2dservice refused the events of build {build_id}: HTTP {resp.code}"
                        )
                    error = f"HTTP {resp.code}"
            except (OSError, HTTPClientError) as e:
                error = str(e)
            if final:
                event = final[-1]
                if event["phase"] == "ready":
                    return event.get("imageName") or event.get("image") or build["image_name"]
                raise R2DServiceSpawnError(
                    self._failure(event.get("message") or "the build failed")
                )
            failures = failures + 1 if error else 0
            self.log.warning(
                "Event stream of r2dservice build %s ended before its last event (%s); resuming after %s",
                build_id,
                error or "closed",
                last_id or "the start",
            )
            await asyncio.sleep(min(10, 0.5 * 2 ** min(failures, 5)))

    async def _withdraw(self, build_id: str):
        try:
            await self._api("POST", f"api/builds/{quote(build_id, safe='')}/cancel")
        except Exception:
            self.log.exception("Could not withdraw from build %s", build_id)


def _hub_service_url(name: str) -> str:
    """The internal URL of the hub's service `name` (in the hub process), else ""."""
    try:
        from jupyterhub.app import JupyterHub
    except ImportError:
        return ""
    if not JupyterHub.initialized():
        return ""
    service = JupyterHub.instance()._service_map.get(name)
    if service is None or not service.url:
        return ""
    return service.url.rstrip("/") + service.prefix


def __getattr__(name):
    # The ready-made spawners import their base (kubespawner, dockerspawner) when asked for.
    if name == "R2DKubeSpawner":
        from .spawners.kube import R2DKubeSpawner

        return R2DKubeSpawner
    if name == "R2DDockerSpawner":
        from .spawners.docker import R2DDockerSpawner

        return R2DDockerSpawner
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
