"""The repository providers and the Resolver, against fake forges and real git servers."""
# ruff: noqa: F811  (pytest fixtures imported from tests.fakes.gitserver are parameters here)

import asyncio
import os
import re
import time

import pytest
import pytest_asyncio
from traitlets import TraitError
from traitlets.config import Config

from r2dservice.hostpolicy import parse_address
from r2dservice.providers import (
    GistRepoProvider,
    GitHubRepoProvider,
    GitLabRepoProvider,
    GitRepoProvider,
    RepoProvider,
    ResolvedRepo,
    ResolveError,
    Resolver,
)
from r2dservice.spec import SpecError, parse_spec
from tests.fakes.forge import FakeForge, fake_sha
from tests.fakes.gitserver import (  # noqa: F401  (fixtures)
    BlackHole,
    GitHTTPServer,
    free_port,
    git,
    git_daemon,
    git_http_server,
    git_root,
    make_repo,
)

MAIN = fake_sha("main")
DEV = fake_sha("dev")
TAGGED = fake_sha("v1")
OLD = fake_sha("old")


@pytest_asyncio.fixture
async def forge():
    async with FakeForge(token="gh-token", gitlab_token="gl-token") as f:
        f.add_github_repo(
            "octo/demo",
            branches={"main": MAIN, "feature/x": DEV},
            tags={"v1": TAGGED},
        )
        f.add_github_repo("octo/secret", branches={"main": MAIN}, private=True)
        f.add_github_repo("octo/empty")
        f.add_gitlab_project(
            "group/sub/project", branches={"main": MAIN, "feature/x": DEV}, tags={"v1": TAGGED}
        )
        f.add_gitlab_project("group/private", branches={"main": MAIN}, private=True)
        f.add_gist("octocat", "abc123", [MAIN, OLD])
        f.add_gist("octocat", "hidden1", [MAIN], public=False)
        f.add_gist(None, "anon1", [MAIN])
        yield f


def github(forge, **kw) -> GitHubRepoProvider:
    kw.setdefault("access_token", "")
    kw.setdefault("trust_env", False)  # a proxy in the environment must not catch 127.0.0.1
    return GitHubRepoProvider(api_base_url=forge.url, **kw)


async def resolve(provider: RepoProvider, spec: str) -> ResolvedRepo:
    try:
        return await provider.resolve(provider.parse(spec))
    finally:
        await provider.close()


async def resolve_error(provider: RepoProvider, spec: str) -> ResolveError:
    with pytest.raises(ResolveError) as e:
        await resolve(provider, spec)
    return e.value


# --- GitHub --------------------------------------------------------------------------


@pytest.mark.asyncio
@pytest.mark.parametrize(
    "spec, sha",
    [
        ("octo/demo/main", MAIN),
        ("octo/demo/HEAD", MAIN),
        ("octo/demo/feature/x", DEV),
        ("octo/demo/v1", TAGGED),
        ("octo/demo/" + DEV, DEV),
        ("OCTO/Demo.git/main/", MAIN),
    ],
)
async def test_github_resolves(forge, spec, sha):
    resolved = await resolve(github(forge), spec)
    assert resolved.resolved_ref == sha
    assert resolved.provider == "gh"


@pytest.mark.asyncio
async def test_github_resolved_repo_fields(forge):
    resolved = await resolve(
        github(forge, html_base_url="https://ghe.example.org/"), "octo/demo/feature/x"
    )
    assert resolved == ResolvedRepo(
        provider="gh",
        spec="octo/demo/feature/x",
        repo="octo/demo",
        repo_url="https://ghe.example.org/octo/demo",
        ref="feature/x",
        resolved_ref=DEV,
        ref_url=f"https://ghe.example.org/octo/demo/tree/{DEV}",
    )
    assert resolved.persistent_spec == f"octo/demo/{DEV}"
    [commit] = forge.requests  # one call: the commit's JSON names the repository too
    assert commit.path == "/repos/octo/demo/commits/feature/x"
    assert commit.headers["Accept"] == "application/vnd.github+json"
    assert "Authorization" not in commit.headers
    assert commit.headers["User-Agent"].startswith("r2dservice/")


@pytest.mark.asyncio
async def test_github_names_are_case_insensitive(forge):
    """Every spelling of a repository resolves to GitHub's own: one image for all."""
    forge.add_github_repo("Binder-Examples/Requirements", branches={"main": MAIN})
    provider = github(forge)
    for spec in ("binder-examples/requirements/main", "BINDER-examples/REQUIREMENTS/HEAD"):
        resolved = await provider.resolve(parse_spec("gh", spec))
        assert resolved.repo == "Binder-Examples/Requirements"
        assert resolved.repo_url == "https://github.com/Binder-Examples/Requirements"
        assert resolved.resolved_ref == MAIN
    await provider.close()
    # One call a spelling: the commit's html_url spells the repository as GitHub does.
    assert forge.paths() == [
        "/repos/binder-examples/requirements/commits/main",
        "/repos/BINDER-examples/REQUIREMENTS/commits/HEAD",
    ]


@pytest.mark.asyncio
async def test_github_canonical_names_can_be_turned_off(forge):
    resolved = await resolve(github(forge, canonical_names=False), "OCTO/demo/main")
    assert resolved.repo == "OCTO/demo"
    assert forge.paths() == ["/repos/OCTO/demo/commits/main"]


@pytest.mark.asyncio
async def test_github_token_is_sent_and_opens_private_repos(forge):
    assert (await resolve_error(github(forge), "octo/secret/main")).status == 404
    resolved = await resolve(github(forge, access_token="gh-token"), "octo/secret/main")
    assert resolved.resolved_ref == MAIN
    assert forge.requests[-1].headers["Authorization"] == "Bearer gh-token"


@pytest.mark.asyncio
async def test_github_token_from_environment(forge, monkeypatch):
    monkeypatch.setenv("GITHUB_ACCESS_TOKEN", "gh-token")
    provider = GitHubRepoProvider(api_base_url=forge.url)
    assert (await resolve(provider, "octo/secret/main")).resolved_ref == MAIN


@pytest.mark.asyncio
async def test_github_bad_token(forge):
    error = await resolve_error(github(forge, access_token="wrong"), "octo/demo/main")
    assert error.status == 502
    assert "c.GitHubRepoProvider.access_token" in error.message
    assert "wrong" not in error.message


@pytest.mark.asyncio
@pytest.mark.parametrize(
    "spec, status, words",
    [
        ("octo/nope/main", 404, ["GitHub repository octo/nope not found", "/octo/nope"]),
        ("octo/demo/nope", 404, ["ref 'nope' not found in https://github.com/octo/demo", "HEAD"]),
        ("octo/demo/feature/nope", 404, ["ref 'feature/nope' not found"]),
        ("octo/demo/master", 404, ["use octo/demo/HEAD"]),
        ("octo/empty/main", 404, ["is empty", "push a commit"]),
    ],
)
async def test_github_not_found(forge, spec, status, words):
    error = await resolve_error(github(forge), spec)
    assert error.status == status
    for word in words:
        assert word in error.message


@pytest.mark.asyncio
async def test_github_rate_limit_without_token(forge):
    forge.rate_remaining = 0
    forge.rate_reset = int(time.time()) + 600
    error = await resolve_error(github(forge), "octo/demo/main")
    assert error.status == 503
    assert "rate limit (60 requests an hour) is used up until" in error.message
    assert "in 10 minutes" in error.message
    assert "c.GitHubRepoProvider.access_token" in error.message
    assert 595 <= error.retry_after <= 600


@pytest.mark.asyncio
async def test_github_rate_limit_with_token(forge):
    forge.rate_remaining = 0
    error = await resolve_error(github(forge, access_token="gh-token"), "octo/demo/main")
    assert error.status == 503 and "try again then" in error.message


@pytest.mark.asyncio
async def test_github_secondary_rate_limit(forge):
    forge.retry_after = 30
    error = await resolve_error(github(forge), "octo/demo/main")
    assert (error.status, error.retry_after) == (503, 30)
    assert "try again in 30 seconds" in error.message


@pytest.mark.asyncio
async def test_github_records_rate_limit(forge):
    provider = github(forge)
    await resolve(provider, "octo/demo/main")
    assert provider.rate_limit["limit"] == 60
    assert provider.rate_limit["remaining"] == 59  # one call


@pytest.mark.asyncio
async def test_github_etag_makes_repeats_free(forge):
    provider = github(forge)
    first = await provider.resolve(parse_spec("gh", "octo/demo/main"))
    second = await provider.resolve(parse_spec("gh", "octo/demo/main"))
    await provider.close()
    assert first == second
    assert ["If-None-Match" in r.headers for r in forge.requests] == [False, True]
    assert forge.rate_remaining == 59  # the 304 cost nothing


@pytest.mark.asyncio
@pytest.mark.parametrize(
    "status, expected, words",
    [
        (500, 503, "try again in a minute"),
        (502, 503, "try again in a minute"),
        (418, 502, "tell the administrator"),
        (200, 502, "tell the administrator"),  # a 200 that is not GitHub's answer
    ],
)
async def test_github_upstream_failures(forge, status, expected, words):
    forge.fail_status = status
    error = await resolve_error(github(forge), "octo/demo/main")
    assert error.status == expected
    assert words in error.message


@pytest.mark.asyncio
async def test_github_timeout(forge):
    forge.delay = 2
    started = time.monotonic()
    error = await resolve_error(github(forge, request_timeout=0.2), "octo/demo/main")
    assert time.monotonic() - started < 1.5
    assert error.status == 503
    assert "did not answer within 0.2 s" in error.message


@pytest.mark.asyncio
async def test_github_unreachable():
    provider = GitHubRepoProvider(
        api_base_url=f"http://127.0.0.1:{free_port()}", access_token="", trust_env=False
    )
    error = await resolve_error(provider, "octo/demo/main")
    assert error.status == 503
    assert "could not reach GitHub" in error.message


@pytest.mark.asyncio
async def test_provider_session_is_lazy_and_reusable(forge):
    provider = github(forge)
    assert provider._session is None
    await provider.resolve(parse_spec("gh", "octo/demo/main"))
    session = provider._session
    await provider.resolve(parse_spec("gh", "octo/demo/v1"))
    assert provider._session is session  # one session per provider
    await provider.close()
    assert session.closed and provider._session is None
    await provider.resolve(parse_spec("gh", "octo/demo/main"))  # usable after close
    await provider.close()


# --- GitLab --------------------------------------------------------------------------


def gitlab(forge, **kw) -> GitLabRepoProvider:
    kw.setdefault("private_token", "")
    kw.setdefault("access_token", "")
    kw.setdefault("trust_env", False)
    return GitLabRepoProvider(base_url=forge.url, **kw)


@pytest.mark.asyncio
async def test_gitlab_resolves_nested_projects(forge):
    resolved = await resolve(gitlab(forge), "group%2Fsub%2Fproject/feature%2Fx")
    assert resolved == ResolvedRepo(
        provider="gl",
        spec="group%2Fsub%2Fproject/feature/x",
        repo="group/sub/project",
        repo_url=f"{forge.url}/group/sub/project.git",
        ref="feature/x",
        resolved_ref=DEV,
        ref_url=f"{forge.url}/group/sub/project/-/tree/{DEV}",
    )
    assert resolved.persistent_spec == f"group%2Fsub%2Fproject/{DEV}"
    # GitLab wants the project path and the ref each escaped into one path segment
    assert forge.paths() == [
        "/api/v4/projects/group%2Fsub%2Fproject/repository/commits/feature%2Fx"
    ]


@pytest.mark.asyncio
@pytest.mark.parametrize("ref, sha", [("main", MAIN), ("HEAD", MAIN), ("v1", TAGGED), (DEV, DEV)])
async def test_gitlab_refs(forge, ref, sha):
    assert (await resolve(gitlab(forge), f"group%2Fsub%2Fproject/{ref}")).resolved_ref == sha


@pytest.mark.asyncio
async def test_gitlab_private_token(forge):
    error = await resolve_error(gitlab(forge), "group%2Fprivate/main")
    assert error.status == 404 and "GitLab project group/private not found" in error.message
    resolved = await resolve(gitlab(forge, private_token="gl-token"), "group%2Fprivate/main")
    assert resolved.resolved_ref == MAIN
    assert forge.requests[-1].headers["PRIVATE-TOKEN"] == "gl-token"


@pytest.mark.asyncio
async def test_gitlab_oauth_token_is_a_bearer(forge):
    await resolve(gitlab(forge, access_token="oauth"), "group%2Fsub%2Fproject/main")
    assert forge.requests[-1].headers["Authorization"] == "Bearer oauth"
    assert "PRIVATE-TOKEN" not in forge.requests[-1].headers


@pytest.mark.asyncio
async def test_gitlab_bad_token(forge):
    error = await resolve_error(gitlab(forge, private_token="wrong"), "group%2Fsub%2Fproject/main")
    assert error.status == 502 and "private_token" in error.message


@pytest.mark.asyncio
async def test_gitlab_not_found(forge):
    error = await resolve_error(gitlab(forge), "group%2Fsub%2Fproject/nope")
    assert error.status == 404
    assert f"ref 'nope' not found in {forge.url}/group/sub/project" in error.message
    error = await resolve_error(gitlab(forge), "group%2Fnope/main")
    assert error.status == 404 and "project group/nope not found" in error.message


@pytest.mark.asyncio
async def test_gitlab_rate_limit_and_failures(forge):
    forge.gitlab_retry_after = 12
    error = await resolve_error(gitlab(forge), "group%2Fsub%2Fproject/main")
    assert (error.status, error.retry_after) == (503, 12)
    forge.gitlab_retry_after = None
    forge.fail_status = 500
    assert (await resolve_error(gitlab(forge), "group%2Fsub%2Fproject/main")).status == 503
    forge.fail_status = 200
    assert (await resolve_error(gitlab(forge), "group%2Fsub%2Fproject/main")).status == 502


@pytest.mark.asyncio
async def test_gitlab_api_base_url_follows_base_url():
    assert GitLabRepoProvider().api_base_url == "https://gitlab.com/api/v4"
    provider = GitLabRepoProvider(base_url="https://git.example.org/")
    assert provider.api_base_url == "https://git.example.org/api/v4"


# --- gists ---------------------------------------------------------------------------


def gist(forge, **kw) -> GistRepoProvider:
    kw.setdefault("access_token", "")
    kw.setdefault("trust_env", False)
    return GistRepoProvider(api_base_url=forge.url, **kw)


@pytest.mark.asyncio
@pytest.mark.parametrize(
    "spec, sha",
    [
        ("octocat/abc123", MAIN),
        ("octocat/abc123/HEAD", MAIN),
        ("octocat/abc123/master", MAIN),
        ("octocat/abc123/main", MAIN),
        ("octocat/abc123/" + OLD, OLD),
        ("OctoCat/abc123", MAIN),  # GitHub logins are case-insensitive
        ("anyone/anon1", MAIN),  # anonymous gists have no owner to check
    ],
)
async def test_gist_resolves(forge, spec, sha):
    assert (await resolve(gist(forge), spec)).resolved_ref == sha


@pytest.mark.asyncio
async def test_gist_resolved_repo_fields(forge):
    resolved = await resolve(gist(forge), "octocat/abc123")
    assert resolved == ResolvedRepo(
        provider="gist",
        spec="octocat/abc123/HEAD",
        repo="octocat/abc123",
        repo_url="https://gist.github.com/octocat/abc123.git",
        ref="HEAD",
        resolved_ref=MAIN,
        ref_url=f"https://gist.github.com/octocat/abc123/{MAIN}",
    )
    assert resolved.persistent_spec == f"octocat/abc123/{MAIN}"
    assert forge.paths() == ["/gists/abc123"]


@pytest.mark.asyncio
async def test_gist_owner_must_match(forge):
    error = await resolve_error(gist(forge), "mallory/abc123")
    assert error.status == 404
    assert "belongs to octocat, not mallory: use gist/octocat/abc123" in error.message


@pytest.mark.asyncio
async def test_gist_secret(forge):
    error = await resolve_error(gist(forge), "octocat/hidden1")
    assert error.status == 403 and "allow_secret_gist = True" in error.message
    assert (
        await resolve(gist(forge, allow_secret_gist=True), "octocat/hidden1")
    ).resolved_ref == MAIN


@pytest.mark.asyncio
async def test_gist_not_found(forge):
    error = await resolve_error(gist(forge), "octocat/nope")
    assert error.status == 404 and "gist nope not found" in error.message
    error = await resolve_error(gist(forge), "octocat/abc123/" + DEV)
    assert error.status == 404 and f"revision {DEV} not found" in error.message


@pytest.mark.asyncio
async def test_gist_revision_beyond_listed_history(forge):
    forge.gist_history_limit = 1
    assert (await resolve(gist(forge), "octocat/abc123/" + OLD)).resolved_ref == OLD
    assert forge.paths() == ["/gists/abc123", f"/gists/abc123/{OLD}"]


@pytest.mark.asyncio
async def test_gist_shares_github_api_config(forge):
    config = Config()
    config.HTTPRepoProvider.trust_env = False
    config.GitHubAPIProvider.api_base_url = forge.url
    config.GitHubAPIProvider.access_token = "gh-token"
    resolver = Resolver(config=config)
    try:
        await resolver.resolve("gist", "octocat/abc123")
        await resolver.resolve("gh", "octo/secret/main")
    finally:
        await resolver.close()
    assert all(r.headers["Authorization"] == "Bearer gh-token" for r in forge.requests)


# --- git -----------------------------------------------------------------------------


@pytest.fixture
def demo_repo(git_root):
    """A repository with history, branches and tags; returns {name: sha}."""
    path = git_root / "demo"
    shas = {"first": make_repo(path, {"README.md": "one\n"}, annotated_tag="v1")}
    shas["main"] = make_repo(path, {"README.md": "two\n"}, tag="light")
    shas["feature"] = make_repo(path, {"f.txt": "f\n"}, branch="feature/x")
    shas["feature-main"] = make_repo(path, {"g.txt": "g\n"}, branch="feature/main")
    # a branch and a tag with the same name: git prefers the tag
    shas["same-branch"] = make_repo(path, {"s.txt": "s\n"}, branch="same")
    git(path, "tag", "same", shas["first"])
    git(path, "checkout", "--quiet", "main")
    return shas


def git_provider(**kw) -> GitRepoProvider:
    """A git provider that may reach the test git servers on loopback."""
    kw.setdefault("allow_loopback", True)
    return GitRepoProvider(**kw)


def git_spec(url: str, ref: str) -> str:
    from urllib.parse import quote

    return f"{quote(url, safe='')}/{ref}"


@pytest.mark.asyncio
@pytest.mark.parametrize(
    "ref, key",
    [
        ("HEAD", "main"),
        ("main", "main"),  # not feature/main, which also ends in "main"
        ("refs/heads/main", "main"),
        ("feature/x", "feature"),
        ("feature%2Fx", "feature"),
        ("light", "main"),
        ("v1", "first"),  # an annotated tag resolves to its commit
        ("same", "first"),
    ],
)
async def test_git_daemon_resolves(git_daemon, demo_repo, ref, key):
    provider = git_provider()
    resolved = await resolve(provider, git_spec(git_daemon.url("demo"), ref))
    assert resolved.resolved_ref == demo_repo[key]


@pytest.mark.asyncio
async def test_git_resolved_repo_fields(git_daemon, demo_repo):
    url = git_daemon.url("demo")
    resolved = await resolve(git_provider(), git_spec(url, "main"))
    assert resolved == ResolvedRepo(
        provider="git",
        spec=git_spec(url, "main"),
        repo=url,
        repo_url=url,
        ref="main",
        resolved_ref=demo_repo["main"],
        ref_url=url,
    )
    assert resolved.persistent_spec == git_spec(url, demo_repo["main"])


@pytest.mark.asyncio
async def test_git_full_sha_needs_no_network():
    sha = "A" * 40
    url = f"git://127.0.0.1:{free_port()}/nothing-here"
    resolved = await resolve(git_provider(), git_spec(url, sha))
    assert resolved.resolved_ref == "a" * 40
    assert resolved.ref == sha


@pytest.mark.asyncio
async def test_git_unknown_ref(git_daemon, demo_repo):
    url = git_daemon.url("demo")
    error = await resolve_error(git_provider(), git_spec(url, "nope"))
    assert error.status == 404
    assert f"ref 'nope' not found in {url}" in error.message
    error = await resolve_error(git_provider(), git_spec(url, demo_repo["main"][:12]))
    assert error.status == 404 and "abbreviated commit id" in error.message


@pytest.mark.asyncio
async def test_git_unknown_repository(git_daemon, demo_repo):
    error = await resolve_error(git_provider(), git_spec(git_daemon.url("nope"), "main"))
    assert error.status == 404
    assert "repository git://127.0.0.1" in error.message and "not found" in error.message


@pytest.mark.asyncio
async def test_git_unreachable_host():
    url = f"git://127.0.0.1:{free_port()}/demo"
    error = await resolve_error(git_provider(), git_spec(url, "main"))
    assert error.status == 503
    assert error.message == (
        f"could not reach the repository {url}; check the URL, or try again in a minute"
    )


@pytest.mark.asyncio
async def test_git_timeout():
    with BlackHole() as hole:
        provider = git_provider(timeout=0.5)
        started = time.monotonic()
        error = await resolve_error(provider, git_spec(f"git://127.0.0.1:{hole.port}/r", "main"))
    assert time.monotonic() - started < 5
    assert error.status == 503
    # the same words as a refused connection: no port scanning through the service
    assert error.message.startswith("could not reach the repository git://127.0.0.1")


@pytest.mark.asyncio
async def test_git_smart_http(git_http_server, demo_repo):
    url = git_http_server.url("demo")
    resolved = await resolve(git_provider(), git_spec(url, "v1"))
    assert resolved.resolved_ref == demo_repo["first"]
    assert any("git-upload-pack" in r for r in git_http_server.requests)


@pytest.mark.asyncio
async def test_git_credentials_never_leak(git_root, demo_repo):
    with GitHTTPServer(git_root, auth=("robot", "hunter2-secret")) as server:
        url = server.url("demo", auth=True)
        resolved = await resolve(git_provider(), git_spec(url, "main"))
        assert resolved.resolved_ref == demo_repo["main"]
        assert resolved.repo_url == url  # repo2docker needs them to fetch
        for shown in (resolved.repo, resolved.spec, resolved.ref_url, resolved.persistent_spec):
            assert "hunter2" not in shown and "robot" not in shown

        wrong = url.replace("hunter2-secret", "wrong-password-42")
        error = await resolve_error(git_provider(), git_spec(wrong, "main"))
        assert error.status == 404 and "needs credentials" in error.message
        assert "wrong-password-42" not in error.message and "robot" not in error.message

        # no credentials: git must fail at once instead of prompting for a password
        started = time.monotonic()
        error = await resolve_error(git_provider(timeout=20), git_spec(server.url("demo"), "main"))
        assert time.monotonic() - started < 10
        assert error.status == 404


@pytest.mark.asyncio
async def test_git_credentials_reach_git_through_its_environment_not_argv(
    git_root, demo_repo, tmp_path
):
    """`git ls-remote <url-with-password>` would show the password in `ps`: the URL on
    git's command line is clean, the credentials reach git through a credential helper
    that reads them from the environment."""
    password = "p@ss w/rd:ü%41"  # every character that needs %-encoding in a URL
    seen = tmp_path / "seen"
    wrapper = tmp_path / "git-wrapper"
    wrapper.write_text(f'#!/bin/sh\nprintf \'%s\\n\' "$*" >> {seen}\nexec git "$@"\n')
    wrapper.chmod(0o755)
    with GitHTTPServer(git_root, auth=("robot-hunter", password)) as server:
        url = server.url("demo", auth=True)
        assert "%40" in url and "%C3%BC" in url
        provider = git_provider(git_command=str(wrapper))
        resolved = await resolve(provider, git_spec(url, "main"))
        assert resolved.resolved_ref == demo_repo["main"]
        argv = seen.read_text()
        assert argv.strip() == f"ls-remote -- {server.url('demo')} main main^{{}}"
        assert "robot" not in argv and "ss" not in argv.replace("ls-remote", "")
        # git asked for credentials and got them: the server saw a 401 first
        assert len(server.requests) >= 2

        # an ordinary git credential helper of the machine does not answer instead
        other = tmp_path / "helper"
        other.write_text("#!/bin/sh\necho username=robot-hunter\necho password=wrong\n")
        other.chmod(0o755)
        config = tmp_path / "gitconfig"
        config.write_text(f"[credential]\n\thelper = {other}\n")
        import os

        saved = {k: os.environ.get(k) for k in ("GIT_CONFIG_GLOBAL", "GIT_CONFIG_COUNT")}
        os.environ["GIT_CONFIG_GLOBAL"] = str(config)
        os.environ["GIT_CONFIG_COUNT"] = "0"
        try:
            resolved = await resolve(git_provider(), git_spec(url, "v1"))
            assert resolved.resolved_ref == demo_repo["first"]
        finally:
            for k, v in saved.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v


def test_credential_env_appends_to_the_services_git_config():
    from r2dservice.providers.git import CREDENTIAL_HELPER, CREDENTIALS_ENV, credential_env

    base = {
        "PATH": "/bin",
        "GIT_CONFIG_COUNT": "1",
        "GIT_CONFIG_KEY_0": "http.proxy",
        "GIT_CONFIG_VALUE_0": "http://proxy:3128",
        CREDENTIALS_ENV: "stale",
    }
    env = credential_env(base, "protocol=https\nhost=h\npassword=x\n")
    assert env["GIT_CONFIG_COUNT"] == "3"
    assert env["GIT_CONFIG_KEY_0"] == "http.proxy"
    assert (env["GIT_CONFIG_KEY_1"], env["GIT_CONFIG_VALUE_1"]) == ("credential.helper", "")
    assert (env["GIT_CONFIG_KEY_2"], env["GIT_CONFIG_VALUE_2"]) == (
        "credential.helper",
        CREDENTIAL_HELPER,
    )
    assert env[CREDENTIALS_ENV].endswith("password=x\n")
    assert "password" not in CREDENTIAL_HELPER
    # no credentials: nothing git-config-shaped is added, a stale value goes
    assert credential_env(base, "") == {k: v for k, v in base.items() if k != CREDENTIALS_ENV}


@pytest.mark.asyncio
async def test_git_refuses_credentials_that_would_inject_helper_lines(git_root, demo_repo):
    url = "http://robot:pw%0Ahost=evil.example@127.0.0.1:1/demo"
    with pytest.raises(SpecError, match="control character"):
        git_provider().parse(git_spec(url, "main"))
    # a RepoSpec made without parse() is refused by resolve() too
    from r2dservice.spec import RepoSpec

    error = await resolve_error_of(git_provider(), RepoSpec("git", url, "main"))
    assert error.status == 400 and "control character" in error.message
    assert "evil" not in error.message


async def resolve_error_of(provider, repo_spec) -> ResolveError:
    with pytest.raises(ResolveError) as e:
        await provider.resolve(repo_spec)
    return e.value


@pytest.mark.asyncio
async def test_git_file_scheme_only_when_allowed(git_root, demo_repo):
    url = f"file://{git_root}/demo"
    with pytest.raises(SpecError, match="'file' is not allowed"):
        git_provider().parse(git_spec(url, "main"))
    provider = git_provider(allowed_schemes={"file"})
    assert (await resolve(provider, git_spec(url, "main"))).resolved_ref == demo_repo["main"]


@pytest.mark.asyncio
async def test_git_allowed_schemes_bind_git_itself(git_daemon, demo_repo):
    provider = git_provider(allowed_schemes={"git"})
    assert provider._env()["GIT_ALLOW_PROTOCOL"] == "git"
    assert provider._env()["GIT_TERMINAL_PROMPT"] == "0"
    assert (await resolve(provider, git_spec(git_daemon.url("demo"), "main"))).resolved_ref


def test_make_repo_builds_history(git_root):
    first = make_repo(git_root / "r", {"a.txt": "1", "dir/b.txt": b"2"})
    second = make_repo(git_root / "r", {"a.txt": None}, message="drop a")
    assert first != second
    assert git(git_root / "r", "rev-parse", "HEAD~1").strip() == first
    assert git(git_root / "r", "ls-files").split() == ["dir/b.txt"]


# --- describe ------------------------------------------------------------------------


def test_describe_matches_binderhub_shape():
    entries = Resolver().describe()
    assert [e["id"] for e in entries] == [
        "gh", "gl", "git", "gist",
        "zenodo", "figshare", "hydroshare", "dataverse", "ckan",
        "doi", "swhid", "gitea",
    ]  # fmt: skip
    by_id = {e["id"]: e for e in entries}
    for entry in entries:
        assert set(entry) >= {"displayName", "id", "spec", "repo", "ref"}
        assert set(entry["repo"]) == {"label", "placeholder", "urlEncode"}
        if entry["id"] in ("gh", "gl", "git", "gist", "gitea"):
            assert entry["ref"] == {"enabled": True, "default": "HEAD"}
        else:  # a record names its version: BinderHub's data providers have no ref
            assert entry["ref"] == {"enabled": False}
    assert by_id["gh"]["spec"] == {"validateRegex": "[^/]+/[^/]+/.+"}
    assert set(by_id["gh"]["detect"]) == {"regex"}
    assert by_id["gh"]["detect"]["regex"].startswith(r"^(https?://github\.com/)?(?<repo>")
    assert by_id["gh"]["repo"]["urlEncode"] is False
    assert by_id["gl"]["repo"]["urlEncode"] is True
    assert by_id["git"]["repo"]["urlEncode"] is True
    assert "detect" not in by_id["git"]
    assert by_id["gist"]["spec"] == {"validateRegex": "[^/]+/[^/]+(/[^/]+)?"}


def test_describe_follows_configured_hosts():
    entry = GitLabRepoProvider(base_url="https://git.example.org").describe()
    assert entry["detect"]["regex"].startswith(r"^(https?://git\.example\.org/)?")


# --- detect: the build form's reading of pasted URLs (the same regexes run in the page) ---


def py_regex(js: str) -> re.Pattern:
    """A detect regex (JavaScript syntax) as Python's: only named groups differ."""
    return re.compile(re.sub(r"\(\?<(?=[A-Za-z])", "(?P<", js))


def detected(text: str, provider_id: str, **config):
    entry = {e["id"]: e for e in Resolver(**config).describe()}[provider_id]
    m = py_regex(entry["detect"]["regex"]).match(text)
    if not m:
        return None
    groups = m.groupdict()
    return (bool(m.group(1)), groups["repo"], groups.get("ref"), groups.get("path"))


@pytest.mark.parametrize(
    "text, provider, expected",
    [
        (
            "https://github.com/binder-examples/requirements",
            "gh",
            (True, "binder-examples/requirements", None, None),
        ),
        (
            "https://github.com/binder-examples/requirements/",
            "gh",
            (True, "binder-examples/requirements", None, None),
        ),
        (
            "https://github.com/binder-examples/requirements.git",
            "gh",
            (True, "binder-examples/requirements", None, None),
        ),
        ("http://github.com/a-b/c.d_e", "gh", (True, "a-b/c.d_e", None, None)),
        ("https://github.com/octo/quick/tree/main", "gh", (True, "octo/quick", "main", None)),
        (
            "https://github.com/octo/quick/tree/v1.0/docs/",
            "gh",
            (True, "octo/quick", "v1.0", "docs/"),
        ),
        (
            "https://github.com/octo/quick/blob/main/index.ipynb",
            "gh",
            (True, "octo/quick", "main", "index.ipynb"),
        ),
        ("https://github.com/octo/quick?tab=readme", "gh", (True, "octo/quick", None, None)),
        ("octo/quick", "gh", (False, "octo/quick", None, None)),
        ("https://github.com/octo/quick/issues/5", "gh", None),
        ("https://github.com/octo", "gh", None),
        ("https://gitlab.com/octo/quick", "gh", None),
        ("https://gist.github.com/octo/6cad326836d38bd3a7ae", "gh", None),
        (
            "https://gitlab.com/mosaik/examples/mosaik-tutorials-on-binder",
            "gl",
            (True, "mosaik/examples/mosaik-tutorials-on-binder", None, None),
        ),
        (
            "https://gitlab.com/group/sub/project/-/tree/dev",
            "gl",
            (True, "group/sub/project", "dev", None),
        ),
        (
            "https://gitlab.com/group/project/-/blob/main/a/b.ipynb",
            "gl",
            (True, "group/project", "main", "a/b.ipynb"),
        ),
        ("https://gitlab.com/group/project.git", "gl", (True, "group/project", None, None)),
        ("group/sub/project", "gl", (False, "group/sub/project", None, None)),
        ("https://github.com/octo/quick", "gl", None),
        (
            "https://gist.github.com/octocat/6cad326836d38bd3a7ae",
            "gist",
            (True, "octocat/6cad326836d38bd3a7ae", None, None),
        ),
        (
            "https://gist.github.com/octocat/6cad326836d38bd3a7ae/" + "a" * 40,
            "gist",
            (True, "octocat/6cad326836d38bd3a7ae", "a" * 40, None),
        ),
        ("https://github.com/octocat/6cad326836d38bd3a7ae", "gist", None),
    ],
)
def test_detect_regexes_read_pasted_urls(text, provider, expected):
    assert detected(text, provider) == expected


def test_detect_regexes_are_anchored_and_javascript():
    for entry in Resolver().describe():
        regex = entry.get("detect", {}).get("regex")
        if regex is None:
            continue
        assert regex.startswith("^(") and regex.endswith("$")
        assert "(?P<" not in regex  # JavaScript's named groups, (?<name>...)
        assert {"repo"} <= set(py_regex(regex).groupindex)


def test_detect_follows_a_configured_github_host():
    config = Config()
    config.GitHubRepoProvider.html_base_url = "https://ghe.example.org:8443"
    assert detected("https://ghe.example.org:8443/team/repo/tree/dev", "gh", config=config) == (
        True,
        "team/repo",
        "dev",
        None,
    )
    assert detected("https://github.com/team/repo", "gh", config=config) is None


# --- the Resolver --------------------------------------------------------------------


class FakeClock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


class CountingProvider(RepoProvider):
    """A gh provider that answers from a dict, counts calls and can be held."""

    name = "gh"
    display_name = "Counting"
    calls = 0
    gate: asyncio.Event | None = None
    answers: dict = {}

    async def resolve(self, repo_spec):
        type(self).calls += 1
        if self.gate is not None:
            await self.gate.wait()
        answer = self.answers.get(repo_spec.ref, MAIN)
        if isinstance(answer, Exception):
            raise answer
        return ResolvedRepo("gh", repo_spec.spec, repo_spec.repo, "u", repo_spec.ref, answer)


@pytest.fixture
def counting():
    CountingProvider.calls = 0
    CountingProvider.gate = None
    CountingProvider.answers = {}
    return CountingProvider


def counting_resolver(**kw) -> Resolver:
    return Resolver(providers={"gh": CountingProvider}, **kw)


@pytest.mark.asyncio
async def test_resolver_caches_for_ttl(counting):
    clock = FakeClock()
    resolver = counting_resolver(clock=clock, cache_ttl=60)
    first = await resolver.resolve("gh", "a/b/main")
    assert await resolver.resolve("gh", "a/b.git/main/") is first  # same canonical spec
    assert counting.calls == 1
    clock.now += 59.9
    await resolver.resolve("gh", "a/b/main")
    assert counting.calls == 1
    clock.now += 0.1
    await resolver.resolve("gh", "a/b/main")
    assert counting.calls == 2


@pytest.mark.asyncio
async def test_resolver_cache_off(counting):
    resolver = counting_resolver(cache_ttl=0)
    for _ in range(3):
        await resolver.resolve("gh", "a/b/main")
    assert counting.calls == 3


@pytest.mark.asyncio
async def test_resolver_cache_is_bounded(counting):
    resolver = counting_resolver(cache_size=2, clock=FakeClock())
    for ref in ("r1", "r2", "r3"):
        await resolver.resolve("gh", f"a/b/{ref}")
    assert len(resolver._cache) == 2
    await resolver.resolve("gh", "a/b/r3")
    assert counting.calls == 3
    await resolver.resolve("gh", "a/b/r1")  # the least recently used went first
    assert counting.calls == 4


@pytest.mark.asyncio
async def test_resolver_shares_resolutions_in_flight(counting):
    counting.gate = asyncio.Event()
    resolver = counting_resolver()
    calls = [asyncio.ensure_future(resolver.resolve("gh", "a/b/main")) for _ in range(20)]
    await asyncio.sleep(0.01)
    assert counting.calls == 1
    counting.gate.set()
    results = await asyncio.gather(*calls)
    assert counting.calls == 1
    assert all(r is results[0] for r in results)
    assert not resolver._inflight


@pytest.mark.asyncio
async def test_resolver_shares_against_a_real_api(forge):
    forge.delay = 0.2
    config = Config()
    config.HTTPRepoProvider.trust_env = False
    config.GitHubRepoProvider.api_base_url = forge.url
    config.GitHubRepoProvider.access_token = ""
    resolver = Resolver(config=config)
    try:
        results = await asyncio.gather(
            *(resolver.resolve("gh", "octo/demo/main") for _ in range(20))
        )
    finally:
        await resolver.close()
    assert {r.resolved_ref for r in results} == {MAIN}
    assert forge.paths() == ["/repos/octo/demo/commits/main"]


@pytest.mark.asyncio
async def test_resolver_shares_errors_but_does_not_cache_them(counting):
    counting.gate = asyncio.Event()
    counting.answers = {"bad": ResolveError("ref 'bad' not found", status=404)}
    resolver = counting_resolver()
    calls = [asyncio.ensure_future(resolver.resolve("gh", "a/b/bad")) for _ in range(5)]
    await asyncio.sleep(0.01)
    counting.gate.set()
    results = await asyncio.gather(*calls, return_exceptions=True)
    assert all(isinstance(r, ResolveError) and r.status == 404 for r in results)
    assert counting.calls == 1
    with pytest.raises(ResolveError):
        await resolver.resolve("gh", "a/b/bad")
    assert counting.calls == 2


@pytest.mark.asyncio
async def test_resolver_one_caller_leaving_does_not_cancel_the_others(counting):
    counting.gate = asyncio.Event()
    resolver = counting_resolver()
    impatient = asyncio.ensure_future(resolver.resolve("gh", "a/b/main"))
    patient = asyncio.ensure_future(resolver.resolve("gh", "a/b/main"))
    await asyncio.sleep(0.01)
    impatient.cancel()
    await asyncio.sleep(0.01)
    counting.gate.set()
    assert (await patient).resolved_ref == MAIN
    assert impatient.cancelled()
    assert counting.calls == 1


@pytest.mark.asyncio
async def test_resolver_wraps_internal_errors(counting):
    counting.answers = {"boom": RuntimeError("bug")}
    error = None
    try:
        await counting_resolver().resolve("gh", "a/b/boom")
    except ResolveError as e:
        error = e
    assert error is not None and error.status == 500
    assert "internal error" in error.message and "service log" in error.message


@pytest.mark.asyncio
async def test_resolver_rejects_bad_specs_before_any_call(counting):
    resolver = counting_resolver()
    with pytest.raises(SpecError, match="did you mean gh/a/b/HEAD"):
        await resolver.resolve("gh", "a/b")
    with pytest.raises(SpecError, match="unknown provider 'gl': this service builds from gh"):
        await resolver.resolve("gl", "g%2Fp/main")
    assert counting.calls == 0


def test_resolver_providers_config():
    resolver = Resolver(providers={"gh": "r2dservice.providers.github.GitHubRepoProvider"})
    assert resolver.providers == {"gh": GitHubRepoProvider}
    assert [e["id"] for e in resolver.describe()] == ["gh"]
    with pytest.raises(TraitError, match="register it as 'gh'"):
        Resolver(providers={"github": GitHubRepoProvider})
    with pytest.raises(TraitError, match="must be a RepoProvider subclass"):
        Resolver(providers={"gh": dict})
    with pytest.raises(TraitError, match="cannot import"):
        Resolver(providers={"gh": "no.such.Provider"})


def test_resolver_passes_config_to_providers():
    config = Config()
    config.GitRepoProvider.allowed_schemes = {"https"}
    config.Resolver.cache_ttl = 5
    resolver = Resolver(config=config)
    assert resolver.cache_ttl == 5
    with pytest.raises(SpecError, match="'git' is not allowed"):
        resolver.parse("git", "git%3A%2F%2Fh%2Fr/main")


# --- git: safe resolution -------------------------------------------------------------


@pytest.mark.asyncio
@pytest.mark.parametrize(
    "host",
    [
        "169.254.169.254",
        "[fd00:ec2::254]",
        "[::ffff:169.254.169.254]",
        "[fe80::1]",
        "127.0.0.1",
        "localhost",  # a name that resolves to loopback
        "2130706433",  # 127.0.0.1 written as one number: the resolver reads it so
    ],
)
async def test_git_host_policy_refuses_metadata_link_local_and_loopback(host):
    error = await resolve_error(GitRepoProvider(), git_spec(f"http://{host}/repo.git", "main"))
    assert error.status == 403
    assert "does not fetch repositories from that host" in error.message
    # a full commit id skips ls-remote, not the policy: the builder would fetch it
    error = await resolve_error(GitRepoProvider(), git_spec(f"git://{host}/r", "a" * 40))
    assert error.status == 403


@pytest.mark.asyncio
async def test_git_loopback_allowed_by_config(git_daemon, demo_repo):
    config = Config()
    config.GitRepoProvider.allow_loopback = True
    provider = GitRepoProvider(config=config)
    resolved = await resolve(provider, git_spec(git_daemon.url("demo"), "main"))
    assert resolved.resolved_ref == demo_repo["main"]
    # an explicit network admits loopback too; a denied name wins over it
    provider = GitRepoProvider(allowed_hosts=["127.0.0.0/8"])
    assert (await resolve(provider, git_spec(git_daemon.url("demo"), "main"))).resolved_ref
    provider = git_provider(denied_hosts=["127.0.0.1"])
    error = await resolve_error(provider, git_spec(git_daemon.url("demo"), "main"))
    assert error.status == 403


def test_git_host_lists_are_validated():
    with pytest.raises(TraitError, match="denied_hosts"):
        GitRepoProvider(denied_hosts=["10.0.0.0/40"])


@pytest.mark.asyncio
async def test_git_connects_to_the_addresses_it_checked(git_http_server, demo_repo):
    """DNS rebinding: git's HTTP client is pinned (http.curloptResolve) to the addresses
    the policy checked. Here the check's resolver says a name that no DNS knows is
    127.0.0.1: git can only succeed by connecting where the check said."""
    provider = git_provider()
    seen = []

    async def addresses(host, port):
        seen.append((host, port))
        return [parse_address("127.0.0.1")]

    provider._addresses = addresses
    url = git_http_server.url("demo").replace("127.0.0.1", "rebind.r2dservice.invalid")
    resolved = await resolve(provider, git_spec(url, "main"))
    assert resolved.resolved_ref == demo_repo["main"]
    assert seen == [("rebind.r2dservice.invalid", git_http_server.port)]


@pytest.mark.asyncio
async def test_git_errors_are_no_port_scanner():
    """A closed port, a port that never answers and a name that does not resolve get
    the same words (git's own stay in the service's log)."""
    with BlackHole() as hole:
        urls = {
            "refused": f"git://127.0.0.1:{free_port()}/r",
            "timeout": f"git://127.0.0.1:{hole.port}/r",
            "no such host": "git://no-such-host.r2dservice.invalid/r",
        }
        messages = {}
        for what, url in urls.items():
            error = await resolve_error(git_provider(timeout=1), git_spec(url, "main"))
            assert error.status == 503, what
            messages[what] = error.message.replace(url, "<url>")
    assert len(set(messages.values())) == 1, messages
    assert "fatal" not in messages["refused"] and "refused" not in messages["refused"]


@pytest.mark.asyncio
async def test_git_ignores_the_service_users_home(git_root, demo_repo, tmp_path, monkeypatch):
    """The service user's ~/.netrc, ~/.gitconfig (credential helpers, url rewrites) and
    the system config take no part: a private repository stays private."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    helper = tmp_path / "helper"
    helper.write_text("#!/bin/sh\necho username=robot\necho password=hunter2-secret\n")
    helper.chmod(0o755)
    with GitHTTPServer(git_root, auth=("robot", "hunter2-secret")) as server:
        (home / ".netrc").write_text("machine 127.0.0.1 login robot password hunter2-secret\n")
        (home / ".gitconfig").write_text(f"[credential]\n\thelper = {helper}\n")
        monkeypatch.setenv("GIT_CONFIG_GLOBAL", str(home / ".gitconfig"))
        monkeypatch.setenv("GIT_ASKPASS", str(helper))
        # git itself, in this environment, would get in
        git_ok = await asyncio.create_subprocess_exec(
            "git",
            "ls-remote",
            server.url("demo"),
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
        )
        assert await git_ok.wait() == 0
        error = await resolve_error(git_provider(), git_spec(server.url("demo"), "main"))
        assert error.status == 404 and "needs credentials" in error.message
    env = git_provider()._env()
    assert env["HOME"] != str(home) and not os.listdir(env["HOME"])
    assert env["GIT_CONFIG_NOSYSTEM"] == "1" and env["GIT_CONFIG_GLOBAL"] == os.devnull
    assert env["GIT_ASKPASS"] == "" and "BatchMode=yes" in env["GIT_SSH_COMMAND"]
    assert "IdentityFile=none" in env["GIT_SSH_COMMAND"]
    assert "SSH_AUTH_SOCK" not in env


@pytest.mark.asyncio
async def test_git_output_is_bounded(tmp_path):
    """A server (here a stand-in git) that answers without end: the read stops at
    max_output, git is killed, the answer is a 502 at once."""
    fake = tmp_path / "git"
    fake.write_text("#!/bin/sh\nyes 0000000000000000000000000000000000000000\trefs/heads/x\n")
    fake.chmod(0o755)
    provider = git_provider(git_command=str(fake), max_output=100_000, timeout=20)
    started = time.monotonic()
    error = await resolve_error(provider, git_spec("https://198.51.100.1/r.git", "main"))
    assert error.status == 502 and "more than 100000 bytes" in error.message
    assert time.monotonic() - started < 5


@pytest.mark.asyncio
async def test_git_credentialed_commit_needs_working_credentials(git_root, demo_repo):
    """A commit id with credentials is still checked with them: the image of a
    credentialed build is only found by someone whose credentials work."""
    sha = demo_repo["main"]
    with GitHTTPServer(git_root, auth=("robot", "hunter2-secret")) as server:
        good = await resolve(git_provider(), git_spec(server.url("demo", auth=True), sha))
        assert good.credentialed and good.resolved_ref == sha
        assert len(server.requests) >= 1  # asked, although the ref is a commit id
        wrong = server.url("demo", auth=True).replace("hunter2-secret", "guess")
        error = await resolve_error(git_provider(), git_spec(wrong, sha))
        assert error.status == 404
        bare = await resolve(git_provider(), git_spec(server.url("demo"), sha))
        assert not bare.credentialed and bare.resolved_ref == sha
    from r2dservice import naming

    names = {
        naming.image_name("r2d-", r.provider, r.repo, r.resolved_ref, "f", r.credentialed)
        for r in (good, bare)
    }
    assert len(names) == 2  # the bare commit id does not name the credentialed image
