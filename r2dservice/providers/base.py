"""The provider interface (placeholder; the providers issue fills this in)."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ResolvedRepo:
    """A spec whose ref has been resolved to an immutable commit."""

    provider: str  # "gh"
    spec: str  # the spec as asked: "owner/repo/main"
    repo: str  # provider-specific identity of the repository: "owner/repo"
    repo_url: str  # what repo2docker fetches: "https://github.com/owner/repo"
    ref: str  # the ref as asked: "main"
    resolved_ref: str  # the commit: 40 hex digits
    ref_url: str = ""  # a web page for that commit (BinderHub's binder_ref_url)

    @property
    def persistent_spec(self) -> str:
        """The spec pinned to the resolved commit (BinderHub's binder_persistent_request)."""
        raise NotImplementedError
