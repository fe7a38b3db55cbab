"""Launching a ready image in the caller's own server: `POST api/builds/<id>/launch`, and
the end of BinderHub's event stream without build_only (launch.py does the work)."""

from __future__ import annotations

from tornado import web
from tornado.iostream import StreamClosedError

from ..events import Event, failed
from ..launch import LaunchError, launch_path, launch_spec, may_launch
from .api import APIHandler
from .sse import send_event, with_keepalives

PATH_ARGUMENTS = ("urlpath", "labpath", "filepath")


def launcher_for(handler):
    """The service's Launcher, or None: launching off, or no hub (auth off)."""
    launcher = handler.settings.get("launcher")
    return launcher if launcher is not None and launcher.enabled else None


def can_launch(handler) -> bool:
    caller = handler.caller
    return (
        launcher_for(handler) is not None
        and caller.kind == "user"
        and may_launch(caller.scopes, caller.name)
    )


def requested_spec(build) -> str:
    """The spec as it was asked for: a provider's high_quota_specs match it."""
    return f"{build.request.provider}/{build.request.spec}"


def caller_token(handler) -> str:
    return handler.hub_auth.get_token(handler) or ""


def public_origin(handler) -> str:
    """https://hub.example.org: the configured public URL, else the one the request
    came by through the proxy."""
    configured = launcher_for(handler).public_url.rstrip("/")
    if configured:
        return configured
    return f"{handler.request.protocol}://{handler.request.host}"


class LaunchHandler(APIHandler):
    async def post(self, build_id: str):
        """Start the caller's server on a ready image. Body (all optional): `urlpath`,
        `labpath` or `filepath` (where to open it, as in v2/ links), and `replace`: stop
        a server of the caller's that runs another image in the way. 200 with the
        running server, 202 while it starts; 409 when a server of theirs is in the way."""
        if launcher_for(self) is None:
            raise web.HTTPError(
                403, "This service does not launch servers (c.Launcher.enabled is False)."
            )
        # Whose build it is comes first: someone else's is a 404, whatever they may do.
        build = await self.build_or_404(build_id, with_log=True)
        caller = self.caller
        if not can_launch(self):
            raise web.HTTPError(
                403,
                "%s",
                f"{caller.name or 'This caller'} may not start servers through this service: "
                f'that needs a JupyterHub token with the scope "servers" for {caller.name or "a user"}.',
            )
        body = self.json_body()
        paths = {k: body.get(k, "") for k in PATH_ARGUMENTS}
        if not all(isinstance(v, str) for v in paths.values()):
            raise web.HTTPError(400, "urlpath, labpath and filepath must be strings")
        if not isinstance(body.get("replace", False), bool):
            raise web.HTTPError(400, "replace must be true or false")
        if build.state != "ready":
            raise web.HTTPError(
                409, "Build %s is %s: only a ready image can be launched.", build_id, build.state
            )
        try:
            launched = await launcher_for(self).launch(
                caller.name,
                caller_token(self),
                launch_spec(build),
                path=launch_path(**paths),
                replace=body.get("replace", False),
                requested=requested_spec(build),
            )
        except LaunchError as e:
            self.set_status(e.status)
            self.set_header("Content-Type", "application/json")
            self.finish({"status": e.status, "message": e.message, **e.details})
            return
        self.write_json(
            {**launched.to_json(), "build_id": build.id, "image_name": build.image_name},
            200 if launched.ready else 202,
        )


async def stream_launch(handler, build) -> None:
    """After a stream's `built`: `launching` events while the caller's server starts,
    then BinderHub's last `ready`, with the server's `url`; or `failed` with the reason.
    `token` is empty: the browser's hub login opens the server, not a token in a URL."""
    launcher = launcher_for(handler)
    caller = handler.caller
    try:
        await send_event(handler, Event("launching", "Launching server...\n"))
        launched = await launcher.launch(
            caller.name, caller_token(handler), launch_spec(build), requested=requested_spec(build)
        )
        if launched.reused:
            await send_event(
                handler, Event("launching", f"Your server {launched.url} runs this image.\n")
            )
        following = launcher.follow(caller_token(handler), launched)
        keepalive = handler.settings["keepalive_interval"]
        async for progress, message in with_keepalives(handler, following, keepalive):
            if message:
                extra = {"server_progress": progress} if isinstance(progress, int) else {}
                await send_event(handler, Event("launching", message.rstrip("\n") + "\n", extra))
        url = public_origin(handler) + launched.url
        base = public_origin(handler) + handler.settings["base_url"]
        ready = {
            **build.ready_event_fields(),
            "url": url,
            "token": "",
            "binder_launch_host": base,
            "server_name": launched.server_name,
        }
        await send_event(handler, Event("ready", f"server running at {url}\n", ready))
    except LaunchError as e:
        await send_event(handler, failed(e.message, status=e.status, **e.details))
    except StreamClosedError:
        return
