"""Zenodo and other InvenioRDM sites: zenodo/<DOI>.

As BinderHub: the DOI leads (through the DOI resolver's redirects) to a record page
whose last path part is the record id, the version that does not change; a concept DOI
leads to its latest version. Unlike BinderHub, the record is then read from the site's
API, so a missing, deleted, restricted or embargoed record fails with its reason.
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit

from traitlets import List, Unicode

from ..spec import RepoSpec
from .base import ResolvedRepo, ResolveError
from .data import DataRepoProvider, host_of

# /record/<id>, /records/<id>: numeric on Zenodo, "abcde-fgh12" on InvenioRDM sites
_RECORD_PATH = re.compile(r"/records?/([A-Za-z0-9-]+)/?$")


class ZenodoRepoProvider(DataRepoProvider):
    """Records on Zenodo, Zenodo's sandbox, Caltech's data repository or any InvenioRDM."""

    name = "zenodo"
    display_name = "Zenodo DOI"
    repo_label = "Zenodo DOI"
    repo_placeholder = "example: 10.5281/zenodo.3242074"

    sites = List(
        Unicode(),
        default_value=[
            "https://zenodo.org",
            "https://sandbox.zenodo.org",
            "https://data.caltech.edu",
        ],
        help="""Base URLs of the InvenioRDM sites whose records are built; a DOI that leads
        elsewhere is refused. The API of each is <site>/api/records/<id>.

        repo2docker itself fetches from zenodo.org, sandbox.zenodo.org and
        data.caltech.edu only.""",
    ).tag(config=True)

    def detect_regex(self) -> str:
        return r"^(https?://(?:dx\.)?doi\.org/|doi:)?(?<repo>10\.\d+/(?:[a-z-]+\.)?zenodo\.\d+)$"

    def site_for(self, url: str) -> str | None:
        """The configured site a record page belongs to, or None."""
        host = host_of(url)
        for site in self.sites:
            if host_of(site) == host and _RECORD_PATH.search(urlsplit(url).path):
                return site.rstrip("/")
        return None

    def claims(self, landing: str) -> bool:
        return self.site_for(landing) is not None

    async def resolve(self, repo_spec: RepoSpec) -> ResolvedRepo:
        return await self.resolve_at(repo_spec, await self.landing_url(repo_spec.repo))

    async def resolve_at(self, repo_spec: RepoSpec, landing: str) -> ResolvedRepo:
        doi = repo_spec.repo
        site = self.site_for(landing)
        if site is None:
            raise ResolveError(
                f"DOI {doi} leads to {landing}, which is not a record of a Zenodo site "
                "this service builds from; try doi/<DOI> for other repositories",
                status=400,
            )
        record_id = _RECORD_PATH.search(urlsplit(landing).path).group(1)
        page = f"{site}/records/{record_id}"
        resp, record = await self.get_json(f"{site}/api/records/{record_id}", f"reading {page}")
        if resp.status in (404, 410):
            gone = "deleted" if resp.status == 410 else "missing"
            raise ResolveError(f"Zenodo record {record_id} is {gone}: check {page}", status=404)
        if resp.status in (401, 403):
            raise self.restricted(f"record {record_id}")
        if resp.status != 200 or not isinstance(record, dict) or "id" not in record:
            raise self.upstream_error(resp, f"reading {page}")
        self._check_access(record, str(record_id))
        version = str(record["id"])  # a concept id may answer with its latest version
        version_doi = record.get("doi") or ((record.get("pids") or {}).get("doi") or {}).get(
            "identifier"
        )
        if not version_doi:
            # BinderHub's reading: the DOI with its last number replaced by the record id
            version_doi = re.sub(r"\d+$", version, doi)
        return ResolvedRepo(
            provider=self.name,
            spec=repo_spec.spec,
            repo=f"{host_of(site)}/records/{version}",
            repo_url=self.repo_url(repo_spec),
            ref="",
            resolved_ref=version,
            ref_url=self.doi_url(version_doi),
            pinned_spec=version_doi,
        )

    def _check_access(self, record: dict, record_id: str) -> None:
        # Zenodo's own serialization says metadata.access_right; InvenioRDM's says access
        metadata = record.get("metadata") or {}
        access_right = metadata.get("access_right")
        access = record.get("access") or {}
        embargo = access.get("embargo") or {}
        if access_right == "embargoed" or embargo.get("active"):
            until = metadata.get("embargo_date") or embargo.get("until") or "a later date"
            raise self.restricted(f"record {record_id}", f"under embargo until {until}")
        if access_right in ("restricted", "closed") or access.get("files") == "restricted":
            raise self.restricted(f"record {record_id}", "restricted (its files are not open)")
