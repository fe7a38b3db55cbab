"""GET <prefix>build/<provider>/<spec>: BinderHub's event stream."""

from __future__ import annotations

from ..builds import BuildRejected
from ..events import encode_sse, failed
from .base import BaseHandler
from .launch import can_launch, stream_launch
from .limits import TooManyStreams
from .sse import OUTSIDE_BUILD, last_event_id, send_event, start_sse, stream_build


class BuildStreamHandler(BaseHandler):
    """Builds (or finds) the image and streams the build's events.

    As BinderHub: without `build_only=true`, a caller who may start their own servers
    gets the image launched in one of them (`launching` events, then `ready` with its
    `url`); everyone else gets the image (`ready` with `imageName`), as with build_only.
    Every problem is a `failed` event, as BinderHub clients expect.
    """

    login = "stream"  # refusals are `failed` events too

    async def get(self, provider: str, spec: str):
        spec = self.raw_spec("build", provider)
        caller = self.caller  # prepare() has refused those who may not use the service
        try:
            with self.settings["stream_limits"].stream(caller.name):
                start_sse(self)
                await self._stream(provider, spec, caller)
        except TooManyStreams as e:
            # before any build is requested: a user at the limit queues nothing more
            self.set_status(429)
            start_sse(self)
            await send_event(self, failed(e.message, status=429), OUTSIDE_BUILD)

    async def _stream(self, provider: str, spec: str, caller) -> None:
        after = last_event_id(self)
        launch = self.get_query_argument("build_only", "").lower() != "true" and can_launch(self)
        try:
            # A reconnect (Last-Event-ID) resumes the build it watched, even one that failed.
            build = await self.manager.request(
                provider,
                spec,
                user=caller.name,
                may_build=caller.may_build,
                resume_after=after,
                is_admin=caller.is_admin,
            )
        except BuildRejected as e:
            await send_event(self, failed(e.message, status=e.status), OUTSIDE_BUILD)
            return
        keepalive = self.settings["keepalive_interval"]
        idle = self.settings["stream_idle_timeout"]
        if await stream_build(self, build, after, keepalive, launch, idle) and launch:
            if build.state == "ready":
                await stream_launch(self, build)

    def write_error(self, status_code: int, **kwargs) -> None:
        """Whatever fails before the stream begins (a malformed query argument, a bug)
        is one `failed` event too, never tornado's JSON or HTML. A method other than
        GET is no stream: its 405 stays the JSON answer with `Allow`."""
        if status_code == 405:
            return super().write_error(status_code, **kwargs)
        start_sse(self)
        message = self.error_message(status_code, **kwargs)
        self.finish(encode_sse(failed(message, status=status_code), OUTSIDE_BUILD))
