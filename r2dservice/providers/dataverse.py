"""Dataverse: dataverse/<DOI> of a dataset, on any Dataverse installation.

As BinderHub: the DOI leads to the installation, whose native API names the dataset's
latest published version: <dataset id>.v<major>.<minor>.
"""

from __future__ import annotations

from urllib.parse import quote, urlsplit

from traitlets import List, Unicode

from ..spec import RepoSpec
from .base import ResolvedRepo, ResolveError
from .data import DataRepoProvider, host_of


class DataverseRepoProvider(DataRepoProvider):
    """Datasets on Dataverse installations (Harvard Dataverse and the others)."""

    name = "dataverse"
    display_name = "Dataverse DOI"
    repo_label = "Dataverse DOI"
    repo_placeholder = "example: 10.7910/DVN/TJCLKP"

    installations = List(
        Unicode(),
        help="""Base URLs of the Dataverse installations whose datasets are built, e.g.
        ["https://dataverse.harvard.edu"]. Empty (the default): any installation a DOI
        leads to.

        repo2docker fetches only from installations in its list
        (https://iqss.github.io/dataverse-installations/data/data.json, or the URL in
        $R2D_DATAVERSE_INSTALLATIONS_URL where repo2docker runs).""",
    ).tag(config=True)

    def claims(self, url: str) -> bool:
        path = urlsplit(url).path
        if not (path.startswith(("/dataset.xhtml", "/citation", "/file.xhtml"))):
            return False
        return not self.installations or host_of(url) in {host_of(i) for i in self.installations}

    async def resolve(self, repo_spec: RepoSpec) -> ResolvedRepo:
        return await self.resolve_at(repo_spec, await self.landing_url(repo_spec.repo))

    async def resolve_at(self, repo_spec: RepoSpec, landing: str) -> ResolvedRepo:
        doi = repo_spec.repo
        if not self.claims(landing):
            raise ResolveError(
                f"DOI {doi} leads to {landing}, which is not a dataset of a Dataverse "
                "installation this service builds from",
                status=400,
            )
        if urlsplit(landing).path.startswith("/file.xhtml"):
            raise ResolveError(
                f"DOI {doi} names a file, not a dataset: use the DOI of its dataset", status=400
            )
        parts = urlsplit(landing)
        base = f"{parts.scheme}://{parts.netloc}"
        url = f"{base}/api/datasets/:persistentId?persistentId={quote('doi:' + doi, safe=':/')}"
        resp, body = await self.get_json(url, f"reading dataset {doi}")
        data = body.get("data") if isinstance(body, dict) else None
        if resp.status == 404:
            raise self.not_found(f"published dataset {doi}", landing)
        if resp.status in (401, 403):
            raise self.restricted(f"dataset {doi}")
        if resp.status != 200 or not isinstance(data, dict):
            raise self.upstream_error(resp, f"reading dataset {doi}")
        latest = data.get("latestVersion") or {}
        if latest.get("versionState") == "DEACCESSIONED":
            raise ResolveError(f"Dataverse dataset {doi} has been deaccessioned", status=404)
        if latest.get("versionNumber") is None:
            raise self.not_found(f"published version of dataset {doi}", landing)
        files = latest.get("files") or []
        if any(f.get("restricted") for f in files if isinstance(f, dict)):
            raise self.restricted(f"dataset {doi}", "partly restricted (some files are not open)")
        if any(((f.get("dataFile") or {}).get("embargo")) for f in files if isinstance(f, dict)):
            raise self.restricted(f"dataset {doi}", "partly under embargo")
        version = (
            f"{data.get('id')}.v{latest['versionNumber']}.{latest.get('versionMinorNumber', 0)}"
        )
        authority, identifier = data.get("authority", ""), data.get("identifier", "")
        pinned = f"{authority}/{identifier}" if authority and identifier else doi
        return ResolvedRepo(
            provider=self.name,
            spec=repo_spec.spec,
            repo=f"{parts.netloc.lower()}/{pinned.lower()}",
            repo_url=self.repo_url(repo_spec),
            ref="",
            resolved_ref=version,
            ref_url=data.get("persistentUrl") or self.doi_url(pinned),
            # Dataverse gives versions no DOIs of their own: the DOI names the latest
            pinned_spec=pinned,
        )
