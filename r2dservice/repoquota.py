"""BinderHub's per-repository launch quota: how many servers may run one repository.

BinderHub counts the single-user pods whose image is the repository's image (any tag,
so any ref) and refuses a launch when that count has reached the quota
(`per_repo_quota`, or `per_repo_quota_higher` for specs matching a provider's
`high_quota_specs`; 0 means no quota). Our servers are started with
user_options {"repo": "<provider>/<pinned spec>"}, so the count is of the hub's active
servers (running or starting, any user) whose user_options name the same repository.
Reading every user's servers takes the service's own token with list:users and
read:servers: the caller's token sees only the caller's.
"""

from __future__ import annotations

from .hubapi import HubAPI, HubAPIError, said_by_hub
from .spec import SpecError, parse_spec

MISSING_SCOPES = (
    "This service cannot count the servers running a repository (c.Launcher.per_repo_quota "
    "is set): its token needs the scopes list:users and read:servers, from a role for the "
    "service (docs/launch.md). The hub said: {}"
)


class QuotaExceeded(Exception):
    def __init__(self, message: str, quota: int, used: int):
        super().__init__(message)
        self.message = message
        self.quota = quota
        self.used = used


class QuotaUnknown(Exception):
    """The servers could not be counted (the hub does not answer, or the service's
    token may not list them); `status` for the answer, `message` for a person."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


def repository(spec: str) -> str | None:
    """The repository a "<provider>/<spec>" names, ref left out: "gh/Owner/repo".
    None if it does not parse."""
    provider, _, rest = spec.partition("/")
    try:
        return f"{provider}/{parse_spec(provider, rest).repo}"
    except SpecError:
        return None


def repo_key(spec: str) -> str | None:
    """repository() for comparing: lower case (forges treat Owner/Repo and owner/repo
    alike, and BinderHub's image names, which it compares, are lower case)."""
    name = repository(spec)
    return name.lower() if name is not None else None


def quota_for(higher: bool, per_repo_quota: int, per_repo_quota_higher: int) -> int:
    """The quota of a repository, as BinderHub's repo_config(): 0 means none."""
    return per_repo_quota_higher if higher else per_repo_quota


def count_servers(users: list[dict], key: str, skip: tuple[str, str] | None = None) -> int:
    """How many servers of these users (the hub's user models) were launched from the
    repository `key`; `skip` is (user, server name), a server the launch replaces."""
    n = 0
    for user in users:
        for name, server in (user.get("servers") or {}).items():
            if skip == (user.get("name"), name):
                continue
            options = (server or {}).get("user_options") or {}
            repo = options.get("repo") if isinstance(options, dict) else None
            if isinstance(repo, str) and repo_key(repo) == key:
                n += 1
    return n


def refusal(repo: str, used: int, quota: int) -> str:
    """BinderHub's message ("Too many users running <repo>! Try again soon."), with the
    numbers: it is a passing state, not the user's fault."""
    return (
        f"Too many users running {repo}! Try again soon: {used} servers run this repository, "
        f"the most this hub allows for one ({quota})."
    )


async def check(hub: HubAPI, repo: str, quota: int, *, skip: tuple[str, str] | None = None) -> int:
    """How many servers run `repo`'s repository; QuotaExceeded at `quota` or more,
    QuotaUnknown when they cannot be counted. `quota` 0: no check, 0."""
    key = repo_key(repo)
    if not quota or key is None:
        return 0
    try:
        users = await hub.active_users()
    except HubAPIError as e:
        if e.status == 403:
            raise QuotaUnknown(500, MISSING_SCOPES.format(e.message)) from None
        raise QuotaUnknown(503, said_by_hub(e.message)) from None
    if any("servers" not in u for u in users):
        # listed, but without servers: the token lacks read:servers
        raise QuotaUnknown(500, MISSING_SCOPES.format("no servers in the users' models"))
    used = count_servers(users, key, skip)
    if used >= quota:
        raise QuotaExceeded(refusal(repository(repo) or repo, used, quota), quota, used)
    return used
