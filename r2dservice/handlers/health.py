"""Health and versions: reachable without login."""

from __future__ import annotations

import sys

import tornado

from .._version import __version__
from .base import BaseHandler


class HealthHandler(BaseHandler):
    def check_xsrf_cookie(self):
        pass

    login = None  # reachable without a login

    async def get(self):
        """200 while the service can answer; 503 with the failing check otherwise.
        A check marked `critical: false` shows trouble without failing the whole."""
        checks = await self.settings["health_checks"]()
        ok = all(c["ok"] for c in checks if c.get("critical", True))
        self.write_json({"ok": ok, "checks": checks}, 200 if ok else 503)

    head = get


class VersionsHandler(BaseHandler):
    login = None  # reachable without a login

    def get(self):
        import repo2docker

        self.write_json(
            {
                "r2dservice": __version__,
                "builder": self.settings["builder_info"],
                "repo2docker": repo2docker.__version__,
                "python": sys.version.split()[0],
                "tornado": tornado.version,
            }
        )
