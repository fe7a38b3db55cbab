"""What every handler shares: the manager, the caller, JSON errors."""
from __future__ import annotations

import json

from tornado import web

from ..auth import ANONYMOUS_ADMIN, Caller


class BaseHandler(web.RequestHandler):
    @property
    def manager(self):
        return self.settings["build_manager"]

    @property
    def caller(self) -> Caller:
        return self.current_user or ANONYMOUS_ADMIN

    def get_current_user(self):
        auth = self.settings.get("authenticator")
        return auth.caller_for(self) if auth else None

    def write_json(self, data, status: int = 200) -> None:
        self.set_status(status)
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps(data))

    def write_error(self, status_code: int, **kwargs) -> None:
        """JSON errors with a message a person can act on, never a traceback."""
        message = self._reason
        exc = kwargs.get("exc_info", (None, None, None))[1]
        if isinstance(exc, web.HTTPError) and exc.log_message:
            message = exc.log_message % exc.args if exc.args else exc.log_message
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps({"status": status_code, "message": message}))

    def raw_spec(self, route: str, provider: str) -> str:
        """The spec as sent, still URL-escaped: tornado unescapes path arguments,
        which would turn a git/ or gl/ spec's escaped slashes into real ones."""
        path = self.request.path
        marker = f"{self.settings['base_url']}{route}/{provider}/"
        return path[len(marker):] if path.startswith(marker) else path.rsplit(provider + "/", 1)[-1]

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
