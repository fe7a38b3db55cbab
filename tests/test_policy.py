"""Spec policy (banned_specs, allowed_specs, enabled) and per-user limits, in process.
The same policies through a real service process are in test_policy_service.py."""

import asyncio

import pytest
from traitlets import TraitError
from traitlets.config import Config

from r2dservice import policy, sharedlimits
from r2dservice.builds import BuildManager, BuildRejected
from r2dservice.providers.base import ResolveError
from r2dservice.providers.resolver import Resolver
from r2dservice.spec import SpecError
from r2dservice.store import BuildRecord
from tests.test_builds import GatedBuilder, StubRegistry, StubResolver, wait_started
from tests.test_providers import CountingProvider, counting  # noqa: F401 (a fixture)

# --- spec policy: BinderHub's semantics --------------------------------------------------


@pytest.mark.parametrize(
    "spec, banned, allowed, verdict",
    [
        ("evil/repo/main", ["^evil/.*"], [], policy.BANNED),
        ("EVIL/Repo/main", ["^evil/.*"], [], policy.BANNED),  # case-insensitive
        ("good/evil/main", ["evil/"], [], None),  # re.match: anchored at the start
        ("good/evil/main", [".*evil/"], [], policy.BANNED),
        ("good/repo/main", ["^evil/.*"], [], None),
        ("good/repo/main", [], ["^good/"], None),
        ("other/repo/main", [], ["^good/"], policy.NOT_ALLOWED),
        ("good/bad/main", ["^good/bad/"], ["^good/"], policy.BANNED),  # banned wins
        ("anything/at/all", [], [], None),
    ],
)
def test_spec_verdict(spec, banned, allowed, verdict):
    assert policy.spec_verdict(spec, banned, allowed) == verdict


def test_refusal_messages_say_it_is_policy():
    banned = policy.spec_refusal("gh", "evil/r/main", policy.BANNED)
    assert "gh/evil/r/main" in banned and "banned" in banned and "administrators" in banned
    other = policy.spec_refusal("gh", "x/r/main", policy.NOT_ALLOWED)
    assert "gh/x/r/main" in other and "allow only some gh/ repositories" in other


def test_a_pattern_that_is_no_regex_is_a_config_error():
    with pytest.raises(TraitError, match=r"GitHubRepoProvider.banned_specs: '\(' is not"):
        from r2dservice.providers.github import GitHubRepoProvider

        GitHubRepoProvider(banned_specs=["("])


def resolver_with(config: dict) -> Resolver:
    c = Config(config)
    return Resolver(config=c, providers={"gh": CountingProvider})


async def test_banned_and_allowed_specs_refuse_before_any_upstream_call(counting):  # noqa: F811
    resolver = resolver_with({"CountingProvider": {"banned_specs": ["^evil/"]}})
    with pytest.raises(ResolveError) as e:
        await resolver.resolve("gh", "Evil/repo/main")
    assert e.value.status == 403 and "banned" in e.value.message
    # The canonical spec is matched: a trailing slash or ".git" does not get around it.
    with pytest.raises(ResolveError):
        await resolver.resolve("gh", "evil/repo.git/main/")
    assert counting.calls == 0
    await resolver.resolve("gh", "good/repo/main")
    assert counting.calls == 1


async def test_config_on_the_base_class_applies_to_every_provider(counting):  # noqa: F811
    resolver = resolver_with({"RepoProvider": {"allowed_specs": ["^ours/"]}})
    await resolver.resolve("gh", "ours/repo/main")
    with pytest.raises(ResolveError, match="allow only some gh/ repositories"):
        await resolver.resolve("gh", "theirs/repo/main")


async def test_a_disabled_provider_is_a_400_and_leaves_the_list(counting):  # noqa: F811
    resolver = Resolver(
        config=Config({"GitLabRepoProvider": {"enabled": False}}),
        providers={
            "gh": "r2dservice.providers.github.GitHubRepoProvider",
            "gl": "r2dservice.providers.gitlab.GitLabRepoProvider",
        },
    )
    assert [p["id"] for p in resolver.describe()] == ["gh"]
    assert resolver.enabled() == ["gh"]
    with pytest.raises(SpecError, match="'gl' is turned off on this service: .* builds from gh"):
        await resolver.resolve("gl", "g%2Fp/main")
    with pytest.raises(SpecError, match="unknown provider 'zz'"):
        await resolver.resolve("zz", "a/b/main")


# --- per-user limits ---------------------------------------------------------------------


@pytest.fixture
async def limited():
    registry = StubRegistry()
    builder = GatedBuilder(registry)
    manager = BuildManager(
        builder=builder,
        registry=registry,
        resolver=StubResolver(),
        image_prefix="reg.example/r2d-",
        concurrent_build_limit=2,
        per_user_build_limit=1,
        per_user_queue_limit=2,
    )
    yield manager, builder
    await manager.stop()


async def test_the_queue_limit_names_the_limit_and_the_builds_using_it(limited):
    manager, builder = limited
    running = await manager.request("gh", "o/r/a", user="alice")
    waiting = [await manager.request("gh", f"o/r/{x}", user="alice") for x in "bc"]
    await wait_started(builder, 1)
    assert running.state == "running" and [b.state for b in waiting] == ["queued", "queued"]
    with pytest.raises(BuildRejected) as e:
        await manager.request("gh", "o/r/d", user="alice")
    assert e.value.status == 429
    message = e.value.message
    assert "2 builds waiting" in message and "(2)" in message and "1 running" in message
    assert all(
        f"gh/o/r/{x} (queued, build {b.id})" in message for x, b in zip("bc", waiting, strict=True)
    )
    # Joining never counts: another user joins alice's queued build, and alice joins hers.
    assert await manager.request("gh", "o/r/b", user="carol") is waiting[0]
    assert await manager.request("gh", "o/r/c", user="alice") is waiting[1]
    # Others are not affected by alice's limit, and an admin is exempt.
    await manager.request("gh", "o/r/e", user="carol")
    await manager.request("gh", "o/r/f", user="root", is_admin=True)
    await manager.request("gh", "o/r/g", user="root", is_admin=True)
    await manager.request("gh", "o/r/h", user="root", is_admin=True)


async def test_a_withdrawn_request_frees_the_users_share(limited):
    manager, _ = limited
    await manager.request("gh", "o/r/a", user="alice")
    waiting = [await manager.request("gh", f"o/r/{x}", user="alice") for x in "bc"]
    manager.cancel(waiting[0].id, by="alice", for_all=False)
    await manager.request("gh", "o/r/d", user="alice")


async def test_anonymous_callers_and_configured_admins():
    registry = StubRegistry()
    manager = BuildManager(
        builder=GatedBuilder(registry),
        registry=registry,
        resolver=StubResolver(),
        per_user_queue_limit=1,
        concurrent_build_limit=1,
        user_limits_for_admins=True,
    )
    for x in "abc":  # auth off: one anonymous caller; only the global limits apply
        await manager.request("gh", f"o/r/{x}")
    await manager.request("gh", "o/r/d", user="root", is_admin=True)
    with pytest.raises(BuildRejected):
        await manager.request("gh", "o/r/e", user="root", is_admin=True)
    await manager.stop()


async def test_two_quick_requests_at_the_limit_let_exactly_one_through(limited):
    manager, _ = limited
    await manager.request("gh", "o/r/a", user="alice")
    await manager.request("gh", "o/r/b", user="alice")
    results = await asyncio.gather(
        *(manager.request("gh", f"o/r/{x}", user="alice") for x in "cdefg"),
        return_exceptions=True,
    )
    refused = [r for r in results if isinstance(r, BuildRejected)]
    assert len(refused) == 4 and {r.status for r in refused} == {429}
    assert sum(b.request.user == "alice" for b in manager._queue) == 2


async def test_fair_share_a_newcomer_starts_before_a_users_backlog(limited):
    manager, builder = limited
    manager.per_user_build_limit = 0
    manager.per_user_queue_limit = 0
    hog = [await manager.request("gh", f"o/hog/{i}", user="mallory") for i in range(8)]
    await wait_started(builder, 2)
    carol = await manager.request("gh", "o/r/carol", user="carol")
    assert manager._queue[0] is carol
    assert carol.log.last.extra["position"] == 1
    builder.gate(hog[0].image_name).set()  # one of mallory's ends: carol's turn, not hers
    await wait_started(builder, 3)
    assert builder.started[-1] == carol.image_name


async def test_per_user_build_limit_leaves_slots_to_others(limited):
    manager, builder = limited  # 2 slots, 1 running build per user
    hog = [await manager.request("gh", f"o/hog/{i}", user="mallory") for i in range(3)]
    await wait_started(builder, 1)
    await asyncio.sleep(0.05)
    assert [b.state for b in hog] == ["running", "queued", "queued"]
    assert "it waits for one of those to end" in hog[1].log.last.message
    carol = await manager.request("gh", "o/r/carol", user="carol")
    assert carol.state == "running"  # the free slot, at once
    builder.gate(hog[0].image_name).set()
    await wait_started(builder, 3)
    assert hog[1].state == "running" and hog[2].state == "queued"


def test_next_startable_and_queue_key():
    owners = [("m", True), ("m", True), ("c", True), ("", False)]
    assert policy.next_startable(owners, {"m": 1}, cap=1) == 2
    assert policy.next_startable(owners, {"m": 1, "c": 1}, cap=1) == 3
    assert policy.next_startable(owners[:2], {"m": 1}, cap=1) == -1
    assert policy.next_startable(owners[:2], {"m": 1}, cap=0) == 0
    assert policy.queue_key(4, 10, 7) > policy.queue_key(0, 0, 99)
    assert policy.queue_key(1, 0, 3) < policy.queue_key(1, 0, 4)


# --- limits across replicas (two real processes on PostgreSQL: test_records.py) ----------


def record(build_id, state, *requesters, withdrawn=()):
    return BuildRecord(
        id=build_id,
        image_name=f"r2d-x:{build_id}",
        provider="gh",
        spec=f"o/{build_id}/main",
        repo_url="https://github.com/o/x",
        ref="0" * 40,
        builder="local",
        handle="",
        state=state,
        requesters={u: 0.0 for u in requesters},
        withdrawn=set(withdrawn),
    )


def test_a_recorded_build_counts_against_its_first_requester_unless_withdrawn():
    records = [
        record("r1", "running", "alice", "carol"),  # carol joined: alice's
        record("r2", "queued", "alice"),
        record("r3", "running", "bob", "alice", withdrawn={"bob"}),  # nobody's
        record("r4", "ready", "alice"),  # finished: nobody's
    ]
    grouped = sharedlimits.by_owner(records)
    assert {u: [r.id for r in rs] for u, rs in grouped.items()} == {"alice": ["r1", "r2"]}


def test_the_refusal_names_running_builds_too():
    message = policy.queue_limit_refusal(
        1, [("gh/o/a/main", "running", "b1")], [("gh/o/b/main", "queued", "b2")]
    )
    assert "1 running" in message and "(1)" in message
    assert "Running: gh/o/a/main (running, build b1)." in message
    assert "Waiting: gh/o/b/main (queued, build b2)." in message


class Peers:
    """What SharedLimits tells the manager, set by the test: other replicas' builds."""

    def __init__(self, manager):
        self.records: list[BuildRecord] = []
        self.asked: list[str] = []
        manager.peers = self

    def builds_of(self, user):
        return sharedlimits.by_owner(self.records).get(user, [])

    def running_by_user(self):
        by = sharedlimits.by_owner(self.records)
        return {u: sum(r.state == "running" for r in rs) for u, rs in by.items()}

    async def refresh_user(self, user):
        self.asked.append(user)

    async def publish(self):
        pass


async def test_other_replicas_builds_count_against_the_user(limited):
    manager, builder = limited  # 2 slots, 1 running and 2 queued builds per user
    peers = Peers(manager)
    peers.records = [record("far1", "running", "alice"), record("far2", "queued", "alice")]
    # Her one running build is elsewhere: a new one waits here, though a slot is free.
    held = await manager.request("gh", "o/r/a", user="alice")
    assert held.state == "queued" and peers.asked == ["alice"]
    assert "it waits for one of those to end" in held.log.last.message
    # One waiting there, one here: the queue limit (2) is reached, and the refusal
    # names them all.
    with pytest.raises(BuildRejected) as e:
        await manager.request("gh", "o/r/b", user="alice")
    assert e.value.status == 429
    assert all(i in e.value.message for i in ("far1", "far2", held.id))
    # Carol is not affected; joining alice's build is free.
    assert (await manager.request("gh", "o/r/c", user="carol")).state == "running"
    assert await manager.request("gh", "o/r/a", user="carol") is held
    # The build elsewhere ends: hers starts here.
    peers.records = [record("far2", "queued", "alice")]
    manager.limits_changed()
    await wait_started(builder, 2)
    assert held.state == "running"
