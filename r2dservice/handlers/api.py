"""The REST API under <prefix>api/: builds as resources, image lookup, providers.

Builds come from the history (records.Records, or MemoryHistory without a store):
live ones from memory, finished and older ones from the build records, alike.
"""

from __future__ import annotations

import datetime
from urllib.parse import urlencode

from tornado import web

from ..builds import FINISHED_STATES, BuildRejected
from ..spec import split_spec
from ..store import StoreUnavailable
from .base import BaseHandler
from .limits import TooManyStreams
from .sse import last_event_id, start_sse, stream_build, stream_remote

STATES = ("queued", "running", *sorted(FINISHED_STATES))
MAX_PAGE = 200


def parse_time(name: str, value: str) -> float:
    """Epoch seconds, or an ISO 8601 date/time (UTC unless it says otherwise)."""
    try:
        return float(value)
    except ValueError:
        pass
    try:
        t = datetime.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise web.HTTPError(
            400,
            "%s=%s is neither epoch seconds nor an ISO 8601 time (2026-01-31T12:00:00Z)",
            name,
            value,
        ) from None
    if t.tzinfo is None:
        t = t.replace(tzinfo=datetime.timezone.utc)
    return t.timestamp()


def unavailable(e: StoreUnavailable) -> web.HTTPError:
    message = e.message[:1].upper() + e.message[1:]
    return web.HTTPError(503, "%s; try again in a few minutes.", message.rstrip("."))


class APIHandler(BaseHandler):
    @property
    def history(self):
        return self.settings["history"]

    async def build_or_404(self, build_id: str, *, with_log: bool = False):
        try:
            build = await self.history.get(build_id)
            if build is not None and with_log:
                build = await self.history.load_log(build)
        except StoreUnavailable as e:
            raise unavailable(e) from None
        if build is None or not build.visible_to(self.caller):
            raise web.HTTPError(404, "No build with id %s", build_id)
        return build

    def build_json(self, build) -> dict:
        d = build.summary()
        caller = self.caller
        if not caller.is_admin:
            # A build is shared by everyone who asked for it; each sees only themselves.
            d["user"] = caller.name
            d["requested_by"] = [caller.name]
            if d["cancelled_by"] != caller.name:
                d["cancelled_by"] = None
        d["withdrawn"] = caller.name in build.withdrawn
        base = self.settings["base_url"]
        d["links"] = {
            "self": f"{base}api/builds/{build.id}",
            "events": f"{base}api/builds/{build.id}/events",
            "log": f"{base}api/builds/{build.id}/log",
            "cancel": f"{base}api/builds/{build.id}/cancel",
            "launch": f"{base}api/builds/{build.id}/launch",
        }
        return d


class BuildsHandler(APIHandler):
    def filters(self) -> dict:
        """The query's filters, checked; `user` narrowed to the caller unless admin."""
        states = set(self.get_query_arguments("state"))
        unknown = states.difference(STATES)
        if unknown:
            raise web.HTTPError(
                400,
                "Unknown state %s; use one of %s",
                ", ".join(sorted(unknown)),
                ", ".join(STATES),
            )
        caller = self.caller
        user = self.get_query_argument("user", None)
        if not caller.is_admin:
            if user not in (None, caller.name):
                raise web.HTTPError(403, "Only admins may list other users' builds.")
            user = caller.name
        try:
            limit = int(self.get_query_argument("limit", "50"))
        except ValueError:
            limit = 0
        if not 1 <= limit <= MAX_PAGE:
            raise web.HTTPError(400, "limit must be a whole number from 1 to %d", MAX_PAGE)
        since, until = (self.get_query_argument(k, None) for k in ("since", "until"))
        return {
            "user": user,
            "states": states,
            "spec": self.get_query_argument("spec", ""),
            "image": self.get_query_argument("image", ""),
            "since": parse_time("since", since) if since else None,
            "until": parse_time("until", until) if until else None,
            "cursor": self.get_query_argument("cursor", None),
            "limit": limit,
        }

    async def get(self):
        """The builds the caller may see, newest first, a page at a time."""
        filters = self.filters()
        try:
            builds, cursor = await self.history.list(**filters)
        except StoreUnavailable as e:
            raise unavailable(e) from None
        except ValueError as e:  # a cursor that is not one of ours
            raise web.HTTPError(400, "%s", e) from None
        next_url = None
        if cursor:
            args = [(k, v.decode()) for k, vs in self.request.query_arguments.items() for v in vs]
            query = urlencode([*(a for a in args if a[0] != "cursor"), ("cursor", cursor)])
            next_url = f"{self.settings['base_url']}api/builds?{query}"
        self.write_json(
            {"builds": [self.build_json(b) for b in builds], "next": next_url, "cursor": cursor}
        )

    async def post(self):
        """Start a build, or join the running build of the same image.

        Body: {"spec": "gh/owner/repo/ref"} or {"provider": "gh", "spec": "owner/repo/ref"}.
        201 for a new build, 200 for one joined or an image that exists.
        """
        body = self.json_body()
        spec = body.get("spec")
        if not isinstance(spec, str) or not spec:
            raise web.HTTPError(400, 'Give the repository as {"spec": "gh/<owner>/<repo>/<ref>"}')
        provider = body.get("provider")
        if provider is None:
            try:
                provider, spec = split_spec(spec)
            except ValueError as e:
                raise web.HTTPError(400, "%s", e) from None
        build, outcome = await self.submit(str(provider), spec)
        self.write_json(self.build_json(build), 201 if outcome == "new" else 200)


class BuildHandler(APIHandler):
    async def get(self, build_id: str):
        self.write_json(self.build_json(await self.build_or_404(build_id)))


class CancelHandler(APIHandler):
    async def post(self, build_id: str):
        """An admin's cancel stops the build for everyone. Anyone else withdraws their own
        request: the build stops when nobody who asked for it still wants it, and goes
        on (200, `withdrawn: true`) for the others otherwise."""
        build = await self.build_or_404(build_id)
        if build.done:
            raise web.HTTPError(409, "Build %s has already ended (%s).", build_id, build.state)
        if self.manager.get(build_id) is None:
            raise web.HTTPError(
                409,
                "Build %s runs in another replica of this service; cancel it through that one "
                "(or after it has adopted the build).",
                build_id,
            )
        caller = self.caller
        self.manager.cancel(build_id, by=caller.name, for_all=caller.is_admin)
        # A queued build is cancelled at once; a running one once its builder stops.
        stopping = bool(build.cancel_reason) and not build.done
        self.write_json(self.build_json(build), 202 if stopping else 200)


class EventsHandler(APIHandler):
    async def get(self, build_id: str):
        build = await self.build_or_404(build_id, with_log=True)
        try:
            with self.settings["stream_limits"].stream(self.caller.name):
                start_sse(self)
                keepalive = self.settings["keepalive_interval"]
                if build.remote:
                    await stream_remote(self, self.history, build, last_event_id(self), keepalive)
                else:
                    idle = self.settings["stream_idle_timeout"]
                    await stream_build(self, build, last_event_id(self), keepalive, idle=idle)
        except TooManyStreams as e:
            raise web.HTTPError(429, "%s", e.message) from None


class LogHandler(APIHandler):
    async def get(self, build_id: str):
        """The build's log as plain text (every event's message, in order)."""
        build = await self.build_or_404(build_id, with_log=True)
        self.set_header("Content-Type", "text/plain; charset=utf-8")
        self.finish(build.log.text())


class ImageHandler(APIHandler):
    async def get(self, provider: str, spec: str):
        """What image a spec gives and whether it exists, without building."""
        spec = self.raw_spec("api/images", provider)
        try:
            self.write_json(await self.manager.lookup(provider, spec))
        except BuildRejected as e:
            raise web.HTTPError(e.status, "%s", e.message) from None


class RepoProvidersHandler(BaseHandler):
    login = None  # public, as BinderHub's is: UIs read it before anyone logs in

    def get(self):
        self.write_json(self.manager.resolver.describe())


class NotFoundHandler(APIHandler):
    """Any other path under api/: a JSON 404 rather than tornado's HTML page."""

    login = None

    def prepare(self):
        raise web.HTTPError(404, "No such API route: %s", self.request.path)
