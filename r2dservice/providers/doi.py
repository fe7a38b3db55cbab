"""Any DOI: doi/<DOI>, resolved by whichever configured provider serves the record.

The DOI resolver says where the DOI leads; the provider whose site that is resolves it
as if asked directly, so doi/<DOI> and zenodo/<DOI> make the same image.
"""

from __future__ import annotations

from ..spec import RepoSpec
from .base import ResolvedRepo, ResolveError
from .data import DataRepoProvider


class DOIRepoProvider(DataRepoProvider):
    """A DOI of a record on any data repository this service builds from."""

    name = "doi"
    display_name = "DOI"
    repo_label = "DOI"
    repo_placeholder = "example: 10.5281/zenodo.3242074"

    def detect_regex(self) -> str:
        return r"^(https?://(?:dx\.)?doi\.org/|doi:)?(?<repo>10\.\d+/\S+)$"

    def _targets(self) -> list[DataRepoProvider]:
        # the other data providers configured beside this one, in the Resolver's order
        resolver = self.parent
        names = resolver.enabled() if hasattr(resolver, "enabled") else []
        targets = [resolver.provider(n) for n in names if n != self.name]
        return [
            t
            for t in targets
            if isinstance(t, DataRepoProvider) and type(t).claims is not DataRepoProvider.claims
        ]

    async def resolve(self, repo_spec: RepoSpec) -> ResolvedRepo:
        doi = repo_spec.repo
        landing = await self.landing_url(doi)
        for target in self._targets():
            if target.claims(landing):
                return await target.resolve_at(target.spec_for(doi, landing), landing)
        served = ", ".join(t.display_name for t in self._targets()) or "none"
        raise ResolveError(
            f"DOI {doi} leads to {landing}, which is not on a repository this service builds "
            f"from (DOIs of: {served})",
            status=400,
        )
