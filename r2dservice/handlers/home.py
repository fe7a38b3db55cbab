"""<prefix>: the landing page (who you are, what you may do, the build form)."""

from __future__ import annotations

from .pages import PagesHandler


class HomeHandler(PagesHandler):
    def get(self):
        self.page("home.html", active="home")
