"""The provider interface: parse a spec, resolve its ref to an immutable commit."""

from __future__ import annotations

from dataclasses import dataclass

from traitlets import Bool, List, TraitError, Unicode, validate
from traitlets.config import LoggingConfigurable

from .. import policy
from ..spec import RepoSpec, format_spec, parse_spec


@dataclass(frozen=True)
class ResolvedRepo:
    """A spec whose ref has been resolved to an immutable commit.

    Only `repo_url` may carry credentials embedded in a git URL (repo2docker needs
    them to fetch); `spec` and `repo` are safe to show, log and put in labels.
    """

    provider: str  # "gh"
    spec: str  # the canonical spec as asked: "owner/repo/main"
    repo: str  # provider-specific identity of the repository: "owner/repo"
    repo_url: str  # what repo2docker fetches: "https://github.com/owner/repo"
    ref: str  # the ref as asked: "main"
    resolved_ref: str  # the commit: 40 hex digits
    ref_url: str = ""  # a web page for that commit (BinderHub's binder_ref_url)
    # the pinned spec where it is not `repo` at `resolved_ref` (a record's version DOI)
    pinned_spec: str = ""
    # Resolved with credentials the spec carried: the image then lives under a name of
    # its own (naming.image_name), which only a resolution with working credentials
    # reaches. Without that, another user's bare commit id would find it `ready`.
    credentialed: bool = False

    @property
    def persistent_spec(self) -> str:
        """The spec pinned to the resolved commit, without "<provider>/".

        BinderHub's binder_persistent_request is "v2/<provider>/" + this.
        """
        if self.pinned_spec:
            return self.pinned_spec
        return format_spec(self.provider, self.repo, self.resolved_ref)


class ResolveError(Exception):
    """A ref could not be resolved. The message is for a person and says what to do.

    `status` is the HTTP status to answer with: 404 unknown repository or ref,
    403 refused by policy, 400 bad input, 502 a broken answer from upstream,
    503 upstream unreachable, slow or rate-limited (`retry_after` seconds, if known).
    """

    def __init__(self, message: str, status: int = 503, retry_after: float | None = None):
        super().__init__(message)
        self.message = message
        self.status = status
        self.retry_after = retry_after


class RepoProvider(LoggingConfigurable):
    """One kind of repository host.

    Subclasses set the class attributes and implement resolve(); parse() and
    describe() work from the class attributes. Providers raise SpecError for bad
    specs and ResolveError for everything else.
    """

    name = ""  # the spec prefix: "gh"
    display_name = ""  # "GitHub"
    # for describe(), in the shape of BinderHub's /api/repoproviders entries
    repo_label = ""
    repo_placeholder = ""
    url_encode_repo = False  # the UI escapes what people type as the repo (gl, git)
    validate_regex = r".+"  # JavaScript regex for the spec after "<prefix>/"
    ref_default = "HEAD"
    has_ref = True  # False for records named by a DOI or id: their spec has no ref

    enabled = Bool(
        True,
        help="""Build from this provider. False turns it off: its specs are refused (400)
        on every route, and it leaves the repo providers list. Set it per provider,
        e.g. c.ZenodoRepoProvider.enabled = False.""",
    ).tag(config=True)
    banned_specs = List(
        Unicode(),
        help="""Specs never built, as BinderHub's: regular expressions matched with
        re.match (from the start, case-insensitively) against the spec without
        "<provider>/", in its canonical form (the one `binder_request` shows: for git
        and gl the URL or path %-escaped as one part). ["^evil-org/.*"] bans an owner
        on GitHub. A banned spec is refused with 403 and a message that says so.""",
    ).tag(config=True)
    allowed_specs = List(
        Unicode(),
        help="""When set, only specs that match one of these (same matching as
        banned_specs) are built; others are refused with 403. banned_specs wins over
        allowed_specs. Empty: every spec not banned.""",
    ).tag(config=True)

    high_quota_specs = List(
        Unicode(),
        help="""Specs that get c.Launcher.per_repo_quota_higher instead of
        c.Launcher.per_repo_quota, as BinderHub's: regular expressions matched as
        banned_specs are (re.match, case-insensitively, the canonical spec without
        "<provider>/"), against the spec a launch was requested with.""",
    ).tag(config=True)

    @validate("banned_specs", "allowed_specs", "high_quota_specs")
    def _valid_patterns(self, proposal):
        for pattern in proposal.value:
            problem = policy.pattern_problem(pattern)
            if problem:
                raise TraitError(f"{type(self).__name__}.{proposal.trait.name}: {problem}")
        return proposal.value

    def refusal(self, spec: str) -> str | None:
        """Why this service's spec policy refuses a canonical spec, or None."""
        verdict = policy.spec_verdict(spec, self.banned_specs, self.allowed_specs)
        return policy.spec_refusal(self.name, spec, verdict) if verdict else None

    def has_higher_quota(self, spec: str) -> bool:
        """Whether a canonical spec gets the higher per-repository launch quota."""
        return policy.matches_any(spec, self.high_quota_specs)

    def parse(self, spec: str) -> RepoSpec:
        """Parse the part after "<name>/"; raises SpecError."""
        return parse_spec(self.name, spec)

    async def resolve(self, repo_spec: RepoSpec) -> ResolvedRepo:
        """Resolve the ref to a commit; raises ResolveError."""
        raise NotImplementedError

    def repo_url(self, repo_spec: RepoSpec) -> str:
        """What repo2docker fetches for this repository. No I/O (`build-pod --ref`
        uses it to print a pod without asking the host)."""
        raise NotImplementedError

    def detect_regex(self) -> str | None:
        """A JavaScript regex that finds the repository in a pasted URL (or a bare
        name): the host as the first group (optional, as in BinderHub's), then the
        named groups `repo` and, where a URL says them, `ref` and `path` (a file)."""
        return None

    def describe(self) -> dict:
        """This provider's entry in the repo providers API (BinderHub's display_config)."""
        entry = {
            "displayName": self.display_name,
            "id": self.name,
            "spec": {"validateRegex": self.validate_regex},
        }
        detect = self.detect_regex()
        if detect:
            entry["detect"] = {"regex": detect}
        entry.update(
            {
                "repo": {
                    "label": self.repo_label,
                    "placeholder": self.repo_placeholder,
                    "urlEncode": self.url_encode_repo,
                },
                "ref": (
                    {"enabled": True, "default": self.ref_default}
                    if self.has_ref
                    else {"enabled": False}
                ),
            }
        )
        return entry

    async def close(self) -> None:
        """Release connections; the provider may be used again afterwards."""


# What follows a repository in a web page's URL: the page's query or fragment.
URL_TAIL = r"/?([?#]\S*)?$"
# One ref part of a URL path (branch names with "/" are ambiguous in URLs: the first part).
URL_REF = r"(?<ref>[^/?#\s]+)"
URL_PATH = r"(?<path>[^?#\s]*)"


def js_host_pattern(base_url: str) -> str:
    """'https://github.com' -> 'https?://github\\.com/' for detect regexes."""
    host = base_url.split("://", 1)[-1].rstrip("/")
    return r"https?://" + host.replace(".", r"\.") + "/"
