"""HydroShare: hydroshare/<resource id, DOI or URL>.

As BinderHub: the version is the resource's last modification time (epoch seconds)
from its science metadata, and repo2docker gets <base_url>/resource/<id>.
"""

from __future__ import annotations

from urllib.parse import quote

from traitlets import Unicode

from ..spec import RepoSpec
from .base import ResolvedRepo, ResolveError
from .data import DataRepoProvider, epoch, host_of


class HydroShareRepoProvider(DataRepoProvider):
    """Resources on HydroShare."""

    name = "hydroshare"
    display_name = "Hydroshare resource"
    repo_label = "Hydroshare resource id"
    repo_placeholder = "example: 8f7c2f0341ef4180b0dbe97f59130756"
    url_encode_repo = True
    validate_regex = r"[^/]+"

    base_url = Unicode(
        "https://www.hydroshare.org",
        help="""Base URL of HydroShare: its pages and its API (<base_url>/hsapi/).

        repo2docker itself fetches from www.hydroshare.org only.""",
    ).tag(config=True)

    def detect_regex(self) -> str:
        host = host_of(self.base_url).removeprefix("www.").replace(".", r"\.")
        return rf"^(https?://(?:www\.)?{host}/resource/)?(?<repo>[0-9a-f]{{32}})/?([?#]\S*)?$"

    def spec_for(self, doi: str, landing: str) -> RepoSpec:
        return self.parse(quote(landing, safe=""))

    def claims(self, url: str) -> bool:
        host = host_of(url).removeprefix("www.")
        return host == host_of(self.base_url).removeprefix("www.") and "/resource/" in url

    def repo_url(self, repo_spec: RepoSpec) -> str:
        return f"{self.base_url.rstrip('/')}/resource/{repo_spec.repo}"

    async def resolve(self, repo_spec: RepoSpec) -> ResolvedRepo:
        resource = repo_spec.repo
        page = self.repo_url(repo_spec)
        url = f"{self.base_url.rstrip('/')}/hsapi/resource/{resource}/scimeta/elements"
        resp, meta = await self.get_json(url, f"reading resource {resource}")
        if resp.status == 404:
            raise self.not_found(f"resource {resource}", page)
        if resp.status in (401, 403):
            raise self.restricted(f"resource {resource}", "private")
        if resp.status != 200 or not isinstance(meta, dict):
            raise self.upstream_error(resp, f"reading resource {resource}")
        dates = [d for d in meta.get("dates") or [] if isinstance(d, dict)]
        modified = next((d.get("start_date") for d in dates if d.get("type") == "modified"), None)
        try:
            version = epoch(modified)
        except (AttributeError, TypeError, ValueError):
            raise ResolveError(
                f"HydroShare's metadata of resource {resource} has no modification date; "
                "tell the administrator",
                status=502,
            ) from None
        return ResolvedRepo(
            provider=self.name,
            spec=repo_spec.spec,
            repo=resource,
            repo_url=page,
            ref="",
            resolved_ref=f"{resource}.v{version}",
            ref_url=page,
        )
