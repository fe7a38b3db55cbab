"""The web pages besides home: a build's live view, the builds list, a v2 link's landing
page, and the static files (operators' folders first, like JupyterHub's template_paths).

The pages are thin: a template with the build id and the caller; the page's ES modules
read the REST API (`api/builds`, `/events`, `/cancel`) like any other client.
"""

from __future__ import annotations

import hashlib
import os

import jinja2
from tornado import web

from ..launch import LaunchError, launch_path
from ..spec import redact
from ..store import StoreUnavailable
from .base import PageHandler
from .launch import PATH_ARGUMENTS, can_launch, launcher_for


def jinja_env(
    share: str, template_paths, template_vars, static_paths, base_url: str
) -> jinja2.Environment:
    """Templates from the operator's template_paths first, then the package's; every page
    gets `template_vars` (title, logo, about, banner...) and `static_url()`."""
    builtin = os.path.join(share, "templates")
    env = jinja2.Environment(
        loader=jinja2.ChoiceLoader(
            [
                jinja2.FileSystemLoader([*template_paths, builtin]),
                # As JupyterHub: an operator's page.html can {% extends "templates/page.html" %}.
                jinja2.PrefixLoader({"templates": jinja2.FileSystemLoader(builtin)}),
            ]
        ),
        autoescape=True,
    )
    roots = static_roots(share, static_paths)
    env.globals.update(
        template_vars=dict(template_vars),
        static_url=lambda path: static_url(base_url, roots, path),
    )
    return env


def static_roots(share: str, static_paths) -> list[str]:
    return [os.path.abspath(p) for p in [*static_paths, os.path.join(share, "static")]]


def find_static(roots: list[str], path: str) -> tuple[str, str] | None:
    """(root, absolute path) of the first root that has `path`, never outside a root."""
    for root in roots:
        full = os.path.abspath(os.path.join(root, path))
        if full.startswith(root + os.sep) and os.path.isfile(full):
            return root, full
    return None


_versions: dict[str, tuple[float, str]] = {}


def static_url(base_url: str, roots: list[str], path: str) -> str:
    """<prefix>static/<path>?v=<hash of the content>: cached for long, changed when it does."""
    url = f"{base_url}static/{path}"
    found = find_static(roots, path)
    if not found:
        return url
    full = found[1]
    mtime = os.path.getmtime(full)
    cached = _versions.get(full)
    if not cached or cached[0] != mtime:
        with open(full, "rb") as f:
            cached = (mtime, hashlib.sha256(f.read()).hexdigest()[:12])
        _versions[full] = cached
    return f"{url}?v={cached[1]}"


class StaticHandler(web.StaticFileHandler):
    """<prefix>static/<path> from the first of several folders that has the file."""

    def initialize(self, path: str, roots: list[str], default_filename=None) -> None:  # type: ignore[override]
        self.roots = roots
        super().initialize(path=path, default_filename=default_filename)

    async def get(self, path: str, include_body: bool = True) -> None:
        found = find_static(self.roots, self.parse_url_path(path))
        if found:
            self.root = found[0]
        await super().get(path, include_body)

    def set_extra_headers(self, path: str) -> None:
        self.set_header("X-Content-Type-Options", "nosniff")

    def get_content_type(self) -> str:  # type: ignore[override]
        if self.absolute_path.endswith((".mjs", ".js")):  # ES modules need this exact type
            return "text/javascript; charset=utf-8"
        return super().get_content_type()


class PagesHandler(PageHandler):
    def page(self, name: str, **ns) -> None:
        ns.setdefault("can_launch", can_launch(self))
        ns.setdefault("auto_launch", False)
        ns.setdefault("launch_args", {})
        ns.setdefault("launch_unavailable", self.launch_unavailable())
        # The path of a v2 link holds its spec, credentials and all: pages show it redacted.
        self.render_template(
            name, xsrf=self.xsrf_token.decode("ascii"), page_path=redact(self.request.path), **ns
        )

    def launch_unavailable(self) -> str:
        """Why there is no Launch button, for the person looking for it."""
        if launcher_for(self) is None:
            return "This service builds images only; it does not start servers."
        return (
            "Your login does not let this service start your servers (it needs the hub "
            'scope "servers" for you): use the image name in your hub\'s spawn form.'
        )


class BuildPageHandler(PagesHandler):
    """<prefix>builds/<id>: one build, live (its own URL: reload and share work)."""

    async def get(self, build_id: str):
        try:
            build = await self.settings["history"].get(build_id)
        except StoreUnavailable as e:
            raise web.HTTPError(
                503, "%s; try again in a few minutes.", e.message.rstrip(".")
            ) from None
        if build is None or not build.visible_to(self.caller):
            raise web.HTTPError(404, "No build with id %s (or it is not yours to see).", build_id)
        self.page("build.html", build_id=build_id, active="builds")


class BuildsPageHandler(PagesHandler):
    """<prefix>builds: the caller's builds (an admin's: everyone's)."""

    def get(self):
        self.page("builds.html", active="builds")


class V2Handler(PagesHandler):
    """<prefix>v2/<provider>/<spec>: a shared link, as on BinderHub: the build (or the image
    found), then the caller's own server on it, opened at `urlpath`, `labpath` or
    `filepath`. Shared with a colleague, it opens in the colleague's server."""

    async def get(self, provider: str, spec: str):
        spec = self.raw_spec("v2", provider)
        args = {k: self.get_query_argument(k, "") for k in PATH_ARGUMENTS}
        args = {k: v for k, v in args.items() if v}
        try:
            launch_path(**args)  # checked now: a bad path is the link's fault, said at once
        except LaunchError as e:
            raise web.HTTPError(e.status, "%s", e.message) from None
        build, _ = await self.submit(provider, spec)  # the page reads it back by id
        self.page(
            "build.html",
            build_id=build.id,
            active="builds",
            auto_launch=can_launch(self),
            launch_args=args,
        )
