"""Who is calling and what they may do.

Handlers take the caller from one place, `BaseHandler.caller`. Without auth
(c.R2DService.auth_enabled = False) everyone is an anonymous administrator.

With auth, `R2DServiceAuth` asks JupyterHub through its own `HubOAuth`: a token in
`Authorization: Bearer|token <token>`, else the OAuth cookie set after a browser
login (with JupyterHub's XSRF rules for cookie-authenticated requests). The hub's
answers are cached for `c.HubOAuth.cache_max_age` seconds. Permissions come from
the scopes of the token, as the hub reports them in the user model:

- ``access:services!service=<name>``: use the service at all;
- ``custom:r2dservice:build`` (`build_scope`): start new builds; without it a
  caller still gets images that already exist;
- ``custom:r2dservice:admin`` (`admin_scope`): see and cancel everyone's builds.
"""

from __future__ import annotations

import asyncio
import os
import secrets
from dataclasses import dataclass, field

from tornado import web
from traitlets import Float, Unicode, default
from traitlets.config import LoggingConfigurable


@dataclass(frozen=True)
class Caller:
    name: str  # "" for anonymous
    may_use: bool = True  # access:services!service=<name>
    may_build: bool = True  # start new builds
    is_admin: bool = True  # see and cancel everyone's builds
    scopes: frozenset = field(default_factory=frozenset)
    kind: str = "user"  # or "service"


ANONYMOUS_ADMIN = Caller(name="")


class HubUnavailable(Exception):
    """JupyterHub could not check a credential (down, slow, misconfigured): 503."""

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


# What the hub needs to know about us, and where each value comes from.
ENV_HELP = {
    "JUPYTERHUB_SERVICE_NAME": "c.R2DServiceAuth.service_name",
    "JUPYTERHUB_API_TOKEN": "c.HubOAuth.api_token",
    "JUPYTERHUB_API_URL": "c.HubOAuth.api_url",
}


class R2DServiceAuth(LoggingConfigurable):
    """Authentication and permissions through JupyterHub (OAuth, API tokens, scopes)."""

    service_name = Unicode(
        help="""The service's name in the hub's c.JupyterHub.services
        (default: $JUPYTERHUB_SERVICE_NAME, which the hub sets for a managed service).
        Users need the scope access:services!service=<name>.""",
    ).tag(config=True)

    @default("service_name")
    def _service_name_default(self):
        return os.environ.get("JUPYTERHUB_SERVICE_NAME", "")

    build_scope = Unicode(
        "custom:r2dservice:build",
        help="""The scope a caller needs to start new builds (define it in the hub's
        c.JupyterHub.custom_scopes and list it in the service's
        oauth_client_allowed_scopes). Callers without it still get images that
        already exist. Empty: everyone who may use the service may build.""",
    ).tag(config=True)
    admin_scope = Unicode(
        "custom:r2dservice:admin",
        help="""The scope that lets a caller see and cancel everyone's builds.
        Empty: nobody is an administrator.""",
    ).tag(config=True)
    hub_timeout = Float(
        10,
        help="""Seconds to wait for the hub to check a token. A hub that does not
        answer in time gets a 503 with a message, not a hung request.""",
    ).tag(config=True)
    cookie_secret = Unicode(
        help="""Secret (64 hex digits) that signs the login and XSRF cookies. Default:
        $R2DSERVICE_COOKIE_SECRET, else random per process (browsers then log in
        again, silently through the hub, after a restart). Set it when several
        replicas serve the same users.""",
    ).tag(config=True)

    @default("cookie_secret")
    def _cookie_secret_default(self):
        return os.environ.get("R2DSERVICE_COOKIE_SECRET") or secrets.token_hex(32)

    def __init__(self, base_url: str = "/", **kwargs):
        super().__init__(**kwargs)
        self.base_url = base_url
        self._hub_auth = None

    # --- setup -------------------------------------------------------------
    def _configured(self, name: str) -> bool:
        return any(name in self.config.get(section, {}) for section in ("HubAuth", "HubOAuth"))

    def missing_settings(self) -> list[str]:
        """What the hub must tell us and nobody did; empty when all is there."""
        missing = []
        for env, trait in ENV_HELP.items():
            if env == "JUPYTERHUB_SERVICE_NAME":
                present = bool(self.service_name)
            else:
                present = bool(os.environ.get(env)) or self._configured(trait.rsplit(".", 1)[1])
            if not present:
                missing.append(f"{env} (or {trait})")
        return missing

    @property
    def hub_auth(self):
        """JupyterHub's HubOAuth, configured from the JUPYTERHUB_* environment
        (or c.HubOAuth.*), with r2dservice's defaults where the hub gave none."""
        if self._hub_auth is None:
            from jupyterhub.services.auth import HubOAuth

            kwargs = {"base_url": self.base_url}
            if not os.environ.get("JUPYTERHUB_CLIENT_ID") and not self._configured(
                "oauth_client_id"
            ):
                kwargs["oauth_client_id"] = f"service-{self.service_name}"  # the hub's default
            if not (
                os.environ.get("JUPYTERHUB_OAUTH_ACCESS_SCOPES")
                or os.environ.get("JUPYTERHUB_OAUTH_SCOPES")
                or self._configured("access_scopes")
            ):
                kwargs["access_scopes"] = {f"access:services!service={self.service_name}"}
            if not self._configured("cache_max_age"):
                # HubOAuth's 300 s would let a revoked token work for five minutes.
                kwargs["cache_max_age"] = 60
            self._hub_auth = HubOAuth(parent=self, log=self.log, **kwargs)
        return self._hub_auth

    @property
    def access_scopes(self) -> set[str]:
        return set(self.hub_auth.access_scopes)

    def describe(self) -> str:
        a = self.hub_auth
        return (
            f"JupyterHub service {self.service_name!r}: hub API {a.api_url}, OAuth client "
            f"{a.oauth_client_id}, callback {a.oauth_redirect_uri}, access scopes "
            f"{sorted(a.access_scopes)}, build scope {self.build_scope or '(none needed)'}, "
            f"admin scope {self.admin_scope or '(nobody)'}"
        )

    async def close(self) -> None:
        """Close HubOAuth's HTTP client session (JupyterHub >= 6 has one)."""
        try:
            from jupyterhub.httpclient import JupyterHubHTTPClient
        except ImportError:
            return
        if JupyterHubHTTPClient.initialized():
            await JupyterHubHTTPClient.loop_instance().close()

    # --- per request -------------------------------------------------------
    async def caller_for(self, handler) -> Caller | None:
        """The caller of a request, or None when it carries no valid credential.

        Raises HubUnavailable when the hub cannot answer.
        """
        try:
            model = await asyncio.wait_for(
                self.hub_auth.get_user(handler, sync=False), self.hub_timeout
            )
        except asyncio.TimeoutError:
            raise HubUnavailable(
                f"JupyterHub did not answer within {self.hub_timeout:g} s to check your "
                "credentials; try again in a moment."
            ) from None
        except web.HTTPError as e:
            # HubOAuth turns a hub it cannot reach or that errs into a 500 or 502.
            if e.status_code < 500:
                raise
            self.log.warning("Token check with JupyterHub failed: %s", e.log_message)
            # HubOAuth's first sentence says what failed; the rest is advice for hub admins.
            reason = (e.log_message or "error").split(".  ")[0].rstrip(".")
            raise HubUnavailable(
                f"Could not check your credentials with JupyterHub ({reason}); "
                "try again in a moment."
            ) from None
        if not model:
            return None
        return self.caller_from_model(model)

    def caller_from_model(self, model: dict) -> Caller:
        has = self.hub_auth.check_scopes
        may_use = bool(has(self.hub_auth.access_scopes, model))
        may_build = may_use and (not self.build_scope or bool(has({self.build_scope}, model)))
        is_admin = may_use and bool(self.admin_scope) and bool(has({self.admin_scope}, model))
        kind = model.get("kind", "user")
        # A service's builds must not look like a user's of the same name.
        name = model["name"] if kind == "user" else f"{kind}:{model['name']}"
        return Caller(
            name=name,
            may_use=may_use,
            may_build=may_build,
            is_admin=is_admin,
            scopes=frozenset(model.get("scopes", ())),
            kind=kind,
        )

    def check_xsrf(self, handler) -> None:
        """JupyterHub's XSRF rule: cookie-authenticated requests that are not plain
        page loads need the `_xsrf` token; token-authenticated ones do not."""
        self.hub_auth.check_xsrf_cookie(handler)

    def unauthenticated_message(self, handler) -> str:
        """Why a request has no caller, in words that say what to do."""
        from jupyterhub._xsrf_utils import _needs_check_xsrf

        auth_header = handler.request.headers.get("Authorization", "")
        if self.hub_auth.auth_header_pat.match(auth_header):
            return (
                "JupyterHub does not accept this token (unknown, expired or revoked). "
                "Get a new one on the hub's token page."
            )
        if auth_header:
            return "Send the token as 'Authorization: Bearer <token>' or 'Authorization: token <token>'."
        if handler.get_cookie(self.hub_auth.cookie_name):
            if _needs_check_xsrf(handler):
                try:
                    handler.check_xsrf_cookie()
                except web.HTTPError as e:
                    return (
                        f"XSRF check failed ({e.log_message}): cookie-authenticated requests "
                        "from scripts need the value of the _xsrf cookie in an X-XSRFToken "
                        "header (or an _xsrf argument); or use Authorization: Bearer <token>."
                    )
            return "Your login has expired: reload the page to log in again."
        return (
            "Authentication required: log in through JupyterHub, or send "
            "'Authorization: Bearer <token>' with a JupyterHub API token that has the "
            f"scope {' or '.join(sorted(self.access_scopes))}."
        )

    def forbidden_message(self, caller: Caller) -> str:
        return (
            f"{caller.name} may not use this service: it needs the JupyterHub scope "
            f"{' or '.join(sorted(self.access_scopes))}."
        )
