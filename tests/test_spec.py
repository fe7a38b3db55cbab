"""r2dservice.spec: parsing and validating "<provider>/<spec>" strings."""

import dataclasses
import re
from urllib.parse import quote, quote_plus, unquote

import pytest

from r2dservice.spec import (
    DEFAULT_GIT_SCHEMES,
    RepoSpec,
    SpecError,
    format_spec,
    is_sha,
    normalize_git_url,
    parse_spec,
    redact,
    redact_url,
    ref_problem,
    split_credentials,
    split_spec,
    url_secrets,
)

try:
    from hypothesis import assume, example, given, settings
    from hypothesis import strategies as st
except ImportError:  # the property tests below are skipped without it
    given = None

SHA = "0123456789abcdef0123456789abcdef01234567"


# --- split_spec ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "full, expected",
    [
        ("gh/a/b/main", ("gh", "a/b/main")),
        ("gl/g%2Fp/main", ("gl", "g%2Fp/main")),
        ("git/https%3A%2F%2Fh%2Fr/v1", ("git", "https%3A%2F%2Fh%2Fr/v1")),
        ("gist/u/1", ("gist", "u/1")),
        ("xx/anything", ("xx", "anything")),  # split_spec does not judge providers
    ],
)
def test_split_spec(full, expected):
    assert split_spec(full) == expected


@pytest.mark.parametrize("full", ["", "gh", "gh/", "/a/b/c", "/"])
def test_split_spec_rejects(full):
    with pytest.raises(SpecError, match="<provider>/<spec>"):
        split_spec(full)


# --- gh --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "spec, repo, ref",
    [
        ("binder-examples/requirements/HEAD", "binder-examples/requirements", "HEAD"),
        ("a/b/main", "a/b", "main"),
        ("a/b/feature/x", "a/b", "feature/x"),  # ref may contain slashes
        ("a/b/refs/heads/main", "a/b", "refs/heads/main"),
        ("a/b/refs/pull/12/head", "a/b", "refs/pull/12/head"),
        ("a/b/main/", "a/b", "main"),  # trailing slashes, as BinderHub
        ("a/b/feature/x///", "a/b", "feature/x"),
        ("a/b.git/main", "a/b", "main"),  # .git suffix dropped
        ("a/b.github.io/main", "a/b.github.io", "main"),
        ("a/.github/main", "a/.github", "main"),
        ("a/b_c-d.e/main", "a/b_c-d.e", "main"),
        ("Owner-1/Repo/v1.0", "Owner-1/Repo", "v1.0"),
        ("a/b/" + SHA, "a/b", SHA),
        ("a/b/feature%2Fx", "a/b", "feature/x"),  # url-escaped slash in the ref
        ("a/b/f%C3%BCr-dich", "a/b", "für-dich"),  # percent-encoded UTF-8
        ("a/b/für-dich", "a/b", "für-dich"),  # unicode refs are valid git refs
        ("a/b/v1%2B2", "a/b", "v1+2"),
        ("a/b/issue#1", "a/b", "issue#1"),
    ],
)
def test_parse_gh(spec, repo, ref):
    rs = parse_spec("gh", spec)
    assert rs == RepoSpec("gh", repo, ref)


@pytest.mark.parametrize(
    "spec, message",
    [
        ("a/b", "did you mean gh/a/b/HEAD"),
        ("a", "the ref is missing"),
        ("a/b/", "did you mean gh/a/b/HEAD"),  # trailing slash stripped, still no ref
        ("/b/main", "owner is empty"),
        ("a//main", "repository name is empty"),
        ("a/.git/main", "repository name is empty"),
        ("a/b//main", "empty path component"),  # "/main" as ref
        ("-a/b/main", "not a GitHub user"),
        ("a b/c/main", "not a GitHub user"),
        ("ünï/b/main", "not a GitHub user"),
        ("a/b c/main", "may only contain"),
        ("a/b%2Fc/main", "may only contain"),  # escaped slash does not sneak into a name
        ("a/bé/main", "may only contain"),
        ("a/../main", "may only contain"),
        ("a/" + "x" * 101 + "/main", "may only contain"),
        ("x" * 40 + "/b/main", "not a GitHub user"),
        ("a/b/ma in", "space"),
        ("a/b/ma%20in", "space"),
        ("a/b/a..b", "'..'"),
        ("a/b/a~1", "~"),
        ("a/b/a^", "^"),
        ("a/b/a:b", ":"),
        ("a/b/a?b", "?"),
        ("a/b/a*", "*"),
        ("a/b/a[1]", "["),
        ("a/b/a%5Cb", "\\"),
        ("a/b/x.lock", ".lock"),
        ("a/b/x.lock/y", ".lock"),
        ("a/b/main.", "ends with '.'"),
        ("a/b/.hidden", "starting with '.'"),
        ("a/b/x/.y", "starting with '.'"),
        ("a/b/a@{1}", "@{"),
        ("a/b/@", "'@'"),
        ("a/b/a%00b", "control character"),
        ("a/b/a%0Ab", "control character"),
        ("a/b/a%7Fb", "control character"),
        ("a/b/%C3", "not UTF-8"),
        ("a/b/%FF", "not UTF-8"),
    ],
)
def test_parse_gh_rejects(spec, message):
    with pytest.raises(SpecError) as e:
        parse_spec("gh", spec)
    text = str(e.value)
    assert message in text
    # every message says what was expected, with an example
    assert "gh/<owner>/<repo>/<ref>" in text and "gh/binder-examples/requirements/HEAD" in text


# --- gl --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "spec, repo, ref",
    [
        ("group%2Fproject/main", "group/project", "main"),
        ("group%2Fsub%2Fproject/main", "group/sub/project", "main"),
        ("group%2fsub%2fproject/main", "group/sub/project", "main"),  # lowercase escapes
        ("group%2Fproject.git/main", "group/project", "main"),
        ("group%2Fproject/feature/x", "group/project", "feature/x"),
        ("group%2Fproject/feature%2Fx", "group/project", "feature/x"),
        ("group%2Fproject/main/", "group/project", "main"),
        ("my.group%2Fmy_project-2/HEAD", "my.group/my_project-2", "HEAD"),
        ("g%2Fp/" + SHA, "g/p", SHA),
        ("g%2Fp/%C3%A9t%C3%A9", "g/p", "été"),
    ],
)
def test_parse_gl(spec, repo, ref):
    assert parse_spec("gl", spec) == RepoSpec("gl", repo, ref)


@pytest.mark.parametrize(
    "spec, message",
    [
        ("group/project/main", "escape the slashes"),  # unescaped: BinderHub format
        ("project/main", "escape the slashes"),
        ("group%2Fproject", "ref is missing"),
        ("group%2Fproject/", "ref is missing"),
        ("group%2F%2Fproject/main", "empty part"),
        ("%2Fgroup%2Fproject/main", "empty part"),
        ("group%2Fproject%2F/main", "empty part"),
        ("group%2F-project/main", "may not start with '-'"),
        ("gr%20oup%2Fproject/main", "may only contain"),
        ("gr%C3%BCn%2Fproject/main", "may only contain"),
        ("group%2Fproject/a..b", "'..'"),
        ("group%2Fproject/a%20b", "space"),
    ],
)
def test_parse_gl_rejects(spec, message):
    with pytest.raises(SpecError) as e:
        parse_spec("gl", spec)
    assert message in str(e.value)
    assert "gl/group%2Fsub%2Fproject/main" in str(e.value)


# --- git -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "spec, repo, ref",
    [
        (
            "https%3A%2F%2Fgithub.com%2Fbinder-examples%2Fconda/main",
            "https://github.com/binder-examples/conda",
            "main",
        ),
        (
            "https%3A%2F%2Fgithub.com%2Fbinder-examples%2Fconda/" + SHA,
            "https://github.com/binder-examples/conda",
            SHA,
        ),
        ("http%3A%2F%2Fhost%3A8080%2Fr.git/v1", "http://host:8080/r.git", "v1"),
        ("git%3A%2F%2F127.0.0.1%3A9418%2Frepo/HEAD", "git://127.0.0.1:9418/repo", "HEAD"),
        ("ssh%3A%2F%2Fgit%40host%2Fpath%2Frepo.git/main", "ssh://git@host/path/repo.git", "main"),
        # scp-like "user@host:path" becomes ssh://, as BinderHub does
        ("git%40github.com%3Aorg%2Frepo.git/main", "ssh://git@github.com/org/repo.git", "main"),
        ("https%3A%2F%2Fh%2Fr/feature/x", "https://h/r", "feature/x"),
        ("https%3A%2F%2Fh%2Fr/feature%2Fx/", "https://h/r", "feature/x"),
        ("https%3A%2F%2Fh%2Fr%2F/main", "https://h/r/", "main"),  # the URL keeps its own slash
        ("https%3A%2F%2Fu%3Ap%40h%2Fr/main", "https://u:p@h/r", "main"),
        ("https%3A%2F%2F%5B%3A%3A1%5D%2Fr/main", "https://[::1]/r", "main"),
        # schemes are case-insensitive; git's allow-list is not: lower-cased
        ("HTTPS%3A%2F%2Fh%2Fr/main", "https://h/r", "main"),
        ("Git%3A%2F%2Fh%2Fr/main", "git://h/r", "main"),
        ("sSh%3A%2F%2Fgit%40H%2Fr/main", "ssh://git@H/r", "main"),
        ("https%3A%2F%2Fh%2Fr/t%C3%A4g", "https://h/r", "täg"),
    ],
)
def test_parse_git(spec, repo, ref):
    assert parse_spec("git", spec) == RepoSpec("git", repo, ref)


@pytest.mark.parametrize(
    "spec, message",
    [
        ("https://github.com/a/b/main", "must be url-escaped"),
        ("https%3A%2F%2Fh%2Fr", "ref is missing"),
        ("file%3A%2F%2F%2Fsrv%2Frepo/main", "'file' is not allowed"),
        ("ext%3A%3Ash -c touch/main", "whitespace"),
        ("ext%3A%3Ash%2520-c/main", "'ext' is not allowed"),
        ("ftp%3A%2F%2Fh%2Fr/main", "'ftp' is not allowed"),
        ("%2Fsrv%2Frepo/main", "has no scheme"),
        ("-uhttps%3A%2F%2Fh%2Fr/main", "starts with '-'"),
        ("https%3A%2F%2F%2Fr/main", "has no host"),
        ("https%3A%2F%2Fh/main", "names no repository path"),
        ("https%3A%2F%2Fh%3Aport%2Fr/main", "malformed"),
        ("https%3A%2F%2Fh%2Fr%0A/main", "control character"),
        ("https%3A%2F%2Fh%2Fr/a..b", "'..'"),
        ("https%3A%2F%2Fh%2Fr/%FF", "not UTF-8"),
    ],
)
def test_parse_git_rejects(spec, message):
    with pytest.raises(SpecError) as e:
        parse_spec("git", spec)
    assert message in str(e.value)
    assert "git/<url-escaped clone URL>/<ref>" in str(e.value)


def test_git_schemes_are_a_parameter():
    spec = "file%3A%2F%2F%2Fsrv%2Frepo/main"
    assert "file" not in DEFAULT_GIT_SCHEMES
    rs = parse_spec("git", spec, allowed_schemes={"file"})
    assert rs.repo == "file:///srv/repo"
    with pytest.raises(SpecError, match="use one of: https$|use one of: https\\."):
        parse_spec("git", "http%3A%2F%2Fh%2Fr/main", allowed_schemes={"https"})
    with pytest.raises(SpecError, match="absolute path"):
        parse_spec("git", "file%3Asrv%2Frepo/main", allowed_schemes={"file"})


def test_git_error_messages_hide_credentials():
    with pytest.raises(SpecError) as e:
        parse_spec("git", "https%3A%2F%2Fuser%3Ahunter22%40h/main")
    assert "hunter22" not in str(e.value)


def test_normalize_git_url():
    assert normalize_git_url("git@host:repo.git") == "ssh://git@host/repo.git"
    assert normalize_git_url("git@host:/abs/repo.git") == "ssh://git@host/abs/repo.git"
    assert normalize_git_url("https://h/r") == "https://h/r"


# --- gist ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "spec, repo, ref",
    [
        ("octocat/6cad326836d38bd3a7ae", "octocat/6cad326836d38bd3a7ae", "HEAD"),
        ("octocat/6cad326836d38bd3a7ae/", "octocat/6cad326836d38bd3a7ae", "HEAD"),
        ("octocat/6cad326836d38bd3a7ae/HEAD", "octocat/6cad326836d38bd3a7ae", "HEAD"),
        ("octocat/6cad326836d38bd3a7ae/master", "octocat/6cad326836d38bd3a7ae", "master"),
        ("octocat/6cad326836d38bd3a7ae/main", "octocat/6cad326836d38bd3a7ae", "main"),
        ("octocat/6cad326836d38bd3a7ae/" + SHA, "octocat/6cad326836d38bd3a7ae", SHA),
        ("octocat/6cad326836d38bd3a7ae.git", "octocat/6cad326836d38bd3a7ae", "HEAD"),
        ("octocat/1234567", "octocat/1234567", "HEAD"),  # old numeric ids
    ],
)
def test_parse_gist(spec, repo, ref):
    assert parse_spec("gist", spec) == RepoSpec("gist", repo, ref)


@pytest.mark.parametrize(
    "spec, message",
    [
        ("6cad326836d38bd3a7ae", "two or three parts"),
        ("octocat/abc/HEAD/extra", "two or three parts"),
        ("octocat//HEAD", "letters and digits"),
        ("octo cat/abc", "not a GitHub user"),
        ("octocat/ab-c", "letters and digits"),
        ("octocat/abc/develop", "neither HEAD nor a full"),
        ("octocat/abc/0123abc", "neither HEAD nor a full"),
    ],
)
def test_parse_gist_rejects(spec, message):
    with pytest.raises(SpecError) as e:
        parse_spec("gist", spec)
    assert message in str(e.value)


# --- common ----------------------------------------------------------------------------


@pytest.mark.parametrize("provider", ["gh", "gl", "git", "gist"])
@pytest.mark.parametrize("spec", ["", "/", "///"])
def test_empty_specs(provider, spec):
    with pytest.raises(SpecError, match="is empty"):
        parse_spec(provider, spec)


def test_unknown_provider_lists_the_known_ones():
    with pytest.raises(SpecError) as e:
        parse_spec("bitbucket", "a/b/main")
    assert "'bitbucket'" in str(e.value)
    for known in ("gh", "gl", "git", "gist", "zenodo", "ckan", "doi", "swhid", "gitea"):
        assert known in str(e.value)


def test_overlong_spec():
    with pytest.raises(SpecError, match="longer than"):
        parse_spec("gh", "a/b/" + "x" * 5000)


def test_spec_error_is_a_value_error_with_status_400():
    assert issubclass(SpecError, ValueError)
    assert SpecError.status == 400


# --- canonical form ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "provider, spec, canonical",
    [
        ("gh", "a/b.git/main/", "a/b/main"),
        ("gh", "a/b/feature%2Fx", "a/b/feature/x"),
        ("gh", "a/b/für", "a/b/f%C3%BCr"),
        ("gh", "a/b/issue#1", "a/b/issue%231"),
        ("gh", "a/b/100%25", "a/b/100%25"),
        ("gl", "g%2Fs%2Fp.git/feature/x", "g%2Fs%2Fp/feature/x"),
        ("git", "git%40h%3Ar.git/main", "ssh%3A%2F%2Fgit%40h%2Fr.git/main"),
        ("gist", "u/abc", "u/abc/HEAD"),
    ],
)
def test_canonical_spec(provider, spec, canonical):
    rs = parse_spec(provider, spec)
    assert rs.spec == canonical
    assert str(rs) == f"{provider}/{canonical}"


@pytest.mark.parametrize(
    "provider, spec",
    [
        ("gh", "a/b/main"),
        ("gh", "a/b/f%C3%BCr/x+y@z"),
        ("gh", "a/b/it's(1),=!$&"),
        ("gh", "a/b/%25%23"),
        ("gl", "g%2Fs%2Fp/v1.0"),
        ("git", "https%3A%2F%2Fu%3Ap%40h%3A8443%2Fr%3Fx/t%C3%A4g"),
        ("git", "ssh%3A%2F%2Fgit%40h%2Fr/refs/pull/1/head"),
        ("gist", "u/abc/" + SHA),
    ],
)
def test_canonical_spec_round_trips(provider, spec):
    rs = parse_spec(provider, spec)
    assert parse_spec(provider, rs.spec) == rs
    assert format_spec(rs.provider, rs.repo, rs.ref) == rs.spec


def test_repo_spec_is_frozen_and_hashable():
    rs = parse_spec("gh", "a/b/main")
    assert {rs: 1}[parse_spec("gh", "a/b.git/main/")] == 1
    with pytest.raises(dataclasses.FrozenInstanceError):
        rs.ref = "x"


# --- refs, shas ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "ref", ["main", "HEAD", "v1.0.0", "feature/x", "refs/heads/main", "a-b_c", "ü", "@a", "a@b"]
)
def test_valid_refs(ref):
    assert ref_problem(ref) is None


@pytest.mark.parametrize(
    "ref",
    [
        "",
        "a b",
        "a..b",
        "a~",
        "a^",
        "a:",
        "a?",
        "a*",
        "a[",
        "a\\b",
        "a.lock",
        "a/",
        "/a",
        "a//b",
        "a.",
        ".a",
        "a/.b",
        "a@{",
        "@",
        "a\tb",
        "a\x7f",
    ],
)
def test_invalid_refs(ref):
    assert ref_problem(ref)


@pytest.mark.parametrize(
    "value, expected",
    [
        (SHA, True),
        (SHA.upper(), True),
        ("a" * 64, True),
        (SHA[:-1], False),
        ("g" * 40, False),
        ("main", False),
        ("a" * 41, False),
    ],
)
def test_is_sha(value, expected):
    assert is_sha(value) is expected


# --- credentials ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text, expected",
    [
        ("fatal: https://user:pw@host/r", "fatal: https://host/r"),
        ("https://TOKEN@github.com/o/r", "https://github.com/o/r"),
        ("http://x-access-token:ghp_abc@h/r and http://u:p@k/r", "http://h/r and http://k/r"),
        ("ssh://git@host/r", "ssh://git@host/r"),  # a user name alone is no secret
        ("ssh://git:pw@host/r", "ssh://git:***@host/r"),
        ("no url here", "no url here"),
    ],
)
def test_redact_url(text, expected):
    assert redact_url(text) == expected


def test_redact_removes_known_secrets_anywhere():
    url = "https://robot:s3cr%2Ft@host/repo"
    message = "fatal: could not read Password for 'robot': s3cr/t and s3cr%2Ft leaked"
    cleaned = redact(message, url)
    assert "s3cr/t" not in cleaned and "s3cr%2Ft" not in cleaned


# --- credentials in any encoding ---------------------------------------------------------


def _encode(text: str, times: int, encoder=lambda s: quote(s, safe="")) -> str:
    for _ in range(times):
        text = encoder(text)
    return text


@pytest.mark.parametrize(
    "text, expected",
    [
        # the spec as the providers format it: the password "p@ss" is encoded twice
        (
            "git/https%3A%2F%2Fuser%3Ap%2540ss%40host%2Frepo/main",
            "git/https%3A%2F%2Fhost%2Frepo/main",
        ),
        # a whole request path, as the access log writes it
        (
            "/services/binder/build/git/https%3A%2F%2Fuser%3Apw%40host%2Frepo/main?x=1",
            "/services/binder/build/git/https%3A%2F%2Fhost%2Frepo/main?x=1",
        ),
        # encoded twice, three times
        ("https%253A%252F%252Fuser%253Apw%2540host%252Fr", "https%253A%252F%252Fhost%252Fr"),
        (
            "https%25253A%25252F%25252Fuser%25253Apw%252540host%25252Fr",
            "https%25253A%25252F%25252Fhost%25252Fr",
        ),
        # any hex case
        ("https%3a%2f%2fuser%3apw%40host%2fr", "https%3a%2f%2fhost%2fr"),
        ("HTTPS%3A%2f%2FUser%3aPw%40Host%2Fr", "HTTPS%3A%2f%2FHost%2Fr"),
        # quote()'s default leaves "/" raw
        ("https%3A//user%3Apw%40host/r", "https%3A//host/r"),
        # in a query string, next to other parameters, "+" for spaces
        (
            "/api/builds?repo=https%3A%2F%2Fu%3Ap+w%40host%2Fr&ref=main",
            "/api/builds?repo=https%3A%2F%2Fhost%2Fr&ref=main",
        ),
        ("?repo=https%3A%2F%2Fu%3Ap%2520w%40host&ref=x", "?repo=https%3A%2F%2Fhost&ref=x"),
        # a user name or password with "@", ":" or "/" in it, raw URL
        ("https://me%40mail.org:p%2Fw%3A@host/r", "https://host/r"),
        # the same, encoded: the inner "@" is deeper than the delimiter
        ("https%3A%2F%2Fme%2540mail.org%3Ap%252Fw%40host%2Fr", "https%3A%2F%2Fhost%2Fr"),
        # a sloppy raw "@" in a password: everything up to the last "@" goes
        ("https://user:p@ss@host/r", "https://host/r"),
        # http: a token as the user name goes too
        ("https%3A%2F%2Fghp_token%40github.com%2Fo%2Fr", "https%3A%2F%2Fgithub.com%2Fo%2Fr"),
        ("git+https://tok@h/r", "git+https://h/r"),
        # other schemes keep the user and lose the password, in any encoding
        ("ssh%3A%2F%2Fgit%3Apw%40host%2Fr", "ssh%3A%2F%2Fgit%3A***%40host%2Fr"),
        ("ssh%253A%252F%252Fgit%253Apw%2540host", "ssh%253A%252F%252Fgit%253A***%2540host"),
        ("ssh%3A%2F%2Fgit%40host%2Fr", "ssh%3A%2F%2Fgit%40host%2Fr"),
        ("ftp://anon@host/r", "ftp://anon@host/r"),
        # the scheme right after an escape ("%2F" then "https")
        ("x%2Fhttps%3A%2F%2Fu%3Ap%40h", "x%2Fhttps%3A%2F%2Fh"),
        ("x%252Fhttps%253A%252F%252Fu%253Ap%2540h", "x%252Fhttps%253A%252F%252Fh"),
        # a URL inside another one's query
        (
            "https://host/login?next=https%3A%2F%2Fu%3Ap%40h%2Fr",
            "https://host/login?next=https%3A%2F%2Fh%2Fr",
        ),
        # several in one text, in git's messages
        (
            "fatal: unable to access 'https://u:p@h/r/': and 'https%3A%2F%2Fv%3Aq%40k'",
            "fatal: unable to access 'https://h/r/': and 'https%3A%2F%2Fk'",
        ),
        # nothing to remove
        ("https://host/r@v1", "https://host/r@v1"),
        ("https%3A%2F%2Fhost%2Fr%40v1", "https%3A%2F%2Fhost%2Fr%40v1"),
        ("mail me@example.org, see https://host/", "mail me@example.org, see https://host/"),
        ("https://host and bob@example.org", "https://host and bob@example.org"),
        ("", ""),
    ],
)
def test_redact_url_any_encoding(text, expected):
    assert redact_url(text) == expected
    assert redact(text) == expected


def test_url_secrets_gives_every_encoding():
    secrets = url_secrets("https://robot:p%40ss%20w0rd@host/r")
    for form in ["p%40ss%20w0rd", "p@ss w0rd", "p%40ss+w0rd", "p%2540ss%2520w0rd", "robot"]:
        assert form in secrets
    assert secrets == sorted(secrets, key=len, reverse=True)
    # ssh: the user is no secret
    assert url_secrets("ssh://git:hunter22@host/r")[0] == "hunter22"
    assert "git" not in url_secrets("ssh://git:hunter22@host/r")
    assert url_secrets("https://host/r") == []
    # encoded URLs are read too
    assert "hunter22" in url_secrets("https%3A%2F%2Fu%3Ahunter22%40h")


@pytest.mark.parametrize(
    "message",
    [
        "git said: p@ss w0rd",
        "in a path: /build/git/https%3A%2F%2Fhost%2Fr/p%40ss%20w0rd",
        "plus form p%40ss+w0rd, twice p%2540ss%2520w0rd, thrice p%252540ss%252520w0rd",
        "lower hex p%40ss%20w0rd -> p%40ss%20w0rd and mixed p%4Ass",
        "as written: p%40ss%20w0rd",
        "the user robot too",
    ],
)
def test_redact_scrubs_a_known_secret_in_any_encoding(message):
    url = "https://robot:p%40ss%20w0rd@host/r"
    cleaned = redact(message.lower() if "lower" in message else message, url)
    assert "w0rd" not in cleaned and "robot" not in cleaned


def test_redact_keeps_short_secrets_out_of_free_text():
    # a 2-letter password would scrub ordinary words; the URL pass still removes it
    assert redact("pw in a sentence", "https://u:pw@h/r") == "pw in a sentence"
    assert redact("https://u:pw@h/r", "https://u:pw@h/r") == "https://h/r"


def test_git_error_messages_hide_encoded_credentials():
    for spec in [
        "https%3A%2F%2Fuser%3Ahunter22%40h/ma..in",
        "https%253A%252F%252Fuser%253Ahunter22%2540h/main",  # not a URL once decoded
        "https%3A%2F%2Fuser%3Ahunter22%40/main",  # no host
        "https%3A%2F%2Fh%2Fr/https:%2F%2Fuser:hunter22@h",  # a URL as the ref
        "https%3A%2F%2Fh%2Fr/https%3A%2F%2Fuser%3Ahunter22%40h",
    ]:
        with pytest.raises(SpecError) as e:
            parse_spec("git", spec)
        assert "hunter22" not in str(e.value)


def test_parse_spec_keeps_credentials_for_the_providers():
    rs = parse_spec("git", "https%3A%2F%2Fuser%3Ap%2540ss%40host%2Frepo/main")
    assert rs.repo == "https://user:p%40ss@host/repo"  # git ls-remote needs them
    assert parse_spec("git", rs.spec) == rs
    assert redact(rs.spec) == "https%3A%2F%2Fhost%2Frepo/main"
    assert redact(str(rs)) == "git/https%3A%2F%2Fhost%2Frepo/main"
    assert normalize_git_url("https://tok@host/r") == "https://tok@host/r"
    assert normalize_git_url("ssh://git:pw@host/r") == "ssh://git:pw@host/r"
    assert normalize_git_url("git@host:r.git") == "ssh://git@host/r.git"


@pytest.mark.parametrize(
    "url",
    [
        "https://user:zq%0Axq@host/r",  # a newline would add a line to the helper input
        "https://user:zq%0D%0Ahost=evil@host/r",
        "https://zq%00xq:pw@host/r",
        "https://user:zq%7Fxq@host/r",
        "https://user:zq%C2%85xq@host/r",  # NEL, a C1 control
        "ssh://zq%0Axq@host/r",  # ssh keeps the user: no control characters there either
    ],
)
def test_credentials_with_control_characters_are_refused(url):
    with pytest.raises(SpecError, match="control character") as e:
        split_credentials(url)
    if url.startswith("http"):  # an ssh user name is no secret, and is shown
        assert "zq" not in str(e.value)
    with pytest.raises(SpecError):
        parse_spec("git", quote(url, safe="") + "/main")


def test_split_credentials():
    assert split_credentials("https://u:p%40ss@host:8443/r.git") == (
        "https://host:8443/r.git",
        "protocol=https\nhost=host:8443\nusername=u\npassword=p@ss\n",
    )
    # a token alone, as a user name
    assert split_credentials("https://ghp_tok@github.com/o/r") == (
        "https://github.com/o/r",
        "protocol=https\nhost=github.com\nusername=ghp_tok\n",
    )
    assert split_credentials("HTTP://:tok@h/r") == (
        "HTTP://h/r",
        "protocol=http\nhost=h\npassword=tok\n",
    )
    assert split_credentials("https://h/r@v1") == ("https://h/r@v1", "")
    assert split_credentials("https://h/r") == ("https://h/r", "")
    # ssh: the user names the key and stays; a password has nowhere to go
    assert split_credentials("ssh://git@host/r") == ("ssh://git@host/r", "")
    assert split_credentials("ssh://git:pw@host/r") == ("ssh://git@host/r", "")
    assert split_credentials("ssh://:pw@host/r") == ("ssh://host/r", "")
    assert split_credentials(normalize_git_url("git@host:r.git")) == ("ssh://git@host/r.git", "")
    assert split_credentials("git@host:r.git") == ("git@host:r.git", "")


@pytest.mark.parametrize(
    "url, message",
    [
        ("https://u:p@ss@host/r", "raw '@'"),
        ("https://u:p?x@host/r", "raw '@', '?'"),
        ("https://u:p%FFss@host/r", "not UTF-8"),
    ],
)
def test_split_credentials_refuses_ambiguous_credentials(url, message):
    with pytest.raises(SpecError, match=re.escape(message)) as e:
        split_credentials(url)
    assert "p@ss" not in str(e.value) and "p?x" not in str(e.value) and "%FF" not in str(e.value)


# --- property tests (hypothesis) -------------------------------------------------------------

ENCODERS = {
    "quote": lambda s: quote(s, safe=""),
    "quote-slash": lambda s: quote(s, safe="/"),  # urllib's default
    "quote_plus": lambda s: quote_plus(s, safe=""),
    "encodeURIComponent": lambda s: quote(s, safe="!~*'()"),
    "lower-hex": lambda s: re.sub(r"%[0-9A-F]{2}", lambda m: m.group().lower(), quote(s, safe="")),
}
CONTEXTS = [
    ("", ""),
    ("/services/binder/build/git/", "/main?x=1"),
    ("/api/builds?repo=", "&ref=main"),
    ("fatal: unable to access '", "/': The requested URL returned error: 403"),
    ("x%2F", " and more"),
    ("see ", ""),
]

if given is not None:
    credential_text = st.text(st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=12)
    hosts = st.from_regex(r"[a-z][a-z0-9.-]{0,15}(:[0-9]{1,5})?", fullmatch=True)

    @settings(max_examples=400, deadline=None)
    @given(
        scheme=st.sampled_from(["https", "http", "HTTPS", "git+https"]),
        user=credential_text,
        password=st.none() | credential_text,
        host=hosts,
        path=st.from_regex(r"[a-z0-9/._@-]{0,12}", fullmatch=True),
        times=st.integers(0, 3),
        encoder=st.sampled_from(sorted(ENCODERS)),
        context=st.sampled_from(CONTEXTS),
    )
    @example("https", "user", "p@ss", "host", "repo", 1, "quote", CONTEXTS[1])
    @example("https", "u s+er", "p%2Fw", "host", "r", 2, "quote_plus", CONTEXTS[2])
    def test_property_http_credentials_vanish_in_any_encoding(
        scheme, user, password, host, path, times, encoder, context
    ):
        userinfo = quote(user, safe="") + (
            "" if password is None else ":" + quote(password, safe="")
        )
        url = f"{scheme}://{userinfo}@{host}/{path}"
        clean = f"{scheme}://{host}/{path}"
        encode = ENCODERS[encoder]
        before, after = context
        text = before + _encode(url, times, encode) + after
        assert redact(text) == before + _encode(clean, times, encode) + after
        # knowing the URL changes nothing, unless a secret is also an ordinary word here
        expected = before + _encode(clean, times, encode) + after
        if not any(form.lower() in expected.lower() for form in url_secrets(url)):
            assert redact(text, url) == expected

    @settings(max_examples=300, deadline=None)
    @given(
        scheme=st.sampled_from(["ssh", "git", "ftp", "git+ssh"]),
        user=credential_text,
        password=credential_text,
        host=hosts,
        times=st.integers(0, 3),
        encoder=st.sampled_from(sorted(ENCODERS)),
        context=st.sampled_from(CONTEXTS),
    )
    def test_property_other_schemes_keep_the_user_only(
        scheme, user, password, host, times, encoder, context
    ):
        encode = ENCODERS[encoder]
        before, after = context
        head = _encode(f"{scheme}://{quote(user, safe='')}:", times, encode)
        tail = _encode(f"@{host}/repo", times, encode)
        secret = _encode(quote(password, safe=""), times, encode)
        assert redact(before + head + secret + tail + after) == before + head + "***" + tail + after

    @settings(max_examples=300, deadline=None)
    @given(
        password=st.text(st.characters(blacklist_categories=("Cs",)), min_size=6, max_size=16),
        times=st.integers(0, 3),
        encoder=st.sampled_from(sorted(ENCODERS)),
    )
    def test_property_known_secrets_vanish_from_free_text(password, times, encoder):
        assume(password.strip() == password and "***" not in password)
        url = f"https://robot:{quote(password, safe='')}@host/r"
        form = _encode(password, times, ENCODERS[encoder])
        cleaned = redact(f"git said: {form} (end)", url)
        assert cleaned == "git said: *** (end)", form

    @settings(max_examples=300, deadline=None)
    @given(user=credential_text, password=credential_text, host=hosts)
    def test_property_split_credentials_is_safe_helper_input(user, password, host):
        url = f"https://{quote(user, safe='')}:{quote(password, safe='')}@{host}/r"
        try:
            clean, helper = split_credentials(url)
        except SpecError as e:
            assert any(ord(c) < 0x20 or 0x7F <= ord(c) <= 0x9F for c in user + password)
            assert "control character" in str(e)
            return
        assert clean == f"https://{host}/r"
        lines = helper.splitlines()
        assert lines == [
            "protocol=https",
            f"host={host}",
            f"username={user}",
            f"password={password}",
        ]
        assert unquote(clean) == clean or "%" in host
else:

    def test_property_tests_need_hypothesis():
        # hypothesis is in the test extra: its absence is a broken install, not a skip
        pytest.fail("hypothesis is not installed: pip install -e '.[test]'")


# --- the data providers and Gitea: BinderHub's spec strings -----------------------------
#
# From BinderHub's tests (binderhub/tests/test_repoproviders.py, static/js/App.test.jsx)
# and docs (docs/source/developer/repoproviders.rst): each parses to the repository
# BinderHub reads, and hands repo2docker what BinderHub's get_repo_url() gives.

CKAN_ACTIVITY = (
    "https://data.depositar.io/dataset/binder-example-sea-turtle-sightings-in-taiwan/"
    "?activity_id=93df7fd0-0edc-4ebf-bac7-fbf5f78de90b"
)
CKAN_HISTORY = (
    "https://data.depositar.io/dataset/binder-example-sea-turtle-sightings-in-taiwan/"
    "history/93df7fd0-0edc-4ebf-bac7-fbf5f78de90b"
)


@pytest.mark.parametrize(
    "provider, spec, repo, repo2docker_gets",
    [
        ("zenodo", "10.5281/zenodo.3242074", "10.5281/zenodo.3242074", "10.5281/zenodo.3242074"),
        ("zenodo", "10.5281/zenodo.3242073", "10.5281/zenodo.3242073", "10.5281/zenodo.3242073"),
        ("zenodo", "10.5281/zenodo.3242074/", "10.5281/zenodo.3242074", "10.5281/zenodo.3242074"),
        ("zenodo", "10.5282/zenodo.3242075", "10.5282/zenodo.3242075", "10.5282/zenodo.3242075"),
        (
            "figshare",
            "10.6084/m9.figshare.9782777.v1",
            "10.6084/m9.figshare.9782777.v1",
            "10.6084/m9.figshare.9782777.v1",
        ),
        (
            "figshare",
            "10.6084/m9.figshare.9782777",
            "10.6084/m9.figshare.9782777",
            "10.6084/m9.figshare.9782777",
        ),
        (
            "hydroshare",
            "https://www.hydroshare.org/resource/142c59757ed54de1816777828c9716e7",
            "142c59757ed54de1816777828c9716e7",
            "https://www.hydroshare.org/resource/142c59757ed54de1816777828c9716e7",
        ),
        (
            "hydroshare",
            quote("https://www.hydroshare.org/resource/142c59757ed54de1816777828c9716e7", safe=""),
            "142c59757ed54de1816777828c9716e7",
            "https://www.hydroshare.org/resource/142c59757ed54de1816777828c9716e7",
        ),
        (
            "hydroshare",
            "10.4211/hs.b8f6eae9d89241cf8b5904033460af61",
            "b8f6eae9d89241cf8b5904033460af61",
            "https://www.hydroshare.org/resource/b8f6eae9d89241cf8b5904033460af61",
        ),
        (
            "hydroshare",
            "8f7c2f0341ef4180b0dbe97f59130756",
            "8f7c2f0341ef4180b0dbe97f59130756",
            "https://www.hydroshare.org/resource/8f7c2f0341ef4180b0dbe97f59130756",
        ),
        ("dataverse", "10.7910/DVN/TJCLKP", "10.7910/DVN/TJCLKP", "10.7910/DVN/TJCLKP"),
        (
            "ckan",
            quote("https://demo.ckan.org/dataset/my-sample-dataset-001", safe=""),
            "https://demo.ckan.org/dataset/my-sample-dataset-001",
            "https://demo.ckan.org/dataset/my-sample-dataset-001",
        ),
        ("ckan", quote(CKAN_ACTIVITY, safe=""), CKAN_ACTIVITY, CKAN_ACTIVITY),
        ("ckan", quote(CKAN_HISTORY, safe=""), CKAN_HISTORY, CKAN_HISTORY),
        # BinderHub unescapes the whole spec: a URL escaped in part works too
        (
            "ckan",
            "https%3A%2F%2Fdemo.ckan.org/dataset/my-sample-dataset-001",
            "https://demo.ckan.org/dataset/my-sample-dataset-001",
            "https://demo.ckan.org/dataset/my-sample-dataset-001",
        ),
    ],
)
def test_binderhub_data_specs(provider, spec, repo, repo2docker_gets):
    from r2dservice.providers import Resolver

    rs = parse_spec(provider, spec)
    assert (rs.provider, rs.repo, rs.ref) == (provider, repo, "")
    assert parse_spec(provider, rs.spec) == rs
    assert Resolver().provider(provider).repo_url(rs) == repo2docker_gets


@pytest.mark.parametrize(
    "provider, spec, repo",
    [
        ("zenodo", "doi:10.5281/zenodo.3242074", "10.5281/zenodo.3242074"),
        ("zenodo", "https%3A%2F%2Fdoi.org%2F10.5281%2Fzenodo.3242074", "10.5281/zenodo.3242074"),
        ("doi", "https://doi.org/10.7910/DVN/TJCLKP", "10.7910/DVN/TJCLKP"),
        ("swhid", "swh:1:rev:" + SHA.lower(), "swh:1:rev:" + SHA.lower()),
        ("swhid", "swh:1:dir:" + "0" * 40 + ";origin=https://github.com/a/b", None),
        ("ckan", "https:/demo.ckan.org/dataset/x", "https://demo.ckan.org/dataset/x"),
        ("gitea", "Forgejo/forgejo.git/v1.0", "Forgejo/forgejo"),
    ],
)
def test_data_specs_read_their_variants(provider, spec, repo):
    rs = parse_spec(provider, spec)
    assert rs.repo == (repo or unquote(spec))
    assert parse_spec(provider, rs.spec) == rs


@pytest.mark.parametrize(
    "provider, spec, message",
    [
        ("zenodo", "zenodo.3242074", "not a DOI"),
        ("dataverse", "11.7910/DVN/TJCLKP", "not a DOI"),
        ("figshare", "10.6084/a b", "whitespace"),
        ("hydroshare", "not-an-id", "no 32-digit resource id"),
        ("hydroshare", "0" * 32 + "/" + "1" * 32, "more than one"),
        ("ckan", quote("https://demo.ckan.org/group/roger", safe=""), "not a dataset's page"),
        ("ckan", quote("ftp://demo.ckan.org/dataset/x", safe=""), "http(s) URL"),
        ("ckan", quote("https://u:p@demo.ckan.org/dataset/x", safe=""), "credentials"),
        ("swhid", "swh:1:cnt:" + "0" * 40, "directory or revision"),
        ("swhid", "swh:2:dir:" + "0" * 40, "directory or revision"),
        ("gitea", "forgejo/forgejo", "the ref is missing"),
        ("gitea", "-x/y/main", "not a user or organization"),
    ],
)
def test_data_specs_reject(provider, spec, message):
    with pytest.raises(SpecError, match=re.escape(message)):
        parse_spec(provider, spec)
