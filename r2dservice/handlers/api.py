"""The REST API under <prefix>api/: builds as resources, image lookup, providers."""
from __future__ import annotations

from tornado import web

from ..builds import BuildRejected
from ..spec import split_spec
from .base import BaseHandler
from .sse import last_event_id, start_sse, stream_build


from ..builds import FINISHED_STATES

STATES = ("queued", "running", *sorted(FINISHED_STATES))


class APIHandler(BaseHandler):
    def build_or_404(self, build_id: str):
        build = self.manager.get(build_id)
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
        if self.manager.get(build.id) is None:
            # An image found in the registry: no build ran, nothing to link to.
            d["links"] = {}
            return d
        d["links"] = {
            "self": f"{base}api/builds/{build.id}",
            "events": f"{base}api/builds/{build.id}/events",
            "log": f"{base}api/builds/{build.id}/log",
            "cancel": f"{base}api/builds/{build.id}/cancel",
        }
        return d


class BuildsHandler(APIHandler):
    def get(self):
        """List the builds the caller may see, newest first; ?state= filters."""
        states = set(self.get_query_arguments("state"))
        unknown = states.difference(STATES)
        if unknown:
            raise web.HTTPError(
                400, "Unknown state %s; use one of %s", ", ".join(sorted(unknown)), ", ".join(STATES)
            )
        builds = [
            b
            for b in self.manager.builds()
            if b.visible_to(self.caller) and (not states or b.state in states)
        ]
        builds.sort(key=lambda b: b.created, reverse=True)
        self.write_json({"builds": [self.build_json(b) for b in builds]})

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
        caller = self.caller
        try:
            build, outcome = await self.manager.submit(
                str(provider), spec, user=caller.name, may_build=caller.may_build
            )
        except BuildRejected as e:
            raise web.HTTPError(e.status, "%s", e.message) from None
        self.write_json(self.build_json(build), 201 if outcome == "new" else 200)


class BuildHandler(APIHandler):
    def get(self, build_id: str):
        self.write_json(self.build_json(self.build_or_404(build_id)))


class CancelHandler(APIHandler):
    def post(self, build_id: str):
        """An admin's cancel stops the build for everyone. Anyone else withdraws their own
        request: the build stops when nobody who asked for it still wants it, and goes
        on (200, `withdrawn: true`) for the others otherwise."""
        build = self.build_or_404(build_id)
        if build.done:
            raise web.HTTPError(409, "Build %s has already ended (%s).", build_id, build.state)
        caller = self.caller
        self.manager.cancel(build_id, by=caller.name, for_all=caller.is_admin)
        # A queued build is cancelled at once; a running one once its builder stops.
        stopping = bool(build.cancel_reason) and not build.done
        self.write_json(self.build_json(build), 202 if stopping else 200)


class EventsHandler(APIHandler):
    async def get(self, build_id: str):
        build = self.build_or_404(build_id)
        start_sse(self)
        await stream_build(self, build, last_event_id(self), self.settings["keepalive_interval"])


class LogHandler(APIHandler):
    def get(self, build_id: str):
        """The build's log as plain text (every event's message, in order)."""
        build = self.build_or_404(build_id)
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
