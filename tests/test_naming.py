import re

import pytest

from r2dservice.naming import (
    NamingError,
    build_name,
    image_name,
    repo_slug,
    split_image_name,
    validate_image_name,
)

SHA = "0123456789abcdef0123456789abcdef01234567"
DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")


@pytest.mark.parametrize(
    "prefix",
    ["", "r2d-", "127.0.0.1:5000/r2d-", "registry.example.org/binder/", "localhost:5000/a/b-"],
)
@pytest.mark.parametrize(
    "provider, repo",
    [
        ("gh", "Owner/Repo"),
        ("gl", "group/sub/PROJECT.name"),
        ("git", "https://example.com/some/repo.git"),
        ("gist", "someone/abcdef0123"),
        ("gh", "x" * 300),
        ("gh", "ünïcødé/répo"),
        ("gh", "---/___"),
    ],
)
def test_image_names_are_valid_references(prefix, provider, repo):
    name = image_name(prefix, provider, repo, SHA)
    validate_image_name(name)
    assert name.startswith(prefix)
    assert name.endswith(":" + SHA)
    assert len(name.rsplit(":", 1)[0]) <= 255
    label = build_name(name)
    assert DNS_LABEL.match(label) and len(label) <= 63


def test_deterministic_and_distinct():
    a = image_name("p/", "gh", "a/b-c", SHA)
    assert a == image_name("p/", "gh", "a/b-c", SHA)
    assert a != image_name("p/", "gh", "a-b/c", SHA)  # same readable slug, other repo
    assert a != image_name("p/", "gh", "A/b-c", SHA)  # case matters on GitHub? keep distinct
    assert a != image_name("p/", "gl", "a/b-c", SHA)
    assert a != image_name("p/", "gh", "a/b-c", "f" * 40)
    assert build_name(a) == build_name(a)
    assert build_name(a) != build_name(image_name("p/", "gh", "a/b-c", "f" * 40))


def test_fingerprint_changes_tag():
    plain = image_name("", "gh", "a/b", SHA)
    fp = image_name("", "gh", "a/b", SHA, "abcdef1234567890")
    assert plain != fp and fp.endswith(f"{SHA}-abcdef123456")


def test_bad_prefix_is_a_clear_error():
    with pytest.raises(NamingError, match="image_prefix"):
        image_name("UPPER/", "gh", "a/b", SHA)


@pytest.mark.parametrize(
    "ref, expected",
    [
        ("127.0.0.1:5000/a/b:t", ("127.0.0.1:5000", "a/b", "t")),
        ("localhost/a:t", ("localhost", "a", "t")),
        ("registry.example.org/a/b", ("registry.example.org", "a/b", "latest")),
        ("user/repo:tag", ("", "user/repo", "tag")),
        ("repo", ("", "repo", "latest")),
    ],
)
def test_split_image_name(ref, expected):
    assert split_image_name(ref) == expected


def test_repo_slug_limit():
    assert len(repo_slug("gh", "x" * 500)) <= 60
