"""Figshare: figshare/<DOI>.

As BinderHub: the DOI names the article and maybe its version
(10.6084/m9.figshare.9782777.v1); without a version the latest is asked from the API.
The version asked is then read, so a missing or embargoed article fails with its reason.
"""

from __future__ import annotations

import re

from traitlets import List, Unicode

from ..spec import RepoSpec
from .base import ResolvedRepo, ResolveError
from .data import DataRepoProvider, host_of

_ARTICLE = re.compile(r"\.(\d+)(?:\.v(\d+))?$")


def article_version(doi: str) -> tuple[str, str | None]:
    """'10.6084/m9.figshare.9782777.v1' -> ('9782777', '1'); no version: (id, None)."""
    m = _ARTICLE.search(doi.partition("/")[2])
    if m is None:
        raise ValueError(doi)
    return m.group(1), m.group(2)


class FigshareRepoProvider(DataRepoProvider):
    """Articles on figshare.com and institutional Figshare sites (one API for all)."""

    name = "figshare"
    display_name = "FigShare DOI"
    repo_label = "FigShare DOI"
    repo_placeholder = "example: 10.6084/m9.figshare.9782777.v1"

    api_base_url = Unicode("https://api.figshare.com/v2", help="Base URL of the Figshare API.").tag(
        config=True
    )
    sites = List(
        Unicode(),
        default_value=["https://figshare.com"],
        help="""Base URLs of Figshare sites (institutional ones too), for doi/<DOI> to
        know their article pages; any *.figshare.com host is known already.""",
    ).tag(config=True)

    def claims(self, landing: str) -> bool:
        host = host_of(landing)
        known = host.endswith(".figshare.com") or host in {host_of(s) for s in self.sites}
        return known and "/articles/" in landing

    def detect_regex(self) -> str:
        return (
            r"^(https?://(?:dx\.)?doi\.org/|doi:)?(?<repo>10\.\d+/[^/\s]*figshare\.\d+(\.v\d+)?)$"
        )

    async def resolve(self, repo_spec: RepoSpec) -> ResolvedRepo:
        doi = repo_spec.repo
        try:
            article, version = article_version(doi)
        except ValueError:
            raise ResolveError(
                f"{doi} is not a Figshare article's DOI (…figshare.<article>[.v<version>])",
                status=400,
            ) from None
        api = f"{self.api_base_url.rstrip('/')}/articles/{article}"
        page = self.doi_url(doi)
        if version is None:
            resp, versions = await self.get_json(f"{api}/versions", f"listing article {article}")
            self._check(resp, article, page)
            numbers = [v.get("version") for v in versions or [] if isinstance(v, dict)]
            numbers = [n for n in numbers if isinstance(n, int)]
            if not numbers:
                raise ResolveError(f"Figshare article {article} has no versions", status=404)
            version = str(max(numbers))
        resp, body = await self.get_json(f"{api}/versions/{version}", f"reading article {article}")
        self._check(resp, article, page, version)
        if not isinstance(body, dict):
            raise self.upstream_error(resp, f"reading article {article}")
        if body.get("is_embargoed"):
            until = body.get("embargo_date") or "a later date"
            raise self.restricted(f"article {article}", f"under embargo until {until}")
        resolved = f"{article}.v{version}"
        pinned = re.sub(r"\.\d+(\.v\d+)?$", f".{resolved}", doi)
        return ResolvedRepo(
            provider=self.name,
            spec=repo_spec.spec,
            repo=f"figshare/articles/{article}",
            repo_url=self.repo_url(repo_spec),
            ref="",
            resolved_ref=resolved,
            ref_url=self.doi_url(pinned),
            pinned_spec=pinned,
        )

    def _check(self, resp, article: str, page: str, version: str | None = None) -> None:
        if resp.status == 404:
            what = f"article {article}" + (f" in version {version}" if version else "")
            raise self.not_found(what, page)
        if resp.status in (401, 403):
            raise self.restricted(f"article {article}", "private")
        if resp.status != 200:
            raise self.upstream_error(resp, f"reading article {article}")
