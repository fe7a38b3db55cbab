"""Any git repository: git/<url-escaped clone URL>/<ref>, resolved with `git ls-remote`."""

from __future__ import annotations

import asyncio
import os
import re
import signal

from traitlets import Float, Set, Unicode

from ..spec import (
    DEFAULT_GIT_SCHEMES,
    RepoSpec,
    SpecError,
    is_sha,
    parse_spec,
    redact,
    split_credentials,
)
from .base import RepoProvider, ResolvedRepo, ResolveError

# The environment variable that carries the credentials of a clone URL to git's
# credential helper, so that they are never on a command line (`ps` shows those).
CREDENTIALS_ENV = "R2DSERVICE_GIT_CREDENTIALS"

# git runs this (through the shell) as its credential helper: on "get" it answers with
# the credentials, but only when git asks about their host (a redirect elsewhere gets
# nothing). Its command line holds only this text.
CREDENTIAL_HELPER = (
    '!f() { test "$1" = get || exit 0; '
    f"want=$(printf '%s\\n' \"${CREDENTIALS_ENV}\" | grep '^host='); "
    f'grep -qxF "$want" && printf \'%s\\n\' "${CREDENTIALS_ENV}"; }}; f'
)


def credential_env(base: dict, credentials: str) -> dict:
    """`base` (an environment) plus what hands `credentials` (git-credential(1) input)
    to git through CREDENTIAL_HELPER: GIT_CONFIG_COUNT/KEY/VALUE, after any the service
    has itself, and an empty helper first so that no configured helper answers instead."""
    env = dict(base)
    env.pop(CREDENTIALS_ENV, None)
    if not credentials:
        return env
    try:
        count = int(env.get("GIT_CONFIG_COUNT") or 0)
    except ValueError:
        count = 0
    for value in ("", CREDENTIAL_HELPER):
        env[f"GIT_CONFIG_KEY_{count}"] = "credential.helper"
        env[f"GIT_CONFIG_VALUE_{count}"] = value
        count += 1
    env["GIT_CONFIG_COUNT"] = str(count)
    env[CREDENTIALS_ENV] = credentials
    return env


# what git says when the repository is missing or wants credentials it cannot prompt for
_NOT_FOUND = re.compile(
    r"not found|no such repository|does not appear to be a git repository|not exported|"
    r"access denied|"
    r"could not read (username|password)|authentication failed|terminal prompts disabled",
    re.IGNORECASE,
)


def pick_ref(listing: str, ref: str) -> str | None:
    """The commit `ref` names in `git ls-remote` output, as `git rev-parse` would pick it.

    Annotated tags resolve to the commit they point at (the peeled "^{}" line), not to
    the tag object, so a tag and its commit make the same image.
    """
    refs: dict[str, str] = {}
    for line in listing.splitlines():
        sha, _, name = line.partition("\t")
        if name:
            refs[name] = sha.strip()
    if ref == "HEAD":
        candidates = ["HEAD"]
    else:
        # git's ref_rev_parse_rules: tags win over branches of the same name
        candidates = [
            ref,
            f"refs/{ref}",
            f"refs/tags/{ref}",
            f"refs/heads/{ref}",
            f"refs/remotes/{ref}",
            f"refs/remotes/{ref}/HEAD",
        ]
    for name in candidates:
        sha = refs.get(name + "^{}") or refs.get(name)
        if sha and is_sha(sha):
            return sha.lower()
    return None


class GitRepoProvider(RepoProvider):
    """Any repository git can reach; the ref is resolved without cloning."""

    name = "git"
    display_name = "Git repository"
    repo_label = "Arbitrary git repository URL"
    repo_placeholder = "example: https://git.example.com/team/repo.git"
    url_encode_repo = True
    validate_regex = r"[^/]+/.+"

    allowed_schemes = Set(
        Unicode(),
        default_value=set(DEFAULT_GIT_SCHEMES),
        help="""URL schemes people may ask for: https, http, git, ssh, file.

        Leave file out unless the repositories on the service's own disk are meant to
        be built. git itself is held to the same list (GIT_ALLOW_PROTOCOL).
        """,
    ).tag(config=True)
    timeout = Float(
        30.0,
        help="Seconds `git ls-remote` may take before the request fails (503).",
    ).tag(config=True)
    git_command = Unicode("git", help="The git executable.").tag(config=True)

    def parse(self, spec: str) -> RepoSpec:
        return parse_spec(self.name, spec, allowed_schemes=self.allowed_schemes)

    def repo_url(self, repo_spec: RepoSpec) -> str:
        return repo_spec.repo  # the clone URL is the repository's identity

    async def resolve(self, repo_spec: RepoSpec) -> ResolvedRepo:
        url, ref = repo_spec.repo, repo_spec.ref
        shown = redact(url)
        if is_sha(ref):
            # a commit id names itself; asking the server would not make it more true
            sha = ref.lower()
        else:
            listing = await self._ls_remote(url, ref)
            sha = pick_ref(listing, ref)
            if sha is None:
                hint = ""
                if re.fullmatch(r"[0-9a-fA-F]{4,39}", ref):
                    hint = (
                        " (an abbreviated commit id cannot be resolved remotely: use all 40 digits)"
                    )
                raise ResolveError(
                    f"ref {ref!r} not found in {shown}: use a branch, a tag or a full "
                    f"commit sha (HEAD is the default branch){hint}",
                    status=404,
                )
        return ResolvedRepo(
            provider=self.name,
            spec=redact(repo_spec.spec, url),
            repo=shown,
            repo_url=url,
            ref=ref,
            resolved_ref=sha,
            # an arbitrary host has no known page per commit; BinderHub links the repo
            ref_url=shown,
        )

    def _env(self) -> dict:
        env = dict(os.environ)
        env["GIT_TERMINAL_PROMPT"] = "0"  # fail instead of waiting for a password
        env["GIT_ALLOW_PROTOCOL"] = ":".join(sorted(self.allowed_schemes))
        if "GIT_SSH_COMMAND" not in env and "GIT_SSH" not in env:
            env["GIT_SSH_COMMAND"] = "ssh -o BatchMode=yes"
        return env

    async def _ls_remote(self, url: str, ref: str) -> str:
        shown = redact(url)
        try:
            # the password (or token) goes to git through its environment, not argv
            clean_url, credentials = split_credentials(url)
        except SpecError as e:
            raise ResolveError(str(e), status=400) from None
        # patterns match from the end ("main" also lists refs/heads/x/main); pick_ref
        # chooses. "<ref>^{}" asks for the commit under an annotated tag.
        cmd = [self.git_command, "ls-remote", "--", clean_url, ref, ref + "^{}"]
        self.log.debug("git ls-remote %s %s", shown, ref)
        try:
            proc = await asyncio.create_subprocess_exec(
                *cmd,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                env=credential_env(self._env(), credentials),
                # its own process group: a timeout kills git's helpers (ssh, remote-http) too
                start_new_session=True,
            )
        except OSError as e:
            raise ResolveError(
                f"could not run {self.git_command!r} ({e}); tell the administrator",
                status=503,
            ) from None
        try:
            stdout, stderr = await asyncio.wait_for(proc.communicate(), self.timeout)
        except (asyncio.TimeoutError, asyncio.CancelledError) as e:
            _kill_group(proc)
            await proc.wait()
            if isinstance(e, asyncio.CancelledError):
                raise
            raise ResolveError(
                f"{shown} did not answer within {self.timeout:g} s; check that the URL is "
                "right and the host is up, then try again",
                status=503,
            ) from None
        message = redact(stderr.decode("utf-8", "replace").strip(), url)
        if proc.returncode != 0:
            if _NOT_FOUND.search(message):
                raise ResolveError(
                    f"repository {shown} not found, or it needs credentials: check the URL "
                    f"(git said: {_last_lines(message)})",
                    status=404,
                )
            said = _last_lines(message) or f"git exited with {proc.returncode}"
            raise ResolveError(
                f"could not reach {shown}: {said}; check the URL, or try again in a minute",
                status=503,
            )
        return stdout.decode("utf-8", "replace")


def _kill_group(proc) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def _last_lines(message: str, n: int = 3) -> str:
    """git's own explanation: from its first fatal/error line on, without boilerplate."""
    lines = [
        line.strip()
        for line in message.splitlines()
        if line.strip() and not line.startswith(("Please make sure", "and the repository exists"))
    ]
    first = next((i for i, line in enumerate(lines) if line.startswith(("fatal:", "error:"))), 0)
    return " ".join(lines[first : first + n])[:500]
