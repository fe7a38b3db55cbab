"""Image names and build names from a resolved repository. Pure: no I/O."""

from __future__ import annotations

import hashlib
import re

# Docker's reference grammar (distribution/reference), enough to validate what we make.
_HOST = r"(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?(?:\.[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)*|\[[0-9a-fA-F:]+\])(?::[0-9]+)?"
_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_NAME = rf"(?:{_HOST}/)?{_COMPONENT}(?:/{_COMPONENT})*"
_TAG = r"[\w][\w.-]{0,127}"
REFERENCE_RE = re.compile(rf"^(?P<name>{_NAME})(?::(?P<tag>{_TAG}))?$")


class NamingError(ValueError):
    pass


def _digest(*parts: str, length: int = 8) -> str:
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()[:length]


def _slugify(text: str, limit: int) -> str:
    """Lowercase alphanumerics joined by single dashes, at most `limit` long."""
    slug = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")
    return slug[:limit].strip("-")


def repo_slug(provider: str, repo: str, limit: int = 60, credentialed: bool = False) -> str:
    """A readable, collision-free name for a repository.

    The readable part loses information (case, punctuation, truncation), so a hash of
    the exact (provider, repo) pair keeps "a/b-c" and "a-b/c" apart. `credentialed`
    (built with credentials from the spec) gives another hash: another repository name.
    """
    readable = _slugify(f"{provider}-{repo}", max(1, limit - 9)) or "repo"
    parts = (provider, repo, "credentialed") if credentialed else (provider, repo)
    return f"{readable}-{_digest(*parts)}"


def image_name(
    prefix: str,
    provider: str,
    repo: str,
    resolved_ref: str,
    fingerprint: str = "",
    credentialed: bool = False,
) -> str:
    """The image reference for a repository at a commit.

    `fingerprint` names anything in the build configuration that changes the image
    (builder image, repo2docker arguments): a change of configuration is a new tag.
    `credentialed`: built with credentials the spec carried; such images are apart from
    the ones built without, so that only callers whose credentials worked find them.
    """
    tag = re.sub(r"[^\w.-]", "-", resolved_ref).lstrip(".-")[:100] or "latest"
    if fingerprint:
        tag = f"{tag}-{fingerprint[:12]}"
    name = f"{prefix}{repo_slug(provider, repo, credentialed=credentialed)}:{tag}"
    validate_image_name(name)
    return name


_PATH_RE = re.compile(rf"^{_COMPONENT}(?:/{_COMPONENT})*$")


def validate_image_name(name: str) -> None:
    m = REFERENCE_RE.match(name)
    # A first component is a host only with a '.' or ':' or as "localhost" (Docker's
    # rule); otherwise it is part of the path and must be lowercase like the rest.
    if not m or len(m.group("name")) > 255 or not _PATH_RE.match(split_image_name(name)[1]):
        raise NamingError(
            f"{name!r} is not a valid image reference; check c.R2DService.image_prefix "
            "(lowercase letters, digits and . _ - separators, optionally after 'host:port/')"
        )


def split_image_name(name: str) -> tuple[str, str, str]:
    """'host:5000/a/b:tag' -> ('host:5000', 'a/b', 'tag'); host is '' for none."""
    m = REFERENCE_RE.match(name)
    if not m:
        raise NamingError(f"{name!r} is not a valid image reference")
    repo, tag = m.group("name"), m.group("tag") or "latest"
    first, _, rest = repo.partition("/")
    if rest and ("." in first or ":" in first or first == "localhost"):
        return first, rest, tag
    return "", repo, tag


def build_name(image: str) -> str:
    """A deterministic DNS-1123 label (<= 63 chars) for the build of `image`.

    The same image always gives the same name, so a second replica or a restarted
    service that tries to create the same build pod finds it (409) and joins it.
    """
    _host, repo, tag = split_image_name(image)
    readable = _slugify(repo.rsplit("/", 1)[-1], 40) or "build"
    return f"build-{readable}-{_digest(image, length=12)}"[:63]


def config_fingerprint(*parts: object) -> str:
    """A short stable digest of build-affecting configuration."""
    return _digest(*(repr(p) for p in parts), length=12)
