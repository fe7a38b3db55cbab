"""GitLab: gl/<url-escaped project path>/<ref>, resolved with
GET /api/v4/projects/{escaped path}/repository/commits/{escaped ref}.
"""

from __future__ import annotations

import os
from urllib.parse import quote

from traitlets import Unicode, default

from ..spec import RepoSpec, is_sha
from .base import URL_PATH, URL_REF, URL_TAIL, ResolvedRepo, ResolveError, js_host_pattern
from .http import HTTPRepoProvider


class GitLabRepoProvider(HTTPRepoProvider):
    """Projects on GitLab.com or a GitLab instance: gl/<url-escaped project path>/<ref>."""

    name = "gl"
    display_name = "GitLab"
    repo_label = "GitLab repository name or URL"
    repo_placeholder = (
        "example: https://gitlab.com/mosaik/examples/mosaik-tutorials-on-binder "
        "or mosaik/examples/mosaik-tutorials-on-binder"
    )
    url_encode_repo = True
    validate_regex = r"[^/]+/.+"

    base_url = Unicode(
        "https://gitlab.com",
        help="""Base URL of the GitLab instance: its web pages and clone URLs.

        repo2docker clones <base_url>/<project path>.git.
        """,
    ).tag(config=True)
    api_base_url = Unicode(
        help="Base URL of the GitLab REST API. Default: <base_url>/api/v4",
    ).tag(config=True)

    @default("api_base_url")
    def _api_base_url_default(self):
        return self.base_url.rstrip("/") + "/api/v4"

    private_token = Unicode(
        help="""GitLab personal, project or group access token, sent as `PRIVATE-TOKEN`.

        Needed for private projects. Loaded from $GITLAB_PRIVATE_TOKEN by default.
        """,
    ).tag(config=True)

    @default("private_token")
    def _private_token_default(self):
        return os.environ.get("GITLAB_PRIVATE_TOKEN", "")

    access_token = Unicode(
        help="""GitLab OAuth2 access token, sent as `Authorization: Bearer`.

        Loaded from $GITLAB_ACCESS_TOKEN by default. private_token wins if both are set.
        """,
    ).tag(config=True)

    @default("access_token")
    def _access_token_default(self):
        return os.environ.get("GITLAB_ACCESS_TOKEN", "")

    def detect_regex(self) -> str:
        # gitlab.com/<group>/<sub>/<project>[.git][/-/tree|blob/<ref>[/<path>]]
        segment = r"[A-Za-z0-9_.][A-Za-z0-9_.-]*?"
        return (
            f"^({js_host_pattern(self.base_url)})?"
            f"(?<repo>{segment}(/{segment})+?)(\\.git)?"
            f"(/-/(tree|blob)/{URL_REF}(/{URL_PATH})?)?{URL_TAIL}"
        )

    def _auth_headers(self) -> dict:
        if self.private_token:
            return {"PRIVATE-TOKEN": self.private_token}
        if self.access_token:
            return {"Authorization": f"Bearer {self.access_token}"}
        return {}

    def page_url(self, repo_spec: RepoSpec) -> str:
        return f"{self.base_url.rstrip('/')}/{repo_spec.repo}"

    def repo_url(self, repo_spec: RepoSpec) -> str:
        return self.page_url(repo_spec) + ".git"

    async def resolve(self, repo_spec: RepoSpec) -> ResolvedRepo:
        project, ref = repo_spec.repo, repo_spec.ref
        page = self.page_url(repo_spec)
        url = (
            f"{self.api_base_url.rstrip('/')}/projects/{quote(project, safe='')}"
            f"/repository/commits/{quote(ref, safe='')}"
        )
        resp = await self.get(url, self._auth_headers())
        if resp.status == 200:
            body = resp.json()
            sha = body.get("id") if isinstance(body, dict) else None
            if not isinstance(sha, str) or not is_sha(sha):
                raise ResolveError(
                    f"GitLab's answer for {project} at {ref!r} has no commit id; tell "
                    "the administrator (is c.GitLabRepoProvider.api_base_url right?)",
                    status=502,
                )
            sha = sha.lower()
        elif resp.status == 404:
            body = resp.json()
            message = str(body.get("message", "")) if isinstance(body, dict) else ""
            if "commit" in message.lower():
                raise ResolveError(
                    f"ref {ref!r} not found in {page}: use a branch, a tag or a full "
                    "commit sha (HEAD is the default branch)",
                    status=404,
                )
            raise ResolveError(
                f"GitLab project {project} not found: check {page} (a private project "
                "looks missing unless the service's token can read it)",
                status=404,
            )
        elif resp.status == 401:
            raise ResolveError(
                "GitLab rejected the service's token (401); an administrator should "
                "renew c.GitLabRepoProvider.private_token or access_token",
                status=502,
            )
        elif resp.status == 429:
            wait = _int(resp.headers.get("Retry-After"), 60)
            raise ResolveError(
                f"GitLab's rate limit is reached; try again in {wait} seconds",
                status=503,
                retry_after=wait,
            )
        else:
            raise self.upstream_error(resp, f"resolving {ref!r} in {project}")
        return ResolvedRepo(
            provider=self.name,
            spec=repo_spec.spec,
            repo=project,
            repo_url=self.repo_url(repo_spec),
            ref=ref,
            resolved_ref=sha,
            ref_url=f"{page}/-/tree/{sha}",
        )


def _int(value, fallback: int) -> int:
    try:
        return max(0, int(value))
    except (TypeError, ValueError):
        return fallback
