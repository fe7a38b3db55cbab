"""CKAN: ckan/<url-escaped dataset URL>, on any CKAN site.

As BinderHub: the version is the dataset's metadata_modified (epoch seconds), read with
package_show, or with activity_data_show for a URL that names an activity
(.../history/<activity id> or ?activity_id=...); repo2docker gets the URL as given.
"""

from __future__ import annotations

from urllib.parse import parse_qs, quote, urlencode, urlsplit

from traitlets import List, Unicode

from ..spec import RepoSpec
from .base import ResolvedRepo, ResolveError
from .data import DataRepoProvider, epoch, host_of


def dataset_parts(url: str) -> tuple[str, str, str | None]:
    """A dataset URL's API base, dataset name and activity id (or None)."""
    parts = urlsplit(url)
    prefix, _, rest = parts.path.partition("/dataset/")
    segments = rest.split("/")
    activity = None
    if "history" in segments[1:] and segments.index("history") + 1 < len(segments):
        activity = segments[segments.index("history") + 1] or None
    elif "activity_id" in parse_qs(parts.query):
        activity = parse_qs(parts.query)["activity_id"][0]
    return f"{parts.scheme}://{parts.netloc}{prefix}/api/3/action/", segments[0], activity


class CKANRepoProvider(DataRepoProvider):
    """Datasets on CKAN sites."""

    name = "ckan"
    display_name = "CKAN dataset"
    repo_label = "CKAN dataset URL"
    repo_placeholder = "https://demo.ckan.org/dataset/my-sample-dataset-001"
    url_encode_repo = True
    validate_regex = r"[^/]+"

    allowed_hosts = List(
        Unicode(),
        help="""Host names of the CKAN sites whose datasets are built; empty (the default)
        allows any site, as BinderHub does.""",
    ).tag(config=True)

    def detect_regex(self) -> str:
        return r"^(https?://[^/\s]+/(?:[^\s?#]*/)?dataset/)(?<repo>[^/\s?#]+)(/\S*)?$"

    def spec_for(self, doi: str, landing: str) -> RepoSpec:
        return self.parse(quote(landing, safe=""))

    def claims(self, url: str) -> bool:
        allowed = not self.allowed_hosts or host_of(url) in {h.lower() for h in self.allowed_hosts}
        return allowed and "/dataset/" in urlsplit(url).path

    async def resolve(self, repo_spec: RepoSpec) -> ResolvedRepo:
        url = repo_spec.repo
        if not self.claims(url):
            raise ResolveError(
                f"{host_of(url)} is not a CKAN site this service builds from", status=403
            )
        api, dataset, activity = dataset_parts(url)
        if activity:
            query = urlencode({"id": activity, "object_type": "package"})
            resp, body = await self.get_json(f"{api}activity_data_show?{query}", "reading it")
        else:
            resp, body = await self.get_json(
                f"{api}package_show?{urlencode({'id': dataset})}", "reading it"
            )
        result = body.get("result") if isinstance(body, dict) else None
        error_type = (
            ((body or {}).get("error") or {}).get("__type", "") if isinstance(body, dict) else ""
        )
        if not (isinstance(body, dict) and "success" in body):
            raise ResolveError(
                f"{url} did not answer as a CKAN site's dataset (HTTP {resp.status} from "
                f"{api}); check the URL",
                status=404,
            )
        if resp.status == 404 or error_type == "Not Found Error":
            raise self.not_found(
                f"dataset {dataset}" + (f" activity {activity}" if activity else ""), url
            )
        if resp.status in (401, 403) or error_type == "Authorization Error":
            raise self.restricted(f"dataset {dataset}", "private")
        if resp.status != 200 or not isinstance(result, dict):
            raise self.upstream_error(resp, f"reading dataset {dataset}")
        if result.get("state", "active") != "active":
            raise ResolveError(f"CKAN dataset {dataset} has been deleted", status=404)
        try:
            version = epoch(result["metadata_modified"])
        except (KeyError, TypeError, ValueError):
            raise ResolveError(
                f"CKAN's answer for {dataset} has no metadata_modified; check {url}", status=502
            ) from None
        parts = urlsplit(url)
        prefix = parts.path.partition("/dataset/")[0]
        return ResolvedRepo(
            provider=self.name,
            spec=repo_spec.spec,
            repo=f"{parts.netloc.lower()}{prefix}/dataset/{dataset}",
            repo_url=url,
            ref="",
            resolved_ref=f"{dataset}.v{version}",
            ref_url=url,
        )
