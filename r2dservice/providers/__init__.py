"""Repository providers: resolve a spec's ref to an immutable commit."""

from .base import RepoProvider, ResolvedRepo, ResolveError
from .gist import GistRepoProvider
from .git import GitRepoProvider
from .github import GitHubAPIProvider, GitHubRepoProvider
from .gitlab import GitLabRepoProvider
from .resolver import Resolver

__all__ = [
    "GistRepoProvider",
    "GitHubAPIProvider",
    "GitHubRepoProvider",
    "GitLabRepoProvider",
    "GitRepoProvider",
    "RepoProvider",
    "ResolveError",
    "ResolvedRepo",
    "Resolver",
]
