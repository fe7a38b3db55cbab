"""Repository providers: resolve a spec to an immutable commit or record version."""

from .base import RepoProvider, ResolvedRepo, ResolveError
from .ckan import CKANRepoProvider
from .data import DataRepoProvider
from .dataverse import DataverseRepoProvider
from .doi import DOIRepoProvider
from .figshare import FigshareRepoProvider
from .gist import GistRepoProvider
from .git import GitRepoProvider
from .gitea import GiteaRepoProvider
from .github import GitHubAPIProvider, GitHubRepoProvider
from .gitlab import GitLabRepoProvider
from .hydroshare import HydroShareRepoProvider
from .resolver import Resolver
from .swhid import SwhidRepoProvider
from .zenodo import ZenodoRepoProvider

__all__ = [
    "CKANRepoProvider",
    "DOIRepoProvider",
    "DataRepoProvider",
    "DataverseRepoProvider",
    "FigshareRepoProvider",
    "GistRepoProvider",
    "GitHubAPIProvider",
    "GitHubRepoProvider",
    "GitLabRepoProvider",
    "GitRepoProvider",
    "GiteaRepoProvider",
    "HydroShareRepoProvider",
    "RepoProvider",
    "ResolveError",
    "ResolvedRepo",
    "Resolver",
    "SwhidRepoProvider",
    "ZenodoRepoProvider",
]
