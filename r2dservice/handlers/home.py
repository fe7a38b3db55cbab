"""<prefix>: the landing page (who you are, what you may do, the build form)."""

from __future__ import annotations

from .base import PageHandler


class HomeHandler(PageHandler):
    def get(self):
        self.render_template(
            "home.html",
            xsrf=self.xsrf_token.decode("ascii"),
            active="home",
            page_path=self.request.path,
        )
