"""<prefix>oauth_callback: the end of the OAuth login through JupyterHub."""

from __future__ import annotations

from jupyterhub.services.auth import HubOAuthCallbackHandler

from .base import PageHandler


class OAuthCallbackHandler(PageHandler, HubOAuthCallbackHandler):
    """JupyterHub's own callback (state and PKCE checks, code -> token, cookie),
    with our non-blocking caller lookup and HTML error pages."""

    # A stale callback from someone already logged in is fine; nobody is refused here.
    login = "optional"
