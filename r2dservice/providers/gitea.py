"""Gitea and Forgejo (Codeberg, self-hosted): gitea/<owner>/<repo>/<ref>.

Two API calls: GET /repos/{owner}/{repo} for the canonical name (owner and repository
names are case-insensitive there) and the default branch, then the commit a ref names
(GET /repos/{owner}/{repo}/commits?sha=<ref>&limit=1, or /git/commits/<sha> for a sha).
"""

from __future__ import annotations

import os
from dataclasses import replace
from urllib.parse import urlencode

from traitlets import Unicode, default

from ..spec import RepoSpec, is_sha, parse_spec
from .base import URL_PATH, URL_REF, URL_TAIL, ResolvedRepo, ResolveError, js_host_pattern
from .data import retry_after
from .http import HTTPRepoProvider


class GiteaRepoProvider(HTTPRepoProvider):
    """Repositories on a Gitea or Forgejo instance; Codeberg by default.

    For a second instance, subclass it with its own `name` and register that prefix.
    """

    name = "gitea"
    display_name = "Gitea / Forgejo"
    repo_label = "Repository name or URL"
    repo_placeholder = "example: forgejo/forgejo or https://codeberg.org/forgejo/forgejo"
    validate_regex = r"[^/]+/[^/]+/.+"

    base_url = Unicode(
        "https://codeberg.org",
        help="""Base URL of the instance: its web pages and clone URLs.

        repo2docker clones <base_url>/<owner>/<repo>.git.""",
    ).tag(config=True)
    api_base_url = Unicode(help="Base URL of its API. Default: <base_url>/api/v1").tag(config=True)

    @default("api_base_url")
    def _api_base_url_default(self):
        return self.base_url.rstrip("/") + "/api/v1"

    access_token = Unicode(
        help="""Access token, sent as `Authorization: token <token>`; needed for private
        repositories. Loaded from $GITEA_ACCESS_TOKEN by default.""",
    ).tag(config=True)

    @default("access_token")
    def _access_token_default(self):
        return os.environ.get("GITEA_ACCESS_TOKEN", "")

    def parse(self, spec: str) -> RepoSpec:
        # a subclass for another instance has its own prefix and the same format
        return replace(parse_spec("gitea", spec), provider=self.name)

    def detect_regex(self) -> str:
        return (
            f"^({js_host_pattern(self.base_url)})?"
            r"(?<repo>[A-Za-z0-9_][A-Za-z0-9_.-]{0,39}/[A-Za-z0-9._-]{1,100}?)(\.git)?"
            f"(/src/(branch|tag|commit)/{URL_REF}(/{URL_PATH})?)?{URL_TAIL}"
        )

    def page_url(self, repo: str) -> str:
        return f"{self.base_url.rstrip('/')}/{repo}"

    def repo_url(self, repo_spec: RepoSpec) -> str:
        return self.page_url(repo_spec.repo) + ".git"

    async def api(self, path: str, what: str):
        headers = {"Accept": "application/json"}
        if self.access_token:
            headers["Authorization"] = f"token {self.access_token}"
        resp = await self.get(self.api_base_url.rstrip("/") + path, headers)
        if resp.status == 429:
            wait = retry_after(resp.headers.get("Retry-After")) or 60
            raise ResolveError(
                f"{self.display_name}'s rate limit is reached; try again in {wait} seconds",
                status=503,
                retry_after=wait,
            )
        if resp.status == 401:
            raise ResolveError(
                f"{self.display_name} rejected the service's token (401); an administrator "
                f"should renew c.{type(self).__name__}.access_token",
                status=502,
            )
        if resp.status >= 500:
            raise self.upstream_error(resp, what)
        return resp, resp.json()

    async def resolve(self, repo_spec: RepoSpec) -> ResolvedRepo:
        asked, ref = repo_spec.repo, repo_spec.ref
        resp, repo = await self.api(f"/repos/{asked}", f"looking up {asked}")
        if resp.status in (403, 404):
            raise ResolveError(
                f"repository {asked} not found: check {self.page_url(asked)} (a private "
                "repository looks missing unless the service's token can read it)",
                status=404,
            )
        full_name = repo.get("full_name") if isinstance(repo, dict) else None
        if resp.status != 200 or not isinstance(full_name, str) or "/" not in full_name:
            raise self.upstream_error(resp, f"looking up {asked}")
        if repo.get("empty"):
            raise ResolveError(f"{self.page_url(full_name)} is empty: push a commit first", 404)
        sha = await self._commit(full_name, repo.get("default_branch") if ref == "HEAD" else ref)
        if sha is None:
            raise ResolveError(
                f"ref {ref!r} not found in {self.page_url(full_name)}: use a branch, a tag or "
                "a full commit sha (HEAD is the default branch)",
                status=404,
            )
        page = self.page_url(full_name)
        return ResolvedRepo(
            provider=self.name,
            spec=repo_spec.spec,
            repo=full_name,
            repo_url=page + ".git",
            ref=ref,
            resolved_ref=sha,
            ref_url=f"{page}/src/commit/{sha}",
        )

    async def _commit(self, repo: str, ref: str | None) -> str | None:
        if not ref:
            return None
        if is_sha(ref):
            resp, body = await self.api(f"/repos/{repo}/git/commits/{ref}", f"finding {ref}")
            shas = [body.get("sha")] if resp.status == 200 and isinstance(body, dict) else []
        else:
            query = urlencode({"sha": ref, "limit": 1, "stat": "false", "files": "false"})
            query += "&verification=false"
            resp, body = await self.api(f"/repos/{repo}/commits?{query}", f"resolving {ref!r}")
            listed = body if resp.status == 200 and isinstance(body, list) else []
            shas = [c.get("sha") for c in listed if isinstance(c, dict)]
        if resp.status in (404, 409, 422) or (resp.status == 200 and not shas):
            return None
        if resp.status != 200 or not isinstance(shas[0], str) or not is_sha(shas[0]):
            raise self.upstream_error(resp, f"resolving {ref!r} in {repo}")
        return shas[0].lower()
