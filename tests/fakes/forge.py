"""A fake GitHub (REST API + gists) and GitLab (API v4) on 127.0.0.1, for tests.

It answers the calls the providers make the way the real services document them:
GitHub's commits endpoint (the `application/vnd.github.sha` media type, ETag and 304,
404 for a missing repository, 422 for a missing ref, 409 for an empty repository,
rate-limit headers and 403 when they run out, 401 for a bad token), the gists
endpoints, and GitLab's repository commits endpoint (escaped project path, PRIVATE-TOKEN
header, "404 Project Not Found" / "404 Commit Not Found", 429).

    async with FakeForge(token="s3cret") as forge:
        forge.add_github_repo("octo/demo", {"main": sha})
        provider = GitHubRepoProvider(api_base_url=forge.url, access_token="s3cret")

Knobs for failures: `delay` (seconds before every answer), `fail_status` (answer every
request with it), `rate_remaining` (0 exhausts GitHub's limit), `retry_after` (GitHub's
secondary rate limit), `gitlab_retry_after` (GitLab's 429). Every request is recorded
in `requests`.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
from dataclasses import dataclass, field
from urllib.parse import unquote

from aiohttp import web


def fake_sha(text: str) -> str:
    """A stable 40-hex "commit id" for a name."""
    return hashlib.sha1(text.encode()).hexdigest()


@dataclass
class FakeRepo:
    branches: dict[str, str] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)
    default_branch: str = "main"
    private: bool = False
    full_name: str = ""  # as the forge spells it; lookups ignore case

    @property
    def empty(self) -> bool:
        return not self.branches

    def commits(self) -> set[str]:
        return set(self.branches.values()) | set(self.tags.values())

    def lookup(self, ref: str) -> str | None:
        if ref == "HEAD":
            return self.branches.get(self.default_branch)
        for prefix, table in (("heads/", self.branches), ("tags/", self.tags)):
            if ref.startswith(prefix) and ref[len(prefix) :] in table:
                return table[ref[len(prefix) :]]
        if ref in self.branches:
            return self.branches[ref]
        if ref in self.tags:
            return self.tags[ref]
        if ref.lower() in self.commits():
            return ref.lower()
        return None


@dataclass
class FakeGist:
    owner: str | None
    versions: list[str]  # newest first, as GitHub lists the history
    public: bool = True


@dataclass
class RecordedRequest:
    method: str
    path: str  # raw, still percent-encoded, without the query
    headers: dict[str, str]


class FakeForge:
    def __init__(self, token: str | None = None, gitlab_token: str | None = None):
        self.token = token  # GitHub: "Authorization: Bearer <token>"
        self.gitlab_token = gitlab_token  # GitLab: "PRIVATE-TOKEN: <token>"
        self.github: dict[str, FakeRepo] = {}  # lowercased "owner/repo"
        self.gitlab: dict[str, FakeRepo] = {}  # "group/sub/project"
        self.gists: dict[str, FakeGist] = {}
        self.gist_history_limit: int | None = None  # cut the listed history short
        self.rate_limit = 60
        self.rate_remaining = 60
        self.rate_reset = int(time.time()) + 3600
        self.retry_after: int | None = None
        self.gitlab_retry_after: int | None = None
        self.delay = 0.0
        self.fail_status: int | None = None
        self.requests: list[RecordedRequest] = []
        self.url = ""
        self._runner: web.AppRunner | None = None

    # --- content -------------------------------------------------------------------

    def add_github_repo(self, full_name: str, branches=None, tags=None, **kw) -> FakeRepo:
        repo = FakeRepo(dict(branches or {}), dict(tags or {}), full_name=full_name, **kw)
        self.github[full_name.lower()] = repo
        return repo

    def add_gitlab_project(self, path: str, branches=None, tags=None, **kw) -> FakeRepo:
        repo = FakeRepo(dict(branches or {}), dict(tags or {}), **kw)
        self.gitlab[path] = repo
        return repo

    def add_gist(
        self, owner: str | None, gist_id: str, versions: list[str], public=True
    ) -> FakeGist:
        gist = FakeGist(owner, list(versions), public)
        self.gists[gist_id] = gist
        return gist

    # --- lifecycle -----------------------------------------------------------------

    async def start(self) -> str:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        host, port = self._runner.addresses[0][:2]
        self.url = f"http://{host}:{port}"
        return self.url

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> FakeForge:
        await self.start()
        return self

    async def __aexit__(self, *exc) -> None:
        await self.stop()

    def paths(self) -> list[str]:
        return [r.path for r in self.requests]

    # --- dispatch ------------------------------------------------------------------

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        # the raw path: %2F in a GitLab project id must stay one segment
        path = request.raw_path.split("?", 1)[0]
        self.requests.append(RecordedRequest(request.method, path, dict(request.headers)))
        if self.delay:
            await asyncio.sleep(self.delay)
        if self.fail_status:
            return _json({"message": "Server Error"}, self.fail_status)
        parts = path.strip("/").split("/")
        if parts[:2] == ["api", "v4"]:
            return self._gitlab(request, parts[2:])
        if parts[0] in ("repos", "gists"):
            return self._github(request, parts)
        return _json({"message": "Not Found"}, 404)

    # --- GitHub --------------------------------------------------------------------

    def _github(self, request: web.Request, parts: list[str]) -> web.Response:
        auth = request.headers.get("Authorization")
        authorized = False
        if auth is not None:
            if self.token is None or auth != f"Bearer {self.token}":
                return _json({"message": "Bad credentials"}, 401)
            authorized = True
        if self.retry_after is not None:
            return _json(
                {"message": "You have exceeded a secondary rate limit."},
                403,
                {"Retry-After": str(self.retry_after)},
            )
        if self.rate_remaining <= 0:
            return _json(
                {"message": "API rate limit exceeded for 127.0.0.1."}, 403, self._rate_headers()
            )
        if parts[0] == "repos" and len(parts) == 3:
            resp = self._github_repo(request, f"{parts[1]}/{parts[2]}", authorized)
        elif parts[0] == "repos" and len(parts) >= 5 and parts[3] == "commits":
            resp = self._github_commit(
                request, f"{parts[1]}/{parts[2]}", "/".join(parts[4:]), authorized
            )
        elif parts[0] == "gists" and len(parts) in (2, 3):
            resp = self._gist(parts[1], parts[2] if len(parts) == 3 else None)
        else:
            resp = _json({"message": "Not Found"}, 404)
        if resp.status != 304:  # conditional requests answered 304 are free
            self.rate_remaining -= 1
        resp.headers.update(self._rate_headers())
        return resp

    def _rate_headers(self) -> dict[str, str]:
        return {
            "X-RateLimit-Limit": str(self.rate_limit),
            "X-RateLimit-Remaining": str(max(0, self.rate_remaining)),
            "X-RateLimit-Reset": str(self.rate_reset),
            "X-RateLimit-Used": str(self.rate_limit - max(0, self.rate_remaining)),
            "X-RateLimit-Resource": "core",
        }

    def _github_repo(self, request, full_name: str, authorized: bool) -> web.Response:
        repo = self.github.get(full_name.lower())
        if repo is None or (repo.private and not authorized):
            return _json({"message": "Not Found", "status": "404"}, 404)
        etag = f'"{hashlib.sha1(repo.full_name.encode()).hexdigest()}"'
        if request.headers.get("If-None-Match") == etag:
            return web.Response(status=304, headers={"ETag": etag})
        body = {
            "full_name": repo.full_name,
            "name": repo.full_name.split("/")[1],
            "owner": {"login": repo.full_name.split("/")[0]},
            "private": repo.private,
            "default_branch": repo.default_branch,
        }
        return _json(body, 200, {"ETag": etag})

    def _github_commit(
        self, request, full_name: str, raw_ref: str, authorized: bool
    ) -> web.Response:
        repo = self.github.get(full_name.lower())
        if repo is None or (repo.private and not authorized):
            return _json({"message": "Not Found", "status": "404"}, 404)
        if repo.empty:
            return _json({"message": "Git Repository is empty.", "status": "409"}, 409)
        ref = unquote(raw_ref)
        sha = repo.lookup(ref)
        if sha is None:
            return _json({"message": f"No commit found for SHA: {ref}", "status": "422"}, 422)
        etag = f'"{hashlib.sha1(sha.encode()).hexdigest()}"'
        if request.headers.get("If-None-Match") == etag:
            return web.Response(status=304, headers={"ETag": etag})
        if "application/vnd.github.sha" in request.headers.get("Accept", ""):
            return web.Response(
                text=sha,
                headers={"ETag": etag, "Content-Type": "application/vnd.github.sha; charset=utf-8"},
            )
        body = {
            "sha": sha,
            "commit": {"message": "commit"},
            "html_url": f"https://github.com/{repo.full_name}/commit/{sha}",
        }
        return _json(body, 200, {"ETag": etag})

    def _gist(self, gist_id: str, sha: str | None) -> web.Response:
        gist = self.gists.get(gist_id)
        if gist is None:
            return _json({"message": "Not Found"}, 404)
        if sha is not None and sha not in gist.versions:
            return _json({"message": "Not Found"}, 404)
        history = gist.versions[: self.gist_history_limit]
        return _json(
            {
                "id": gist_id,
                "public": gist.public,
                "owner": {"login": gist.owner} if gist.owner else None,
                "git_pull_url": f"https://gist.github.com/{gist_id}.git",
                "html_url": f"https://gist.github.com/{gist.owner}/{gist_id}",
                "history": [
                    {"version": v, "committed_at": "2024-01-01T00:00:00Z"} for v in history
                ],
            },
            200,
        )

    # --- GitLab --------------------------------------------------------------------

    def _gitlab(self, request: web.Request, parts: list[str]) -> web.Response:
        if self.gitlab_retry_after is not None:
            return web.Response(
                status=429,
                text="Retry later",
                headers={"Retry-After": str(self.gitlab_retry_after)},
            )
        token = request.headers.get("PRIVATE-TOKEN")
        authorized = False
        if token is not None:
            if token != self.gitlab_token:
                return _json({"message": "401 Unauthorized"}, 401)
            authorized = True
        # projects/<escaped path>/repository/commits/<escaped ref>: exactly 5 segments
        if len(parts) != 5 or parts[0] != "projects" or parts[2:4] != ["repository", "commits"]:
            return _json({"error": "404 Not Found"}, 404)
        project = self.gitlab.get(unquote(parts[1]))
        if project is None or (project.private and not authorized):
            return _json({"message": "404 Project Not Found"}, 404)
        sha = project.lookup(unquote(parts[4]))
        if sha is None:
            return _json({"message": "404 Commit Not Found"}, 404)
        return _json({"id": sha, "short_id": sha[:8], "title": "commit"}, 200)


def _json(body, status: int, headers: dict | None = None) -> web.Response:
    return web.Response(
        text=json.dumps(body), status=status, content_type="application/json", headers=headers
    )
