"""r2dservice.spec: parsing and validating "<provider>/<spec>" strings."""

import dataclasses

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
    split_spec,
)

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
        ("HTTPS%3A%2F%2Fh%2Fr/main", "HTTPS://h/r", "main"),
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
        parse_spec("zenodo", "10.5281/zenodo.1")
    assert "'zenodo'" in str(e.value)
    for known in ("gh", "gl", "git", "gist"):
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
