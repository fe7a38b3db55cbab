"""What the providers of data repositories share (Zenodo, Figshare, Dataverse, HydroShare,
CKAN, Software Heritage): specs without a ref, DOI resolution, and one reading of the
HTTP answers (missing, gone, restricted, rate-limited, down) that they all give.
"""

from __future__ import annotations

import asyncio
from datetime import datetime, timezone
from urllib.parse import quote, urljoin, urlsplit

import aiohttp
from traitlets import Unicode

from ..spec import RepoSpec
from .base import ResolveError
from .http import HTTPRepoProvider, Response

# BinderHub's validateRegex for DOI specs.
DOI_VALIDATE = r"10\.\d+\/(.)+"
_MAX_REDIRECTS = 10


class DataRepoProvider(HTTPRepoProvider):
    """A repository of records whose spec names the record, not a ref.

    Configure what they share with c.DataRepoProvider.*.
    """

    has_ref = False
    validate_regex = DOI_VALIDATE

    doi_resolver_url = Unicode(
        "https://doi.org",
        help="""The DOI resolver: <doi_resolver_url>/<DOI> redirects to the record's page.""",
    ).tag(config=True)

    def repo_url(self, repo_spec: RepoSpec) -> str:
        # as BinderHub: repo2docker gets the DOI and finds the record itself
        return repo_spec.repo

    # --- for doi/<DOI>: which provider serves the page a DOI leads to ---

    def claims(self, landing: str) -> bool:
        """Whether a DOI's landing page is a record of this provider (pure)."""
        return False

    def spec_for(self, doi: str, landing: str) -> RepoSpec:
        """This provider's spec for a DOI that leads to `landing`."""
        return self.parse(doi)

    async def resolve_at(self, repo_spec: RepoSpec, landing: str):
        """Resolve, knowing the DOI's landing page already (the doi provider followed it)."""
        return await self.resolve(repo_spec)

    def doi_url(self, doi: str) -> str:
        return f"{self.doi_resolver_url.rstrip('/')}/{quote(doi, safe='/:;()')}"

    async def landing_url(self, doi: str) -> str:
        """The page a DOI leads to, after every redirect; ResolveError if none.

        Redirects are followed by hand and the pages are not read: only the URL matters,
        and the site's API (asked next) says better than its pages whether they work.
        """
        url = first = self.doi_url(doi)
        self.log.debug("%s: resolving DOI %s", self.display_name, doi)
        for _hop in range(_MAX_REDIRECTS):
            try:
                async with self._get_session().get(url, allow_redirects=False) as resp:
                    status, headers = resp.status, resp.headers
            except (asyncio.TimeoutError, aiohttp.ClientError) as e:
                if url != first:
                    return url  # the DOI led here; the provider's API will say more
                why = "no answer in time" if isinstance(e, asyncio.TimeoutError) else str(e)
                raise ResolveError(
                    f"could not resolve DOI {doi} at {self._host(url)} ({why}); try again "
                    "in a minute, or tell the administrator if it persists",
                    status=503,
                ) from None
            if status in (301, 302, 303, 307, 308) and "Location" in headers:
                url = urljoin(url, headers["Location"])
                continue
            if url != first:
                return url
            if status == 404:
                raise ResolveError(f"DOI {doi} does not exist: check {url}", status=404)
            raise ResolveError(
                f"the DOI resolver ({self._host(url)}) answered HTTP {status} for {doi}; "
                "try again in a minute",
                status=503,
                retry_after=retry_after(headers.get("Retry-After")),
            )
        raise ResolveError(f"DOI {doi} redirects too often (from {first})", status=502)

    async def get_json(self, url: str, what: str) -> tuple[Response, object]:
        """GET a JSON API; rate limits and server failures raise ResolveError(503)."""
        resp = await self.get(url, {"Accept": "application/json"})
        if resp.status == 429 or (resp.status == 503 and "Retry-After" in resp.headers):
            wait = retry_after(resp.headers.get("Retry-After")) or 60
            raise ResolveError(
                f"{self.display_name}'s API rate limit is reached (while {what}); "
                f"try again in {wait} seconds",
                status=503,
                retry_after=wait,
            )
        if resp.status >= 500:
            raise self.upstream_error(resp, what)
        return resp, resp.json()

    def not_found(self, what: str, page: str) -> ResolveError:
        return ResolveError(f"{self.display_name} has no {what}: check {page}", status=404)

    def restricted(self, what: str, why: str = "restricted") -> ResolveError:
        return ResolveError(
            f"{self.display_name} {what} is {why}: repo2docker can only fetch open "
            "records, so it cannot be built here",
            status=403,
        )


def retry_after(header: str | None) -> int | None:
    """A Retry-After header's seconds (None if absent or a date)."""
    try:
        return max(0, int(header))
    except (TypeError, ValueError):
        return None


def epoch(timestamp: str) -> str:
    """'2024-01-31T12:00:00.123456' -> '1706702400': UTC seconds, the fraction dropped,
    as BinderHub names HydroShare and CKAN versions. ValueError if it is no timestamp."""
    text = timestamp.strip().split(".")[0].removesuffix("Z")
    parsed = datetime.fromisoformat(text)
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=timezone.utc)
    return str(int(parsed.timestamp()))


def host_of(url: str) -> str:
    """'https://u@Zenodo.org:443/x' -> 'zenodo.org:443' (the port tells sites apart)."""
    return urlsplit(url).netloc.rpartition("@")[2].lower()
