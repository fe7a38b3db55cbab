"""Who may build what: spec policy and per-user limits. Pure: no I/O, no state.

Spec policy has BinderHub's meaning, so operators' patterns carry over: each pattern
is a regular expression matched with re.match (anchored at the start only) and
case-insensitively (most forges treat Owner/Repo and owner/repo alike) against the
spec without its "<provider>/" prefix. A spec that matches any banned pattern is
refused; when allowed patterns are set, a spec must also match one of them. Banned
wins over allowed.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Sequence

BANNED = "banned"
NOT_ALLOWED = "not-allowed"


@functools.lru_cache(maxsize=256)
def compile_patterns(patterns: tuple[str, ...]) -> tuple[re.Pattern, ...]:
    """Compiled once per configured list (checked on every request)."""
    return tuple(re.compile(p, re.IGNORECASE) for p in patterns)


def pattern_problem(pattern: str) -> str | None:
    """Why a configured pattern is unusable, or None (for a clear config error)."""
    try:
        re.compile(pattern, re.IGNORECASE)
    except re.error as e:
        return f"{pattern!r} is not a regular expression ({e})"
    return None


def spec_verdict(spec: str, banned: Sequence[str], allowed: Sequence[str]) -> str | None:
    """BANNED, NOT_ALLOWED, or None when the spec may be built."""
    if any(p.match(spec) for p in compile_patterns(tuple(banned))):
        return BANNED
    if allowed and not any(p.match(spec) for p in compile_patterns(tuple(allowed))):
        return NOT_ALLOWED
    return None


def matches_any(spec: str, patterns: Sequence[str]) -> bool:
    """Whether any pattern matches the spec, as banned_specs match (high_quota_specs)."""
    return any(p.match(spec) for p in compile_patterns(tuple(patterns)))


def spec_refusal(provider: str, spec: str, verdict: str) -> str:
    """The message for a refused spec: it says the spec is refused by this service's
    policy (not missing, not broken), so nobody retries or files a bug about it."""
    if verdict == BANNED:
        return (
            f"Sorry, {provider}/{spec} has been disabled on this service: its administrators "
            "banned it. Please contact them for more information."
        )
    return (
        f"Sorry, {provider}/{spec} is not among the repositories this service builds: its "
        f"administrators allow only some {provider}/ repositories. Please contact them for "
        "more information."
    )


# --- per-user limits -------------------------------------------------------------------


def queue_key(running: int, queued: int, seq: int) -> tuple[int, int]:
    """Where a new build goes in the queue: fair share by user. A user's build waits
    behind the builds of users who have fewer running and queued than they have, so
    someone who queues 100 builds does not make everyone else wait for all 100; among
    equals, first come first served (`seq` is the arrival order)."""
    return (running + queued, seq)


def next_startable(owners: Iterable[tuple[str, bool]], running: dict[str, int], cap: int) -> int:
    """The index of the first queued build that may start, or -1.

    `owners`: (user, capped) of each queued build in queue order; `running`: each user's
    running builds; `cap`: how many builds of one capped user may run at once (0: any).
    """
    for i, (user, capped) in enumerate(owners):
        if not (cap and capped and running.get(user, 0) >= cap):
            return i
    return -1


def describe_builds(builds: Sequence[tuple[str, str, str]], most: int = 5) -> str:
    """ "gh/o/r/main (queued, build 3f9c...)" for each (spec, state, id), some at most."""
    shown = [f"{spec} ({state}, build {build_id})" for spec, state, build_id in builds[:most]]
    more = len(builds) - len(shown)
    return "; ".join(shown) + (f"; and {more} more" if more > 0 else "")


def queue_limit_refusal(
    limit: int, running: Sequence[tuple[str, str, str]], queued: Sequence[tuple[str, str, str]]
) -> str:
    """The message for a user past their queue limit: the limit, and what uses it (their
    builds on every replica, as (spec, state, id))."""
    now = f" Running: {describe_builds(running)}." if running else ""
    return (
        f"You already have {len(queued)} build{'s' if len(queued) != 1 else ''} waiting for a "
        f"slot, the most one user may have waiting here ({limit}), and {len(running)} running. "
        f"Waiting: {describe_builds(queued)}.{now} Try again when one of them has started, or "
        "cancel one you no longer need (POST api/builds/<id>/cancel)."
    )
