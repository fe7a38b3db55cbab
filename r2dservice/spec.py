"""Parse and validate "<provider>/<spec>" strings. Pure: no I/O.

The formats are BinderHub's, so existing links keep working:

    gh/<owner>/<repo>/<ref>                    gh/binder-examples/requirements/HEAD
    gl/<url-escaped project path>/<ref>        gl/group%2Fsub%2Fproject/main
    git/<url-escaped clone URL>/<ref>          git/https%3A%2F%2Fexample.org%2Frepo.git/v1
    gist/<owner>/<gist id>[/<ref>]             gist/octocat/6cad326836d38bd3a7ae
    gitea/<owner>/<repo>/<ref>                 gitea/forgejo/forgejo/HEAD (Codeberg)
    zenodo/<DOI>                               zenodo/10.5281/zenodo.3242074
    figshare/<DOI>                             figshare/10.6084/m9.figshare.9782777.v1
    hydroshare/<resource id, DOI or URL>       hydroshare/b8f6eae9d89241cf8b5904033460af61
    dataverse/<DOI>                            dataverse/10.7910/DVN/TJCLKP
    ckan/<url-escaped dataset URL>             ckan/https%3A%2F%2Fdemo.ckan.org%2Fdataset%2Fx
    doi/<DOI>                                  doi/10.5281/zenodo.3242074 (any provider's)
    swhid/<SWHID>                              swhid/swh:1:dir:<40 hex digits>

The data providers (zenodo to swhid) have no ref: a record's version is part of what
names it, and resolving finds the version (RepoSpec.ref is "").
Specs arrive as raw URL paths (still percent-encoded), as BinderHub reads them: each part
is split on "/" first and unescaped after, so "%2F" inside a part never splits it.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from urllib.parse import quote, quote_plus, unquote, unquote_plus, urlsplit

# The git providers whose spec ends in a ref (what spawner.py reads links of).
PROVIDERS = ("gh", "gl", "git", "gist")
# Providers whose spec is a record's id, without a ref.
DATA_PROVIDERS = ("zenodo", "figshare", "hydroshare", "dataverse", "ckan", "doi", "swhid")
ALL_PROVIDERS = (*PROVIDERS, "gitea", *DATA_PROVIDERS)
DEFAULT_GIT_SCHEMES = frozenset({"https", "http", "git", "ssh"})
MAX_SPEC_LENGTH = 4096

EXAMPLES = {
    "gh": "gh/binder-examples/requirements/HEAD",
    "gl": "gl/group%2Fsub%2Fproject/main",
    "git": "git/https%3A%2F%2Fexample.org%2Fteam%2Frepo.git/main",
    "gist": "gist/octocat/6cad326836d38bd3a7ae",
    "gitea": "gitea/forgejo/forgejo/HEAD",
    "zenodo": "zenodo/10.5281/zenodo.3242074",
    "figshare": "figshare/10.6084/m9.figshare.9782777.v1",
    "hydroshare": "hydroshare/b8f6eae9d89241cf8b5904033460af61",
    "dataverse": "dataverse/10.7910/DVN/TJCLKP",
    "ckan": "ckan/https%3A%2F%2Fdemo.ckan.org%2Fdataset%2Fmy-sample-dataset-001",
    "doi": "doi/10.5281/zenodo.3242074",
    "swhid": "swhid/swh:1:dir:" + "0" * 40,
}
FORMATS = {
    "gh": "gh/<owner>/<repo>/<ref>",
    "gl": "gl/<url-escaped project path>/<ref>",
    "git": "git/<url-escaped clone URL>/<ref>",
    "gist": "gist/<owner>/<gist id>[/<ref>]",
    "gitea": "gitea/<owner>/<repo>/<ref>",
    "zenodo": "zenodo/<DOI>",
    "figshare": "figshare/<DOI>",
    "hydroshare": "hydroshare/<resource id, DOI or URL>",
    "dataverse": "dataverse/<DOI>",
    "ckan": "ckan/<url-escaped dataset URL>",
    "doi": "doi/<DOI>",
    "swhid": "swhid/<SWHID of a directory or revision>",
}

# GitHub logins: letters, digits, "-" ("_" for Enterprise managed users), at most 39.
_OWNER_RE = re.compile(r"[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,38})")
_GH_REPO_RE = re.compile(r"[A-Za-z0-9._-]{1,100}")
# GitLab path segments: letters, digits, "_", "-", "."; not starting with "-".
_GL_SEGMENT_RE = re.compile(r"[A-Za-z0-9_.][A-Za-z0-9_.-]{0,254}")
_GIST_ID_RE = re.compile(r"[A-Za-z0-9]{1,64}")
_SHA_RE = re.compile(r"[0-9a-fA-F]{40}|[0-9a-fA-F]{64}")
_GIST_HEAD_ALIASES = frozenset({"HEAD", "master", "main"})
# git's scp-like syntax, "user@host:path"; BinderHub maps it to ssh://.
_SCP_RE = re.compile(r"([\w.-]+@[\w.-]+):(?!//)(.+)")
_BAD_REF_CHARS = set(" ~^:?*[\\")
# A DOI: "10.<registrant>/<suffix>"; "doi:" and resolver URLs in front are dropped.
_DOI_RE = re.compile(r"10\.\d+(?:\.\d+)*/\S+")
_DOI_PREFIX_RE = re.compile(r"(?:doi:|https?://(?:dx\.)?doi\.org/)", re.IGNORECASE)
_DOI_SAFE = "/:;()@+,=!$&'*[]"
_HYDROSHARE_ID_RE = re.compile(r"[0-9a-fA-F]{32}")
# repo2docker's swhid provider builds directories and revisions of SWHID version 1.
_SWHID_RE = re.compile(r"swh:1:(dir|rev):[0-9a-f]{40}(;[a-z]+=[^;\s]*)*")
_GITEA_OWNER_RE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,39}")
# What a canonical spec leaves unescaped in a ref: readable refs stay readable, and
# anything a URL path would mangle ("#", "%", "?", non-ASCII) is escaped.
_REF_SAFE = "/@+,=!$&'()-._"


class SpecError(ValueError):
    """A spec that cannot be used; the message says what was expected, with an example."""

    status = 400


def is_sha(ref: str) -> bool:
    """True for a full commit id: 40 hex digits (SHA-1) or 64 (SHA-256)."""
    return bool(_SHA_RE.fullmatch(ref))


@dataclass(frozen=True)
class RepoSpec:
    """A parsed spec. `repo` is unescaped: "owner/repo", "group/project", a clone URL."""

    provider: str
    repo: str
    ref: str

    @property
    def spec(self) -> str:
        """The canonical "<spec>" (without "<provider>/"); parse_spec() reads it back."""
        return format_spec(self.provider, self.repo, self.ref)

    def __str__(self) -> str:
        return f"{self.provider}/{self.spec}"


def format_spec(provider: str, repo: str, ref: str) -> str:
    """The canonical spec for a repository and ref; the inverse of parse_spec()."""
    if provider in ("zenodo", "figshare", "dataverse", "doi"):
        return quote(repo, safe=_DOI_SAFE)
    if provider == "ckan":
        return quote(repo, safe="")
    if provider in ("hydroshare", "swhid"):
        return quote(repo, safe=":;=/")
    escaped_ref = quote(ref, safe=_REF_SAFE)
    if provider in ("gl", "git"):
        # these repos contain "/" themselves, so they travel as one escaped part
        return f"{quote(repo, safe='')}/{escaped_ref}"
    return f"{repo}/{escaped_ref}"


def split_spec(full_spec: str) -> tuple[str, str]:
    """'gh/a/b/main' -> ('gh', 'a/b/main')."""
    provider, sep, rest = full_spec.partition("/")
    if not sep or not provider or not rest:
        raise SpecError(
            f"{full_spec!r} is not of the form '<provider>/<spec>'; for example {EXAMPLES['gh']!r}"
        )
    return provider, rest


def parse_spec(provider: str, spec: str, *, allowed_schemes=DEFAULT_GIT_SCHEMES) -> RepoSpec:
    """Parse the spec of one provider; raises SpecError.

    `allowed_schemes` are the URL schemes the git provider accepts ("file" is not
    among the defaults: it would read the service's own disk).
    """
    parser = _PARSERS.get(provider)
    if parser is None:
        raise SpecError(
            f"unknown provider {provider!r}: use one of {', '.join(ALL_PROVIDERS)}, "
            f"for example {EXAMPLES['gh']!r}"
        )
    if len(spec) > MAX_SPEC_LENGTH:
        raise SpecError(f"the spec is longer than {MAX_SPEC_LENGTH} characters")
    # BinderHub drops trailing slashes, and links with them exist.
    stripped = spec.rstrip("/")
    if not stripped:
        raise _format_error(provider, spec, "it is empty")
    if provider == "git":
        return parser(stripped, spec, allowed_schemes)
    return parser(stripped, spec)


# --- helpers ---------------------------------------------------------------------------


def _format_error(provider: str, spec: str, problem: str) -> SpecError:
    if provider == "git":
        # the URL may carry a password or token: never echo it
        head, sep, tail = spec.partition("/")
        url = unquote(head, errors="replace")
        if redact_url(url) != url:
            spec = f"{quote(redact_url(url), safe='')}{sep}{tail}"
    # any URL in the spec or the problem (a ref may be one) loses its credentials too
    return SpecError(
        redact(
            f"{provider}/{spec} is not a valid spec: {problem}. "
            f"Expected {FORMATS[provider]}, for example {EXAMPLES[provider]}"
        )
    )


def _unescape(provider: str, spec: str, part: str, what: str) -> str:
    try:
        return unquote(part, errors="strict")
    except UnicodeDecodeError:
        raise _format_error(
            provider, spec, f"the {what} {part!r} has a %-escape that is not UTF-8"
        ) from None


def _has_control(text: str) -> bool:
    return any(ord(c) < 0x20 or ord(c) == 0x7F for c in text)


def ref_problem(ref: str) -> str | None:
    """Why `ref` is not a valid git ref name (git check-ref-format rules), or None."""
    if not ref:
        return "the ref is empty"
    if _has_control(ref):
        return "the ref contains a control character"
    bad = sorted(_BAD_REF_CHARS.intersection(ref))
    if bad:
        shown = " ".join("space" if c == " " else c for c in bad)
        return f"the ref {ref!r} contains {shown}, which git does not allow in ref names"
    if ".." in ref:
        return f"the ref {ref!r} contains '..'"
    if "@{" in ref:
        return f"the ref {ref!r} contains '@{{'"
    if ref == "@":
        return "the ref '@' is not a valid ref name"
    if ref.startswith("/") or ref.endswith("/") or "//" in ref:
        return f"the ref {ref!r} has an empty path component"
    if ref.endswith("."):
        return f"the ref {ref!r} ends with '.'"
    for component in ref.split("/"):
        if component.startswith("."):
            return f"the ref {ref!r} has a component starting with '.'"
        if component.endswith(".lock"):
            return f"the ref {ref!r} has a component ending with '.lock'"
    return None


def _check_ref(provider: str, spec: str, ref: str) -> str:
    problem = ref_problem(ref)
    if problem:
        raise _format_error(provider, spec, problem)
    return ref


def _strip_git_suffix(name: str) -> str:
    return name[: -len(".git")] if name.endswith(".git") else name


# --- the providers ---------------------------------------------------------------------


def _parse_gh(stripped: str, spec: str) -> RepoSpec:
    parts = stripped.split("/", 2)
    if len(parts) < 3:
        hint = ""
        if len(parts) == 2 and all(parts):
            hint = f" (did you mean gh/{stripped}/HEAD? HEAD is the default branch)"
        raise _format_error("gh", spec, "the ref is missing" + hint)
    owner = _unescape("gh", spec, parts[0], "owner")
    name = _unescape("gh", spec, parts[1], "repository")
    ref = _unescape("gh", spec, parts[2], "ref")
    if not owner:
        raise _format_error("gh", spec, "the owner is empty")
    if not _OWNER_RE.fullmatch(owner):
        raise _format_error(
            "gh", spec, f"the owner {owner!r} is not a GitHub user or organization name"
        )
    name = _strip_git_suffix(name)
    if not name:
        raise _format_error("gh", spec, "the repository name is empty")
    if not _GH_REPO_RE.fullmatch(name) or name in (".", ".."):
        raise _format_error(
            "gh",
            spec,
            f"the repository name {name!r} may only contain letters, digits, '.', '-' and '_'",
        )
    return RepoSpec("gh", f"{owner}/{name}", _check_ref("gh", spec, ref))


def _parse_gl(stripped: str, spec: str) -> RepoSpec:
    escaped, sep, raw_ref = stripped.partition("/")
    if not sep or not raw_ref:
        raise _format_error("gl", spec, "the ref is missing")
    path = _unescape("gl", spec, escaped, "project path")
    segments = path.split("/")
    if len(segments) < 2:
        # "gl/group/project/main" splits as namespace "group", ref "project/main"
        raise _format_error(
            "gl",
            spec,
            f"the project path {path!r} has no namespace; escape the slashes in the "
            "project path (group%2Fproject, not group/project)",
        )
    segments[-1] = _strip_git_suffix(segments[-1])
    for segment in segments:
        if not segment:
            raise _format_error("gl", spec, f"the project path {path!r} has an empty part")
        if not _GL_SEGMENT_RE.fullmatch(segment):
            raise _format_error(
                "gl",
                spec,
                f"{segment!r} in the project path may only contain letters, digits, "
                "'_', '-' and '.', and may not start with '-'",
            )
    ref = _unescape("gl", spec, raw_ref, "ref")
    return RepoSpec("gl", "/".join(segments), _check_ref("gl", spec, ref))


def _parse_git(stripped: str, spec: str, allowed_schemes) -> RepoSpec:
    escaped, sep, raw_ref = stripped.partition("/")
    url = _unescape("git", spec, escaped, "URL")
    if re.fullmatch(r"[A-Za-z][A-Za-z0-9+.-]*:", url):
        # "git/https://host/repo/main": the URL was not escaped, "/" split it
        raise _format_error(
            "git", spec, "the clone URL must be url-escaped as one part (':' as %3A, '/' as %2F)"
        )
    if not sep or not raw_ref:
        raise _format_error("git", spec, "the ref is missing")
    url = normalize_git_url(url, allowed_schemes, spec)
    ref = _unescape("git", spec, raw_ref, "ref")
    return RepoSpec("git", url, _check_ref("git", spec, ref))


def normalize_git_url(url: str, allowed_schemes=DEFAULT_GIT_SCHEMES, spec: str = "") -> str:
    """Validate a clone URL; scp-like "user@host:path" becomes "ssh://user@host/path"."""
    spec = spec or quote(url, safe="")

    def fail(problem: str) -> SpecError:
        return _format_error("git", spec, problem)

    if not url:
        raise fail("the clone URL is empty")
    if _has_control(url) or re.search(r"\s", url):
        raise fail("the clone URL contains whitespace or a control character")
    if url.startswith("-"):
        # would read as an option to git
        raise fail("the clone URL starts with '-'")
    scp = _SCP_RE.fullmatch(url)
    if scp and "://" not in url:
        user_host, path = scp.groups()
        url = f"ssh://{user_host}/{path.lstrip('/')}"
    try:
        parts = urlsplit(url)
        _ = parts.port  # raises ValueError for a non-numeric port
    except ValueError as e:
        raise fail(f"the clone URL {redact_url(url)!r} is malformed ({e})") from None
    scheme = parts.scheme.lower()
    allowed = ", ".join(sorted(allowed_schemes))
    if not scheme:
        raise fail(f"the clone URL {redact_url(url)!r} has no scheme; use one of: {allowed}")
    if scheme not in allowed_schemes:
        raise fail(f"the URL scheme {scheme!r} is not allowed here; use one of: {allowed}")
    # Schemes are case-insensitive (RFC 3986), but git's protocol allow-list is not:
    # "Git://" would pass here and fail in git. Lower-case, one image for both spellings.
    url = scheme + url[len(parts.scheme) :]
    if scheme == "file":
        if not parts.path.startswith("/"):
            raise fail("a file: URL needs an absolute path, as in file:///srv/git/repo.git")
    elif not parts.hostname:
        raise fail(f"the clone URL {redact_url(url)!r} has no host")
    if not parts.path.strip("/") and scheme != "file":
        raise fail(f"the clone URL {redact_url(url)!r} names no repository path")
    try:
        split_credentials(url)  # credentials git's helper format can carry, or none
    except SpecError as e:
        raise fail(str(e)) from None
    return url


def _parse_gist(stripped: str, spec: str) -> RepoSpec:
    parts = stripped.split("/")
    if len(parts) not in (2, 3):
        raise _format_error("gist", spec, "expected two or three parts")
    owner, gist_id = (_unescape("gist", spec, p, "part") for p in parts[:2])
    ref = _unescape("gist", spec, parts[2], "ref") if len(parts) == 3 else "HEAD"
    if not _OWNER_RE.fullmatch(owner):
        raise _format_error("gist", spec, f"the owner {owner!r} is not a GitHub user name")
    gist_id = _strip_git_suffix(gist_id)
    if not _GIST_ID_RE.fullmatch(gist_id):
        raise _format_error("gist", spec, f"the gist id {gist_id!r} should be letters and digits")
    if ref not in _GIST_HEAD_ALIASES and not is_sha(ref):
        raise _format_error(
            "gist", spec, f"the gist revision {ref!r} is neither HEAD nor a full 40-digit sha"
        )
    return RepoSpec("gist", f"{owner}/{gist_id}", ref)


def _parse_gitea(stripped: str, spec: str) -> RepoSpec:
    parts = stripped.split("/", 2)
    if len(parts) < 3:
        raise _format_error("gitea", spec, "the ref is missing (HEAD is the default branch)")
    owner, name, ref = (
        _unescape("gitea", spec, p, w) for p, w in zip(parts, _GITEA_PARTS, strict=True)
    )
    name = _strip_git_suffix(name)
    if not _GITEA_OWNER_RE.fullmatch(owner):
        raise _format_error("gitea", spec, f"the owner {owner!r} is not a user or organization")
    if not _GH_REPO_RE.fullmatch(name) or name in (".", ".."):
        raise _format_error(
            "gitea",
            spec,
            f"the repository name {name!r} may only contain letters, digits, '.', '-' and '_'",
        )
    return RepoSpec("gitea", f"{owner}/{name}", _check_ref("gitea", spec, ref))


_GITEA_PARTS = ("owner", "repository", "ref")


def _whole(provider: str, stripped: str, spec: str) -> str:
    """A ref-less spec is one value, its "/" unescaped or not (BinderHub unescapes it whole)."""
    value = _unescape(provider, spec, stripped, "spec").strip()
    if _has_control(value) or re.search(r"\s", value):
        raise _format_error(provider, spec, "it contains whitespace or a control character")
    return value


def normalize_doi(text: str) -> str | None:
    """ "doi:10.1/x", "https://doi.org/10.1/x" and "10.1/x" -> "10.1/x"; None if no DOI."""
    doi = _DOI_PREFIX_RE.sub("", text.strip(), count=1)
    return doi if _DOI_RE.fullmatch(doi) else None


def _doi_parser(provider: str):
    def parse(stripped: str, spec: str) -> RepoSpec:
        doi = normalize_doi(_whole(provider, stripped, spec))
        if doi is None:
            raise _format_error(provider, spec, "it is not a DOI (10.<number>/<suffix>)")
        return RepoSpec(provider, doi, "")

    return parse


def _parse_hydroshare(stripped: str, spec: str) -> RepoSpec:
    # as BinderHub: the 32-hex resource id wherever it is (bare, DOI 10.4211/hs.<id>, URL)
    ids = {m.lower() for m in _HYDROSHARE_ID_RE.findall(_whole("hydroshare", stripped, spec))}
    if len(ids) != 1:
        problem = "it holds no" if not ids else "it holds more than one"
        raise _format_error("hydroshare", spec, f"{problem} 32-digit resource id")
    return RepoSpec("hydroshare", ids.pop(), "")


def _parse_ckan(stripped: str, spec: str) -> RepoSpec:
    url = _whole("ckan", stripped, spec)
    # a raw URL in a path may have lost a "/" of "//" to a proxy
    url = re.sub(r"^(https?):/(?!/)", r"\1://", url, flags=re.IGNORECASE)
    try:
        parts = urlsplit(url)
        _ = parts.port
    except ValueError as e:
        raise _format_error("ckan", spec, f"the dataset URL is malformed ({e})") from None
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        raise _format_error("ckan", spec, "the dataset URL must be an http(s) URL with a host")
    if "@" in parts.netloc:
        raise _format_error("ckan", spec, "the dataset URL must not carry credentials")
    prefix, sep, rest = parts.path.partition("/dataset/")
    if not sep or not rest.split("/")[0]:
        raise _format_error(
            "ckan", spec, "the URL is not a dataset's page (<CKAN site>/dataset/<name>)"
        )
    return RepoSpec("ckan", parts._replace(fragment="").geturl(), "")


def _parse_swhid(stripped: str, spec: str) -> RepoSpec:
    swhid = _whole("swhid", stripped, spec)
    if not _SWHID_RE.fullmatch(swhid):
        raise _format_error(
            "swhid", spec, "it is not the SWHID of a directory or revision (swh:1:dir|rev:<sha1>)"
        )
    return RepoSpec("swhid", swhid, "")


_PARSERS = {
    "gh": _parse_gh,
    "gl": _parse_gl,
    "git": _parse_git,
    "gist": _parse_gist,
    "gitea": _parse_gitea,
    "zenodo": _doi_parser("zenodo"),
    "figshare": _doi_parser("figshare"),
    "dataverse": _doi_parser("dataverse"),
    "doi": _doi_parser("doi"),
    "hydroshare": _parse_hydroshare,
    "ckan": _parse_ckan,
    "swhid": _parse_swhid,
}


# --- credentials in URLs ---------------------------------------------------------------
#
# A URL may appear raw ("https://u:p@h/r"), or percent-encoded once or more inside a spec,
# a request path or a query string ("https%3A%2F%2Fu%3Ap%40h%2Fr", "https%253A%252F..."),
# with any hex case, by encoders that leave some delimiters raw ("https%3A//u%3Ap%40h/r").
# Encoding is per character, so the delimiters of one URL sit at most as deep as its
# "://" does (depth d: 0 raw, 1 "%3A", 2 "%253A", ...), and the characters of a user name
# or password (encoded once inside the URL itself) sit deeper than d. So: the authority
# runs from "://" to the first "/" of depth <= d, and the userinfo ends at its last "@" of
# any depth; its user ends at the first ":" of depth <= d. Where that reading is wrong
# the URL was mangled, and it errs towards removing more.

_SCHEME_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+.-")
_SEPARATOR_RE = re.compile(r"(?::|%(?:25)*3A)(?:/|%(?:25)*2F){2}", re.IGNORECASE)
_AT_RE = re.compile(r"@|%(?:25)*40", re.IGNORECASE)
_HEX_PREFIX_RE = re.compile(r"(?:25)*[0-9A-Fa-f]{2}")
_MIN_SECRET = 4  # shorter secrets ("git", "x") would scrub ordinary words anywhere


def _depth(token: str) -> int:
    """How often a one-character token was %-encoded: ":" 0, "%3A" 1, "%253A" 2."""
    return 0 if len(token) == 1 else (len(token) - 3) // 2 + 1


def _encoded(char_hex: str, raw: str, depth: int) -> str:
    """A regex for `raw` %-encoded at most `depth` times."""
    return re.escape(raw) if depth == 0 else rf"{re.escape(raw)}|%(?:25){{0,{depth - 1}}}{char_hex}"


_AUTHORITY_RES: dict[int, re.Pattern] = {}
_COLON_RES: dict[int, re.Pattern] = {}


def _authority_re(depth: int) -> re.Pattern:
    if depth not in _AUTHORITY_RES:
        # inside an encoded URL a raw "&" ends a query parameter, not a password
        extra = "&" if depth else ""
        _AUTHORITY_RES[depth] = re.compile(
            rf"(?:(?!{_encoded('2F', '/', depth)})[^\s\x00-\x1f\x7f\"<>{extra}])*", re.IGNORECASE
        )
        _COLON_RES[depth] = re.compile(_encoded("3A", ":", depth), re.IGNORECASE)
    return _AUTHORITY_RES[depth]


@dataclass(frozen=True)
class _Userinfo:
    scheme: str  # as found (may be ""), not decoded
    start: int  # of the user name
    colon: int  # of the user/password separator, or -1
    end: int  # of the "@" that ends the userinfo
    after: int  # just past that "@"

    @property
    def http_like(self) -> bool:
        # tokens are sent as http user names; a scheme we cannot read loses all too
        return not self.scheme or "http" in self.scheme.lower()


def _scheme_before(text: str, pos: int) -> str:
    begin = pos
    while begin > 0 and text[begin - 1] in _SCHEME_CHARS:
        begin -= 1
    scheme = text[begin:pos]
    if begin > 0 and text[begin - 1] == "%":
        # "%2Fhttps": the run starts with the hex digits of an escape
        m = _HEX_PREFIX_RE.match(scheme)
        if m:
            scheme = scheme[m.end() :]
    return scheme


def _userinfos(text: str):
    """Every userinfo of every URL in `text`, in any encoding, in order."""
    pos = 0
    while True:
        sep = _SEPARATOR_RE.search(text, pos)
        if sep is None:
            return
        depth = max(_depth(t) for t in re.findall(r":|/|%(?:25)*[0-9A-F]{2}", sep.group(), re.I))
        start = sep.end()
        authority = _authority_re(depth).match(text, start)
        ats = list(_AT_RE.finditer(text, start, authority.end()))
        if not ats:
            pos = sep.end()
            continue
        at = ats[-1]
        colon = _COLON_RES[depth].search(text, start, at.start())
        yield _Userinfo(
            scheme=_scheme_before(text, sep.start()),
            start=start,
            colon=colon.start() if colon else -1,
            end=at.start(),
            after=at.end(),
        )
        pos = at.end()


def redact_url(text: str) -> str:
    """Remove credentials from every URL in `text`, raw or %-encoded any number of times.

    http(s) URLs lose their whole userinfo (tokens are often sent as the user name);
    other schemes keep the user ("ssh://git@host" says which key) and lose a password.
    `text` may be free text, a spec or a whole request path with its query string.
    """
    out, pos = [], 0
    for info in _userinfos(text):
        out.append(text[pos : info.start])
        if not info.http_like:
            if info.colon < 0:
                out.append(text[info.start : info.after])  # a user name alone
            else:
                colon_end = _COLON_RES_ANY.match(text, info.colon).end()
                out.append(text[info.start : colon_end] + "***" + text[info.end : info.after])
        pos = info.after
    out.append(text[pos:])
    return "".join(out)


_COLON_RES_ANY = re.compile(r":|%(?:25)*3A", re.IGNORECASE)


def _encodings(secret: str) -> list[str]:
    """`secret` as it may appear: as given, decoded, and encoded 1-3 times by the usual
    encoders (quote, quote_plus, encodeURIComponent's set); hex case is matched later."""
    bases = [secret]
    for _ in range(4):
        decoded = unquote(bases[-1])
        if decoded == bases[-1]:
            break
        bases.append(decoded)
    bases += [unquote_plus(b) for b in bases]
    encoders = [
        lambda s: quote(s, safe=""),
        lambda s: quote(s, safe="/"),
        lambda s: quote_plus(s, safe=""),
        lambda s: quote(s, safe="!~*'()"),
    ]
    forms = []
    for base in bases:
        forms.append(base)
        for encode in encoders:
            once = encode(base)
            forms += [once, quote(once, safe=""), quote(quote(once, safe=""), safe="")]
            forms += [encode(once), encode(encode(once))]
    return list(dict.fromkeys(f for f in forms if len(f) >= _MIN_SECRET))


def url_secrets(url: str) -> list[str]:
    """Secrets embedded in `url`, in every form they may take in text: as written in the
    URL, %-decoded, and %-encoded once or more ("+" or "%20" for a space; any hex case
    matches in redact()). Longest first, so that a longer form is scrubbed as a whole."""
    info = next(_userinfos(url), None)
    if info is None:
        return []
    secrets = []
    if info.colon >= 0:
        password_start = _COLON_RES_ANY.match(url, info.colon).end()
        secrets.append(url[password_start : info.end])
        user = url[info.start : info.colon]
    else:
        user = url[info.start : info.end]
    if info.http_like:
        secrets.append(user)
    forms = [form for secret in secrets if secret for form in _encodings(secret)]
    return sorted(dict.fromkeys(forms), key=len, reverse=True)


def _secret_pattern(form: str) -> str:
    parts = []
    for piece in re.split(r"(%(?:25)*[0-9A-Fa-f]{2}|\+)", form):
        if piece == "+" or piece.upper() == "%20":
            parts.append(r"(?:\+|%20)")
        elif piece.startswith("%"):
            parts.append(f"(?i:{re.escape(piece)})")
        else:
            parts.append(re.escape(piece))
    return "".join(parts)


def redact(text: str, url: str = "") -> str:
    """`text` with the credentials of every URL in it (raw or %-encoded, as in a request
    path or query string), and those of `url` in any encoding anywhere, removed.

    Pure and cheap: the access log can pass every request path through it.
    """
    text = redact_url(text)
    secrets = url_secrets(url) if url else []
    if secrets:
        pattern = re.compile("|".join(_secret_pattern(s) for s in secrets))
        text = pattern.sub("***", text)
    return text


def _credential_problem(value: str) -> str | None:
    if any(unicodedata.category(c) == "Cc" for c in value):
        return "a control character (a newline, NUL, ...)"
    return None


def split_credentials(url: str) -> tuple[str, str]:
    """`url` without its secrets, and those secrets as git credential helper input.

    repo2docker and build pods get the clean URL on their command line and the
    credentials the way git expects secrets (a helper reading an environment variable
    or a Secret), so `ps`, pod specs and image labels never show them. The second
    value is "" when the URL carries none, else "protocol=..\nhost=..\nusername=..\n
    password=..\n" (git-credential(1)'s format, %-decoded).

    ssh-like URLs keep their user (it names the key) and lose a password, which git
    would have no way to use. Raises SpecError for credentials that git-credential(1)'s
    line format cannot carry (control characters, a %-escape that is not UTF-8) and for
    a raw "@", "?" or "#" inside them (git and curl would read such a URL differently).
    """
    m = re.match(r"([A-Za-z][A-Za-z0-9+.-]*://)([^/]*)", url)
    if not m or "@" not in m.group(2):
        return url, ""
    scheme, authority = m.group(1), m.group(2)
    userinfo, _, hostport = authority.rpartition("@")
    rest = hostport + url[m.end() :]
    shown = redact_url(url)
    if set("@?#") & set(userinfo):
        raise SpecError(
            f"the credentials in the clone URL {shown!r} contain a raw '@', '?' or '#': "
            "%-encode them (%40, %3F, %23)"
        )
    user, colon, password = userinfo.partition(":")
    fields = {"protocol": scheme[:-3].lower(), "host": hostport}
    for key, raw in (
        ("username", user if user else None),
        ("password", password if colon else None),
    ):
        if raw is None:
            continue
        try:
            fields[key] = unquote(raw, errors="strict")
        except UnicodeDecodeError:
            raise SpecError(
                f"the {key} in the clone URL {shown!r} has a %-escape that is not UTF-8"
            ) from None
    for key, value in fields.items():
        problem = _credential_problem(value)
        if problem:
            what = "user name" if key == "username" else key
            raise SpecError(
                f"the {what} in the clone URL {shown!r} contains {problem}, which git "
                "credentials cannot carry"
            )
    if "http" not in scheme.lower():
        # ssh-like: the user names the key, a password has no place for git to read it
        return f"{scheme}{user}@{rest}" if user else f"{scheme}{rest}", ""
    lines = [f"{key}={value}" for key, value in fields.items()]
    return scheme + rest, "\n".join(lines) + "\n"
