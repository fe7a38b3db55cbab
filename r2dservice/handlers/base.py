"""What every handler shares: the manager, the caller, JSON errors, templates."""

from __future__ import annotations

import json
import logging

from jupyterhub.services.auth import HubOAuthenticated
from tornado import web

from ..auth import ANONYMOUS_ADMIN, Caller, HubUnavailable
from ..builds import BuildRejected
from ..events import encode_sse, failed
from ..spec import redact
from .sse import OUTSIDE_BUILD, start_sse

# A caller the hub did not identify (only ever seen with auth on).
NOBODY = Caller(name="", may_use=False, may_build=False, is_admin=False)


class BaseHandler(HubOAuthenticated, web.RequestHandler):
    """Every route's base. With auth on, `prepare` identifies the caller once
    (asynchronously, through the authenticator) and refuses those who may not
    use the service, each kind of route in its own way (`login`):

    - "api": 403/503 with a JSON message, never a redirect;
    - "stream": the same status and one `failed` event (BinderHub clients read it);
    - "page": a redirect to the hub's OAuth login;
    - "optional": identify the caller if there are credentials, refuse nobody;
    - None: no authentication at all (health, versions, metrics).

    JupyterHub's HubOAuthenticated mixin brings the login redirect (OAuth state,
    PKCE) and the XSRF rules of JupyterHub >= 4 for cookie-authenticated requests.
    A subclass that needs its own `prepare` must `await super().prepare()` first.
    """

    login: str | None = "api"

    @property
    def manager(self):
        return self.settings["build_manager"]

    @property
    def authenticator(self):
        return self.settings.get("authenticator")

    @property
    def hub_auth(self):
        return self.authenticator.hub_auth

    @property
    def caller(self) -> Caller:
        if self.authenticator is None:
            return ANONYMOUS_ADMIN
        return self.current_user or NOBODY

    def get_current_user(self):
        # Set by prepare(); never the mixin's blocking hub request.
        return None

    async def prepare(self):
        auth = self.authenticator
        if auth is None or self.login is None:
            return
        try:
            self.current_user = await auth.caller_for(self)
        except HubUnavailable as e:
            return await self.refuse(503, e.message)
        if self.login == "optional":
            return
        caller = self.current_user
        if caller is None:
            if self.login == "page" and self.request.method in ("GET", "HEAD"):
                return self.redirect(self.get_login_url())
            return await self.refuse(403, auth.unauthenticated_message(self))
        if not caller.may_use:
            return await self.refuse(403, auth.forbidden_message(caller))

    async def submit(self, provider: str, spec: str):
        """(build, outcome) of the caller's request for an image; a refusal is an HTTP
        error with its message. An image found is remembered like a build, so that it is
        a resource like any other: readable by id, listed."""
        caller = self.caller
        try:
            build, outcome = await self.manager.submit(
                provider,
                spec,
                user=caller.name,
                may_build=caller.may_build,
                is_admin=caller.is_admin,
            )
        except BuildRejected as e:
            raise web.HTTPError(e.status, "%s", e.message) from None
        if outcome == "cached":
            self.manager.remember(build)
        return build, outcome

    async def refuse(self, status: int, message: str):
        """End the request with `status` and `message`, the way this route answers."""
        if self.login == "stream":
            self.set_status(status)
            start_sse(self)
            await self.finish(encode_sse(failed(message, status=status), OUTSIDE_BUILD))
            return
        raise web.HTTPError(status, "%s", message)

    # JupyterHub's XSRF handling needs the hub; without auth, tornado's own.
    @property
    def xsrf_token(self):
        if self.authenticator is None:
            return web.RequestHandler.xsrf_token.fget(self)
        return HubOAuthenticated.xsrf_token.fget(self)

    def check_xsrf_cookie(self):
        if self.authenticator is not None:
            self.authenticator.check_xsrf(self)

    def get_login_url(self):
        if self.authenticator is None:
            return web.RequestHandler.get_login_url(self)
        return HubOAuthenticated.get_login_url(self)

    def decode_argument(self, value: bytes, name: str | None = None) -> str:
        # The handlers read provider and spec from the raw path (raw_spec) and the spec
        # parser explains bad escapes; tornado's bare "Invalid unicode" 400 would not.
        if name in ("provider", "spec"):
            return value.decode("utf-8", errors="replace")
        return super().decode_argument(value, name)

    def write_json(self, data, status: int = 200) -> None:
        self.set_status(status)
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps(data))

    def error_message(self, status_code: int, **kwargs) -> str:
        message = self._reason
        exc = kwargs.get("exc_info", (None, None, None))[1]
        if isinstance(exc, web.HTTPError) and exc.log_message:
            message = exc.log_message % exc.args if exc.args else exc.log_message
        # A message may quote the request path, whose git spec may carry credentials.
        return redact(message)

    def _request_summary(self) -> str:
        # tornado's summary (in its warnings and tracebacks) has the raw request URI.
        r = self.request
        return f"{r.method} {redact(r.uri or '')} ({r.remote_ip})"

    def log_exception(self, typ, value, tb) -> None:
        """tornado's, without the request's unredacted URI (its repr of the request)."""
        if isinstance(value, web.HTTPError):
            if value.log_message:
                message = value.log_message % value.args if value.args else value.log_message
                logging.getLogger("tornado.general").warning(
                    "%d %s: %s", value.status_code, self._request_summary(), redact(message)
                )
            return
        logging.getLogger("tornado.application").error(
            "Uncaught exception %s", self._request_summary(), exc_info=(typ, value, tb)
        )

    def write_error(self, status_code: int, **kwargs) -> None:
        """JSON errors with a message a person can act on, never a traceback."""
        if status_code == 405:
            self.set_header("Allow", ", ".join(self.allowed_methods()))
        self.set_header("Content-Type", "application/json")
        self.finish(
            json.dumps(
                {"status": status_code, "message": self.error_message(status_code, **kwargs)}
            )
        )

    def allowed_methods(self) -> list[str]:
        """The methods this handler implements (for 405's Allow header)."""
        return [
            m
            for m in self.SUPPORTED_METHODS
            if getattr(type(self), m.lower()) is not getattr(web.RequestHandler, m.lower())
        ]

    def render_template(self, name: str, **ns) -> None:
        env = self.settings["jinja2_env"]
        ns.setdefault("base_url", self.settings["base_url"])
        ns.setdefault(
            "hub_prefix", self.authenticator.hub_auth.hub_prefix if self.authenticator else ""
        )
        ns.setdefault(
            "caller", self.caller if self.authenticator is None or self.current_user else None
        )
        ns.setdefault("auth_enabled", self.authenticator is not None)
        self.finish(env.get_template(name).render(**ns))

    def raw_spec(self, route: str, provider: str) -> str:
        """The spec as sent, still URL-escaped: tornado unescapes path arguments,
        which would turn a git/ or gl/ spec's escaped slashes into real ones."""
        path = self.request.path
        marker = f"{self.settings['base_url']}{route}/{provider}/"
        return (
            path[len(marker) :] if path.startswith(marker) else path.rsplit(provider + "/", 1)[-1]
        )

    def json_body(self) -> dict:
        if not self.request.body:
            return {}
        try:
            body = json.loads(self.request.body)
        except ValueError as e:
            raise web.HTTPError(400, "Request body is not valid JSON: %s", e) from None
        if not isinstance(body, dict):
            raise web.HTTPError(400, "Request body must be a JSON object")
        return body


class PageHandler(BaseHandler):
    """HTML pages: a login redirect for strangers, HTML error pages."""

    login = "page"

    def write_error(self, status_code: int, **kwargs) -> None:
        self.set_header("Content-Type", "text/html; charset=utf-8")
        self.render_template(
            "error.html", status=status_code, message=self.error_message(status_code, **kwargs)
        )


class NotFoundHandler(PageHandler):
    """Any path no route matches (tornado's default_handler_class): under build/ one
    `failed` event, as BinderHub clients read; elsewhere the HTML error page."""

    login = None

    def prepare(self):
        raise web.HTTPError(404, "Nothing here: %s", self.request.path)

    def write_error(self, status_code: int, **kwargs) -> None:
        if self.request.path.startswith(f"{self.settings['base_url']}build"):
            message = (
                f"{self.error_message(status_code, **kwargs)}. The event stream is "
                "build/<provider>/<spec>, for example build/gh/binder-examples/requirements/HEAD"
            )
            start_sse(self)
            self.finish(encode_sse(failed(message, status=status_code), OUTSIDE_BUILD))
            return
        super().write_error(status_code, **kwargs)
