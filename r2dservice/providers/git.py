"""Any git repository: git/<url-escaped clone URL>/<ref>, resolved with `git ls-remote`."""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import signal
import socket
import tempfile
from urllib.parse import urlsplit

from traitlets import Bool, Float, Integer, List, Set, TraitError, Unicode, validate

from ..hostpolicy import HostPolicy, parse_address, refusal, split_entries
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
    to git through CREDENTIAL_HELPER: GIT_CONFIG_COUNT/KEY/VALUE, after any `base` has,
    and an empty helper first so that no configured helper answers instead."""
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


# Git's environment: nothing of the service user's own (HOME, ~/.gitconfig, ~/.netrc,
# ~/.ssh, credential helpers, askpass programs) takes part in resolving a stranger's URL.
# Only these variables pass through (proxies and CA bundles an operator set on purpose).
PASS_ENV = (
    "PATH",
    "http_proxy",
    "https_proxy",
    "no_proxy",
    "all_proxy",
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "NO_PROXY",
    "ALL_PROXY",
    "SSL_CERT_FILE",
    "SSL_CERT_DIR",
    "GIT_SSL_CAINFO",
)
# ssh without the service user's config, keys, agent or known hosts, never asking.
SSH_COMMAND = (
    "ssh -F /dev/null -o BatchMode=yes -o IdentityFile=none -o IdentityAgent=none "
    "-o IdentitiesOnly=yes -o UserKnownHostsFile=/dev/null -o StrictHostKeyChecking=yes "
    "-o ConnectTimeout=10"
)
DEFAULT_PORTS = {"https": 443, "http": 80, "git": 9418, "ssh": 22}


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

    allowed_hosts = List(
        Unicode(),
        help="""Only these hosts may be named in git URLs, when the list is not empty:
        host name patterns ("git.example.org", "*.example.org") and networks
        ("10.1.0.0/16", "192.0.2.7"). A network here admits its addresses even where
        allow_loopback or allow_private would refuse them. Empty: any host, but for
        the rules below.""",
    ).tag(config=True)
    denied_hosts = List(
        Unicode(),
        help="""Hosts git URLs may never name: host name patterns and networks, as in
        allowed_hosts. Link-local addresses and the cloud metadata addresses
        (169.254.169.254, fd00:ec2::254) are always refused, unless a network in
        allowed_hosts names them.""",
    ).tag(config=True)
    allow_loopback = Bool(
        False,
        help="""Allow git URLs whose host is (or resolves to) a loopback address: the
        service's own machine. Off by default; the development demo and the tests turn
        it on for their git daemon on 127.0.0.1.""",
    ).tag(config=True)
    allow_private = Bool(
        True,
        help="""Allow git URLs whose host is on a private network (10/8, 172.16/12,
        192.168/16, 100.64/10, fc00::/7): a git server inside your cluster. Turn it off
        when nothing there is meant to be built.""",
    ).tag(config=True)
    follow_redirects = Bool(
        False,
        help="""Let git follow an HTTP redirect: off by default, as a redirect could lead
        to a host the policy refuses. A moved repository then answers "could not
        reach"; ask for its new URL.""",
    ).tag(config=True)
    max_output = Integer(
        1024 * 1024,
        help="Bytes of `git ls-remote` output read at most; a larger answer fails (502).",
    ).tag(config=True)
    ssh_command = Unicode(
        SSH_COMMAND,
        help="""The ssh command git uses for ssh:// URLs (GIT_SSH_COMMAND). The default
        uses none of the service user's keys, agent, config or known hosts and never
        asks: set one with your own known_hosts (and a key) to resolve ssh URLs.""",
    ).tag(config=True)

    @validate("allowed_hosts", "denied_hosts")
    def _validate_hosts(self, proposal):
        try:
            split_entries(proposal.value)
        except ValueError as e:
            raise TraitError(f"c.GitRepoProvider.{proposal.trait.name}: {e}") from None
        return proposal.value

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self._home: str | None = None

    @property
    def host_policy(self) -> HostPolicy:
        return HostPolicy(
            allowed=tuple(self.allowed_hosts),
            denied=tuple(self.denied_hosts),
            allow_loopback=self.allow_loopback,
            allow_private=self.allow_private,
        )

    def parse(self, spec: str) -> RepoSpec:
        return parse_spec(self.name, spec, allowed_schemes=self.allowed_schemes)

    def repo_url(self, repo_spec: RepoSpec) -> str:
        return repo_spec.repo  # the clone URL is the repository's identity

    async def resolve(self, repo_spec: RepoSpec) -> ResolvedRepo:
        url, ref = repo_spec.repo, repo_spec.ref
        shown = redact(url)
        try:
            clean_url, credentials = split_credentials(url)
        except SpecError as e:
            raise ResolveError(str(e), status=400) from None
        # The builder fetches this URL too: the policy holds for a full sha as well.
        pins = await self._check_host(clean_url, shown)
        if is_sha(ref) and not credentials:
            # a commit id names itself; asking the server would not make it more true
            sha = ref.lower()
        elif is_sha(ref):
            # Credentials in the spec: the image is tied to proof of access (naming's
            # `credentialed`), so asking must succeed with them, even for a commit id.
            await self._ls_remote(clean_url, credentials, shown, "HEAD", pins)
            sha = ref.lower()
        else:
            listing = await self._ls_remote(clean_url, credentials, shown, ref, pins)
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
            credentialed=bool(credentials),
        )

    async def _check_host(self, url: str, shown: str) -> list[str]:
        """Refuse (403) a URL whose host the policy refuses, by name or by any of its
        addresses. Returns curl's pins ("host:port:addr,...") for http(s) URLs whose
        host is a name, so that git connects to the addresses checked here."""
        parts = urlsplit(url)
        scheme, host = parts.scheme.lower(), parts.hostname
        if scheme == "file" or not host:
            return []
        port = parts.port or DEFAULT_PORTS.get(scheme, 0)
        literal = parse_address(host)
        if literal is not None:
            addresses = [literal]
        else:
            try:
                addresses = await asyncio.wait_for(self._addresses(host, port), self.timeout)
            except (OSError, asyncio.TimeoutError, UnicodeError):
                raise _unreachable(shown) from None
        reason = refusal(host, addresses, self.host_policy)
        if reason:
            self.log.info("git URL %s refused by the host policy: %s", shown, reason)
            # the reason stays in the log: it would tell what a name resolves to
            raise ResolveError(
                f"{shown}: this service does not fetch repositories from that host; "
                "ask the administrator if it should",
                status=403,
            )
        if literal is not None or scheme not in ("http", "https"):
            return []
        listed = ",".join(f"[{a}]" if a.version == 6 else str(a) for a in addresses)
        return [f"{host}:{port}:{listed}"]

    async def _addresses(self, host: str, port: int) -> list:
        """Every address `host` resolves to (A and AAAA), in the resolver's order."""
        infos = await asyncio.get_running_loop().getaddrinfo(
            host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP
        )
        addresses = (parse_address(info[4][0]) for info in infos)
        return list(dict.fromkeys(a for a in addresses if a is not None))

    def _env(self, pins=()) -> dict:
        """git's whole environment: an empty HOME, no system or global config, no
        credential helper, no prompt, only the allowed protocols."""
        if self._home is None:
            self._home = tempfile.mkdtemp(prefix="r2dservice-git-home-")
        env = {k: v for k, v in os.environ.items() if k in PASS_ENV}
        env.update(
            HOME=self._home,
            XDG_CONFIG_HOME=self._home,
            GIT_CONFIG_NOSYSTEM="1",
            GIT_CONFIG_GLOBAL=os.devnull,
            GIT_TERMINAL_PROMPT="0",  # fail instead of waiting for a password
            GIT_ASKPASS="",  # set and empty: no askpass program, not even SSH_ASKPASS
            SSH_ASKPASS_REQUIRE="never",
            GCM_INTERACTIVE="never",
            GIT_ALLOW_PROTOCOL=":".join(sorted(self.allowed_schemes)),
            GIT_SSH_COMMAND=self.ssh_command,
            LC_ALL="C",  # git's messages in English, for _NOT_FOUND
        )
        config = [
            ("credential.helper", ""),  # an empty value clears every helper
            ("http.followRedirects", "true" if self.follow_redirects else "false"),
            *(("http.curloptResolve", pin) for pin in pins),
        ]
        for i, (key, value) in enumerate(config):
            env[f"GIT_CONFIG_KEY_{i}"] = key
            env[f"GIT_CONFIG_VALUE_{i}"] = value
        env["GIT_CONFIG_COUNT"] = str(len(config))
        return env

    async def _ls_remote(self, url: str, credentials: str, shown: str, ref: str, pins=()) -> str:
        """`git ls-remote` of the clean `url` (its credentials go to git through its
        environment, never argv). git's own words go to the log, not to the caller:
        "connection refused", "no such host" and "timed out" all read "could not reach",
        so that the service is no port scanner for whoever asks."""
        # patterns match from the end ("main" also lists refs/heads/x/main); pick_ref
        # chooses. "<ref>^{}" asks for the commit under an annotated tag.
        cmd = [self.git_command, "ls-remote", "--", url, ref, ref + "^{}"]
        self.log.debug("git ls-remote %s %s", shown, ref)
        try:
            proc = await asyncio.create_subprocess_exec(
                *cmd,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                env=credential_env(self._env(pins), credentials),
                # its own process group: a timeout kills git's helpers (ssh, remote-http) too
                start_new_session=True,
            )
        except OSError as e:
            raise ResolveError(
                f"could not run {self.git_command!r} ({e}); tell the administrator",
                status=503,
            ) from None
        try:
            stdout, too_big, stderr = await asyncio.wait_for(self._communicate(proc), self.timeout)
        except (asyncio.TimeoutError, asyncio.CancelledError) as e:
            _kill_group(proc)
            await proc.wait()
            if isinstance(e, asyncio.CancelledError):
                raise
            self.log.info("git ls-remote %s: no answer within %g s", shown, self.timeout)
            raise _unreachable(shown) from None
        if too_big:
            raise ResolveError(
                f"{shown} answered with more than {self.max_output} bytes of refs; "
                "this service does not read that much",
                status=502,
            )
        message = redact(stderr.decode("utf-8", "replace").strip(), url)
        if proc.returncode != 0:
            self.log.info(
                "git ls-remote %s exited with %s: %s", shown, proc.returncode, _last_lines(message)
            )
            if _NOT_FOUND.search(message):
                raise ResolveError(
                    f"repository {shown} not found, or it needs credentials: check the URL "
                    "(and the credentials in it, if any)",
                    status=404,
                )
            raise _unreachable(shown)
        return stdout.decode("utf-8", "replace")

    async def _communicate(self, proc) -> tuple[bytes, bool, bytes]:
        """(stdout, whether it was cut at max_output, stderr); git is killed at the cut."""
        err = asyncio.ensure_future(read_bounded(proc.stderr, 64 * 1024, drain=True))
        try:
            stdout, too_big = await read_bounded(proc.stdout, self.max_output)
            if too_big:
                _kill_group(proc)
            stderr, _ = await err
            await proc.wait()
        finally:
            err.cancel()
        return stdout, too_big, stderr

    async def close(self) -> None:
        if self._home is not None:
            shutil.rmtree(self._home, ignore_errors=True)
            self._home = None


def _unreachable(shown: str) -> ResolveError:
    """The one answer for every way of not reaching a host (see _ls_remote)."""
    return ResolveError(
        f"could not reach the repository {shown}; check the URL, or try again in a minute",
        status=503,
    )


async def read_bounded(stream, limit: int, drain: bool = False) -> tuple[bytes, bool]:
    """At most `limit` bytes of `stream` until its end, and whether there was more.
    `drain`: read the rest and drop it (a writer must not block on a full pipe);
    otherwise stop at the limit (the caller kills the writer)."""
    data = bytearray()
    more = False
    while True:
        chunk = await stream.read(64 * 1024)
        if not chunk:
            return bytes(data), more
        room = limit - len(data)
        if len(chunk) > room:
            data += chunk[: max(room, 0)]
            more = True
            if not drain:
                return bytes(data), True
        else:
            data += chunk


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
