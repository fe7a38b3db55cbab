"""GitHub gists: gist/<owner>/<gist id>[/<revision>], resolved with GET /gists/{id}.

As in BinderHub: the revision is HEAD (also "master", "main", or nothing) for the
latest, or a full revision sha from the gist's history; repo2docker clones
https://gist.github.com/<owner>/<id>.git. Unlike BinderHub, the owner in the spec
must own the gist, so a link cannot pass off someone else's gist as yours.
"""

from __future__ import annotations

from traitlets import Bool, Unicode

from ..spec import RepoSpec, is_sha
from .base import URL_TAIL, ResolvedRepo, ResolveError, js_host_pattern
from .github import GitHubAPIProvider

_JSON = "application/vnd.github+json"


class GistRepoProvider(GitHubAPIProvider):
    """GitHub gists: gist/<owner>/<gist id>[/<revision>]."""

    name = "gist"
    display_name = "GitHub Gist"
    repo_label = "Gist ID (username/gistId) or URL"
    repo_placeholder = "example: octocat/6cad326836d38bd3a7ae"
    validate_regex = r"[^/]+/[^/]+(/[^/]+)?"

    html_base_url = Unicode(
        "https://gist.github.com",
        help="Base URL of gist pages and clone URLs: <html_base_url>/<owner>/<id>.git",
    ).tag(config=True)
    allow_secret_gist = Bool(
        False,
        help="""Build secret gists too.

        A secret gist is unlisted, not private: anyone with its link can read it, but
        its author may not expect it to be built and shared from here.
        """,
    ).tag(config=True)

    def detect_regex(self) -> str:
        # gist.github.com/<owner>/<id>[/<revision>]
        return (
            f"^({js_host_pattern(self.html_base_url)})?"
            r"(?<repo>[A-Za-z0-9_-]+/[A-Za-z0-9]{1,64})(/(?<ref>[0-9a-fA-F]{40}))?" + URL_TAIL
        )

    def page_url(self, repo_spec: RepoSpec) -> str:
        return f"{self.html_base_url.rstrip('/')}/{repo_spec.repo}"

    def repo_url(self, repo_spec: RepoSpec) -> str:
        return self.page_url(repo_spec) + ".git"

    async def resolve(self, repo_spec: RepoSpec) -> ResolvedRepo:
        owner, gist_id = repo_spec.repo.split("/", 1)
        ref = repo_spec.ref
        page = self.page_url(repo_spec)
        resp = await self.api_get(f"/gists/{gist_id}", _JSON)
        if resp.status == 404:
            raise ResolveError(f"gist {gist_id} not found: check {page}", status=404)
        if resp.status != 200:
            raise self.upstream_error(resp, f"looking up gist {gist_id}")
        gist = resp.json()
        if not isinstance(gist, dict) or not isinstance(gist.get("history"), list):
            raise ResolveError(
                f"GitHub's answer for gist {gist_id} has no history; tell the administrator",
                status=502,
            )
        login = (gist.get("owner") or {}).get("login")
        # gists made anonymously before 2018 have no owner; nothing to check then
        if login and login.lower() != owner.lower():
            raise ResolveError(
                f"gist {gist_id} belongs to {login}, not {owner}: use gist/{login}/{gist_id}",
                status=404,
            )
        if not gist.get("public", False) and not self.allow_secret_gist:
            raise ResolveError(
                f"gist {gist_id} is secret, and this service builds public gists only; "
                "an administrator can allow secret gists with "
                "c.GistRepoProvider.allow_secret_gist = True",
                status=403,
            )
        versions = [v.get("version", "") for v in gist["history"] if isinstance(v, dict)]
        if is_sha(ref):
            sha = ref.lower()
            if sha not in versions and not await self._has_revision(gist_id, sha):
                raise ResolveError(
                    f"revision {ref} not found in gist {owner}/{gist_id}: use HEAD or a "
                    f"revision listed at {page}/revisions",
                    status=404,
                )
        elif versions and is_sha(versions[0]):
            sha = versions[0]  # the newest revision comes first
        else:
            raise ResolveError(
                f"GitHub lists no revisions for gist {gist_id}; tell the administrator",
                status=502,
            )
        return ResolvedRepo(
            provider=self.name,
            spec=repo_spec.spec,
            repo=repo_spec.repo,
            repo_url=self.repo_url(repo_spec),
            ref=ref,
            resolved_ref=sha,
            ref_url=f"{page}/{sha}",
        )

    async def _has_revision(self, gist_id: str, sha: str) -> bool:
        # the history in GET /gists/{id} may be cut short on long-lived gists
        resp = await self.api_get(f"/gists/{gist_id}/{sha}", _JSON)
        if resp.status == 200:
            return True
        if resp.status in (404, 422):
            return False
        raise self.upstream_error(resp, f"looking up revision {sha} of gist {gist_id}")
