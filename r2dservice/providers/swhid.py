"""Software Heritage: swhid/<SWHID> of a directory or a revision (repo2docker's swhid provider).

A SWHID names its content by hash: it never changes, so resolving only asks the archive
whether it holds the object (a clear 404 now rather than a failed build later).
"""

from __future__ import annotations

import os

from traitlets import Unicode, default

from ..spec import RepoSpec
from .base import ResolvedRepo, ResolveError
from .data import DataRepoProvider

_ENDPOINTS = {"dir": "directory", "rev": "revision"}


class SwhidRepoProvider(DataRepoProvider):
    """Directories and revisions archived by Software Heritage."""

    name = "swhid"
    display_name = "Software Heritage ID"
    repo_label = "SWHID of a directory or revision"
    repo_placeholder = "example: swh:1:dir:" + "0" * 40
    validate_regex = r"swh:1:(dir|rev):[0-9a-f]{40}(;.*)?"

    api_base_url = Unicode(
        "https://archive.softwareheritage.org/api/1",
        help="""Base URL of the Software Heritage API.

        repo2docker itself always fetches from archive.softwareheritage.org.""",
    ).tag(config=True)
    web_base_url = Unicode(
        "https://archive.softwareheritage.org", help="Base URL of the archive's web pages."
    ).tag(config=True)
    access_token = Unicode(
        help="""Software Heritage API token (Bearer), for a higher rate limit. Loaded from
        $SWH_TOKEN by default. repo2docker takes its own (--Repo2Docker.swh_token).""",
    ).tag(config=True)

    @default("access_token")
    def _access_token_default(self):
        return os.environ.get("SWH_TOKEN", "")

    def detect_regex(self) -> str:
        return (
            r"^(https?://archive\.softwareheritage\.org/(?:browse/)?)?"
            r"(?<repo>swh:1:(dir|rev):[0-9a-f]{40})(;\S*)?/?$"
        )

    async def resolve(self, repo_spec: RepoSpec) -> ResolvedRepo:
        swhid = repo_spec.repo
        core = swhid.split(";", 1)[0]
        kind, sha = core.split(":")[2:4]
        url = f"{self.api_base_url.rstrip('/')}/{_ENDPOINTS[kind]}/{sha}/"
        headers = {"Accept": "application/json"}
        if self.access_token:
            headers["Authorization"] = f"Bearer {self.access_token}"
        resp = await self.get(url, headers)
        if resp.status == 429:
            wait = int(resp.headers.get("Retry-After", "60") or 60)
            raise ResolveError(
                f"Software Heritage's API rate limit is reached; try again in {wait} seconds "
                "(an administrator can raise it with c.SwhidRepoProvider.access_token)",
                status=503,
                retry_after=wait,
            )
        if resp.status == 404:
            raise ResolveError(
                f"Software Heritage has not archived {core}: check "
                f"{self.web_base_url.rstrip('/')}/{core}",
                status=404,
            )
        if resp.status != 200:
            raise self.upstream_error(resp, f"looking up {core}")
        return ResolvedRepo(
            provider=self.name,
            spec=repo_spec.spec,
            repo=core,
            repo_url=swhid,
            ref="",
            resolved_ref=sha,
            ref_url=f"{self.web_base_url.rstrip('/')}/{core}",
            pinned_spec=repo_spec.spec,
        )
