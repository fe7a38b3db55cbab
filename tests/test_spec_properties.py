"""Hypothesis over spec parsing and image naming (issue 12's fuzzing; redaction's
properties are in test_spec.py): whatever a URL brings, parsing answers with a
parsed spec or a SpecError a person can read, never another exception; a canonical
spec reads back to itself; every repository gets a valid, stable image name of its
own, and every build a valid pod name."""

import re

from hypothesis import example, given, settings
from hypothesis import strategies as st

from r2dservice import naming
from r2dservice.spec import ALL_PROVIDERS, EXAMPLES, SpecError, parse_spec

# What reaches parse_spec from a URL path: any text, often made of a spec's own parts.
spec_parts = st.sampled_from(["/", "%2F", "%", "%25", ".", "..", ":", "@", "~", "^", " ", "\\"])
spec_text = st.one_of(
    st.text(max_size=80),
    st.lists(st.one_of(spec_parts, st.text("abcXYZ019-_.", max_size=6)), max_size=14).map("".join),
    st.sampled_from(sorted(EXAMPLES.values())).map(lambda s: s.partition("/")[2]),
)
DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")


@settings(max_examples=1500, deadline=None)
@given(provider=st.sampled_from(ALL_PROVIDERS), spec=spec_text)
@example("gh", "a/b/%")
@example("git", "https%3A%2F%2Fu%3Ap%40h%2Fr/%ff")
def test_parsing_any_text_gives_a_spec_or_a_spec_error(provider, spec):
    try:
        parsed = parse_spec(provider, spec)
    except SpecError as e:
        assert str(e).strip(), "a SpecError without a message"
        return
    # The canonical form is a fixed point: the spec a link is rewritten to reads back.
    again = parse_spec(provider, parsed.spec)
    assert (again.provider, again.repo, again.ref) == (parsed.provider, parsed.repo, parsed.ref)
    assert parse_spec(provider, again.spec).spec == again.spec


names = st.text(min_size=1, max_size=120)
refs = st.one_of(st.text(max_size=60), st.from_regex(r"[0-9a-f]{40}", fullmatch=True))
prefixes = st.sampled_from(["", "127.0.0.1:5000/r2d-", "registry.example.org/team/", "user/r2d-"])


@settings(max_examples=1500, deadline=None)
@given(
    prefix=prefixes,
    provider=st.sampled_from(ALL_PROVIDERS),
    repo=names,
    ref=refs,
    fingerprint=st.text("0123456789abcdef", max_size=16),
    credentialed=st.booleans(),
)
def test_every_repository_gets_a_valid_stable_image_and_pod_name(
    prefix, provider, repo, ref, fingerprint, credentialed
):
    name = naming.image_name(prefix, provider, repo, ref, fingerprint, credentialed)
    naming.validate_image_name(name)  # what docker and the registry accept
    assert name == naming.image_name(prefix, provider, repo, ref, fingerprint, credentialed)
    assert name.startswith(prefix)
    pod = naming.build_name(name)
    assert len(pod) <= 63 and DNS_LABEL.match(pod), pod  # a Kubernetes object name


@settings(max_examples=1500, deadline=None)
@given(provider=st.sampled_from(ALL_PROVIDERS), a=names, b=names, credentialed=st.booleans())
@example("gh", "a/b-c", "a-b/c", False)
@example("gh", "Owner/Repo", "owner/repo", False)
def test_different_repositories_never_share_an_image(provider, a, b, credentialed):
    """The readable part of a name loses case, punctuation and length; the names of
    two repositories still differ (and a credentialed build's from an open one's)."""
    slug = naming.repo_slug
    if a != b:
        assert slug(provider, a, credentialed=credentialed) != slug(
            provider, b, credentialed=credentialed
        )
    assert slug(provider, a, credentialed=True) != slug(provider, a, credentialed=False)
