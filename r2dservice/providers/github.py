"""GitHub: resolve a ref with one REST call, GET /repos/{owner}/{repo}/commits/{ref}.

The `application/vnd.github.sha` media type makes GitHub answer with the bare sha
(a few bytes, not the whole commit and its diff), and a conditional request that
comes back 304 Not Modified does not count against the rate limit, so ETags are kept.
"""

from __future__ import annotations

import os
import time
from collections import OrderedDict
from dataclasses import replace
from datetime import datetime, timezone
from urllib.parse import quote, urlsplit

from traitlets import Bool, Integer, Unicode, default

from ..spec import RepoSpec, is_sha
from .base import URL_PATH, URL_REF, URL_TAIL, ResolvedRepo, ResolveError, js_host_pattern
from .http import HTTPRepoProvider, Response

_JSON = "application/vnd.github+json"


class GitHubAPIProvider(HTTPRepoProvider):
    """What the GitHub and gist providers share: the API, its token and its rate limit.

    Configure both at once with c.GitHubAPIProvider.*, or each on its own class.
    """

    api_base_url = Unicode(
        "https://api.github.com",
        help="""Base URL of the GitHub REST API.

        For GitHub Enterprise Server: https://<host>/api/v3
        """,
    ).tag(config=True)
    access_token = Unicode(
        help="""Token for the GitHub API, sent as `Authorization: Bearer <token>`.

        Raises the rate limit from 60 to 5000 requests an hour and lets the service see
        the private repositories the token can read. Loaded from $GITHUB_ACCESS_TOKEN
        by default.
        """,
    ).tag(config=True)

    @default("access_token")
    def _access_token_default(self):
        return os.environ.get("GITHUB_ACCESS_TOKEN", "")

    # the last rate-limit headers GitHub sent: limit, remaining, reset (epoch seconds)
    rate_limit: dict | None = None

    def api_url(self, path: str) -> str:
        return self.api_base_url.rstrip("/") + path

    def api_headers(self, accept: str) -> dict:
        headers = {"Accept": accept, "X-GitHub-Api-Version": "2022-11-28"}
        if self.access_token:
            headers["Authorization"] = f"Bearer {self.access_token}"
        return headers

    async def api_get(self, path: str, accept: str, etag: str = "") -> Response:
        """GET an API path; raises ResolveError for rate limits and a rejected token."""
        headers = self.api_headers(accept)
        if etag:
            headers["If-None-Match"] = etag
        resp = await self.get(self.api_url(path), headers)
        self._note_rate_limit(resp)
        if resp.status in (403, 429):
            self._raise_for_rate_limit(resp)
        if resp.status == 401:
            raise ResolveError(
                "GitHub rejected the service's access token (401 Bad credentials); "
                f"an administrator should renew c.{type(self).__name__}.access_token",
                status=502,
            )
        return resp

    def _note_rate_limit(self, resp: Response) -> None:
        try:
            limit = int(resp.headers["X-RateLimit-Limit"])
            remaining = int(resp.headers["X-RateLimit-Remaining"])
            reset = int(resp.headers.get("X-RateLimit-Reset", "0"))
        except (KeyError, ValueError):
            return
        self.rate_limit = {"limit": limit, "remaining": remaining, "reset": reset}
        # warn early: when it runs out, every build request fails
        if limit and remaining < limit * 0.2:
            self.log.warning("GitHub API rate limit: %d of %d left", remaining, limit)

    def _raise_for_rate_limit(self, resp: Response) -> None:
        headers = resp.headers
        if headers.get("X-RateLimit-Remaining") == "0":
            try:
                reset = int(headers.get("X-RateLimit-Reset", ""))
            except ValueError:
                reset = int(time.time()) + 3600
            wait = max(0, reset - int(time.time()))
            at = datetime.fromtimestamp(reset, timezone.utc).strftime("%H:%M UTC")
            minutes = -(-wait // 60)  # round up: "in 0 minutes" helps nobody
            advice = "try again then"
            if not self.access_token:
                advice = (
                    "an administrator can raise the limit with "
                    f"c.{type(self).__name__}.access_token"
                )
            raise ResolveError(
                f"GitHub's API rate limit ({headers.get('X-RateLimit-Limit', '?')} requests "
                f"an hour) is used up until {at}, in {minutes} minute"
                f"{'' if minutes == 1 else 's'}; {advice}",
                status=503,
                retry_after=wait,
            )
        retry_after = headers.get("Retry-After")
        if retry_after is not None:
            try:
                wait = max(0, int(retry_after))
            except ValueError:
                wait = 60
            raise ResolveError(
                "GitHub asks the service to slow down (secondary rate limit); "
                f"try again in {wait} seconds",
                status=503,
                retry_after=wait,
            )


class GitHubRepoProvider(GitHubAPIProvider):
    """Repositories on GitHub (or GitHub Enterprise): gh/<owner>/<repo>/<ref>."""

    name = "gh"
    display_name = "GitHub"
    repo_label = "GitHub repository name or URL"
    repo_placeholder = (
        "example: binder-examples/requirements or https://github.com/binder-examples/requirements"
    )
    validate_regex = r"[^/]+/[^/]+/.+"

    html_base_url = Unicode(
        "https://github.com",
        help="""Base URL of GitHub's web pages and clone URLs.

        repo2docker clones <html_base_url>/<owner>/<repo>.
        """,
    ).tag(config=True)
    etag_cache_size = Integer(
        1024,
        help="How many ETags of resolved refs to keep; a 304 answer costs no rate limit.",
    ).tag(config=True)
    canonical_names = Bool(
        True,
        help="""Use GitHub's own spelling of a repository's name (from the same commits
        call, whose JSON names it), so that Owner/Repo and owner/repo make one image.
        False: the smaller bare-sha answer, and the name as asked.""",
    ).tag(config=True)

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self._etags: OrderedDict[str, tuple[str, str]] = OrderedDict()

    def detect_regex(self) -> str:
        # github.com/<owner>/<repo>[.git][/tree|blob/<ref>[/<path>]]
        return (
            f"^({js_host_pattern(self.html_base_url)})?"
            r"(?<repo>[A-Za-z0-9_][A-Za-z0-9_-]{0,38}/[A-Za-z0-9._-]{1,100}?)(\.git)?"
            f"(/(tree|blob)/{URL_REF}(/{URL_PATH})?)?{URL_TAIL}"
        )

    def repo_url(self, repo_spec: RepoSpec) -> str:
        return f"{self.html_base_url.rstrip('/')}/{repo_spec.repo}"

    async def resolve(self, repo_spec: RepoSpec) -> ResolvedRepo:
        repo, ref = repo_spec.repo, repo_spec.ref
        page = self.repo_url(repo_spec)
        path = f"/repos/{repo}/commits/{quote(ref, safe='/')}"
        cached = self._etags.get(path)
        # With canonical names, the commit's JSON: its html_url spells the repository as
        # GitHub does, in the same one call (the bare sha media type is smaller).
        accept = _JSON if self.canonical_names else "application/vnd.github.sha"
        resp = await self.api_get(path, accept, etag=cached[0] if cached else "")
        if resp.status == 304 and cached:
            self._etags.move_to_end(path)
            sha, _, name = cached[1].partition(" ")
            repo = name or repo
        elif resp.status == 200:
            sha, name = self._commit_answer(resp)
            repo = name or repo
            if not is_sha(sha):
                raise ResolveError(
                    f"GitHub's answer for {repo} at {ref!r} is not a commit sha; "
                    "tell the administrator (is c.GitHubRepoProvider.api_base_url right?)",
                    status=502,
                )
            sha = sha.lower()
            self._remember(path, resp.headers.get("ETag", ""), f"{sha} {name}".strip())
        elif resp.status == 404:
            raise ResolveError(
                f"GitHub repository {repo} not found, or it has no ref {ref!r}: check "
                f"{page} (a private repository looks missing unless the service's token "
                "can read it)",
                status=404,
            )
        elif resp.status == 422:
            # GitHub's answer for a ref that does not exist in an existing repository
            hint = ""
            if ref in ("master", "main"):
                # old links name the default branch, which many repositories renamed
                hint = f"; for the default branch, whatever its name, use {repo}/HEAD"
            raise ResolveError(
                f"ref {ref!r} not found in {page}: use a branch, a tag or a full commit "
                f"sha (HEAD is the default branch){hint}",
                status=404,
            )
        elif resp.status == 409:
            raise ResolveError(f"{page} is empty: push a commit to it first", status=404)
        else:
            raise self.upstream_error(resp, f"resolving {ref!r} in {repo}")
        if repo != repo_spec.repo:
            repo_spec = replace(repo_spec, repo=repo)
            page = self.repo_url(repo_spec)
        return ResolvedRepo(
            provider=self.name,
            spec=repo_spec.spec,
            repo=repo,
            repo_url=page,
            ref=ref,
            resolved_ref=sha,
            ref_url=f"{page}/tree/{sha}",
        )

    def _commit_answer(self, resp) -> tuple[str, str]:
        """(sha, "Owner/Repo" as GitHub spells it, or "") from a commits answer."""
        if not self.canonical_names:
            return resp.text.strip(), ""
        try:
            body = resp.json()
        except ValueError:
            return "", ""
        if not isinstance(body, dict):
            return "", ""
        sha = str(body.get("sha") or "")
        # https://github.com/<Owner>/<Repo>/commit/<sha> (a renamed repository: its new name)
        parts = urlsplit(str(body.get("html_url") or "")).path.strip("/").split("/")
        name = "/".join(parts[:2]) if len(parts) >= 4 and parts[2] == "commit" else ""
        return sha, name

    def _remember(self, path: str, etag: str, value: str) -> None:
        if not etag or self.etag_cache_size <= 0:
            return
        self._etags[path] = (etag, value)
        self._etags.move_to_end(path)
        while len(self._etags) > self.etag_cache_size:
            self._etags.popitem(last=False)
