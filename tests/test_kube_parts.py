"""The pure parts behind the Kubernetes builder, without an API server: what a pod's
state means (podoutcome), which pods the reaper deletes (reaper), which pods a restarted
service adopts (adoption), which build Secrets are orphans (buildsecrets). The builder
itself, against the stand-in API server, is tested in test_kubernetes_builder.py."""

from __future__ import annotations

import datetime
from types import SimpleNamespace

import pytest

from r2dservice import naming
from r2dservice.builders.adoption import adoptable
from r2dservice.builders.base import BuildRequest
from r2dservice.builders.buildsecrets import orphaned_secrets
from r2dservice.builders.kubernetes import build_pod_config
from r2dservice.builders.objects import ANNOTATION_PREFIX, make_build_pod, to_dict
from r2dservice.builders.podoutcome import (
    duration,
    failure,
    is_failed,
    state_message,
    succeeded,
)
from r2dservice.builders.reaper import ORPHAN, TOO_OLD, pods_to_reap

NOW = 1_800_000_000.0
RUNNING = {"running": {"startedAt": "2027-01-15T08:00:00Z"}}


def iso(t: float) -> str:
    return datetime.datetime.fromtimestamp(t, datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def request(repo: str = "owner/repo") -> BuildRequest:
    image = naming.image_name("registry.example/r2d-", "gh", repo, "a" * 40, "f1")
    return BuildRequest(
        name=naming.build_name(image),
        image_name=image,
        repo_url=f"https://github.com/{repo}",
        ref="a" * 40,
        provider="gh",
        spec=f"{repo}/main",
        push=True,
    )


def pod(repo="owner/repo", *, created=NOW - 60, state=None, phase=None, **status) -> dict:
    """A build pod as the watch holds it, with the build container in `state`."""
    d = to_dict(make_build_pod(request(repo), build_pod_config()))
    d["metadata"]["creationTimestamp"] = iso(created)
    d["metadata"]["uid"] = "uid-" + repo
    d["status"] = dict(status)
    if phase:
        d["status"]["phase"] = phase
    if state is not None:
        d["status"]["containerStatuses"] = [{"name": "builder", "state": state}]
    return d


def ended(code: int, *, at: float = NOW - 10, reason: str = "", **kw) -> dict:
    term = {"exitCode": code, "finishedAt": iso(at)}
    if reason:
        term["reason"] = reason
    return pod(state={"terminated": term}, phase="Succeeded" if code == 0 else "Failed", **kw)


# --- podoutcome ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "seconds, words",
    [(1, "1 second"), (90, "90 seconds"), (60, "1 minute"), (300, "5 minutes"), (7200, "2 hours")],
)
def test_duration(seconds, words):
    assert duration(seconds) == words


def test_success_only_on_exit_code_zero():
    assert succeeded(ended(0)) and failure(ended(0), False, build_timeout=60) is None
    assert not succeeded(ended(1)) and is_failed(ended(1))
    assert not is_failed(pod(state=RUNNING))
    assert "Error (exit code 2)" in failure(ended(2), False, build_timeout=60)


def test_failure_says_why():
    assert "was deleted before the build finished" in failure(ended(1), True, build_timeout=60)
    late = ended(1)
    late["status"]["reason"] = "DeadlineExceeded"
    assert failure(late, False, build_timeout=3600) == (
        "The build took longer than 1 hour, the limit for one build.\n"
    )
    assert "OOMKilled" in failure(ended(137, reason="OOMKilled"), False, build_timeout=60)
    # repo2docker's own account comes first; else the last log line helps
    assert failure(ended(1), False, build_timeout=60, error="Error: no such ref\n") == (
        "Error: no such ref\n"
    )
    assert failure(ended(1), False, build_timeout=60, last_line="fatal: x\n").endswith(
        "; last log line: fatal: x\n"
    )


def test_state_messages():
    assert state_message(pod(state=RUNNING), "", 300) == "Build pod started"
    waiting = pod(state={"waiting": {"reason": "ContainerCreating"}})
    assert state_message(waiting, "", 300) == "Build pod: ContainerCreating"
    assert state_message(pod(), "", 300) == ""
    assert state_message(waiting, "ImagePullBackOff: nope", 300) == (
        "Build pod cannot start: ImagePullBackOff: nope (the build fails if this lasts 5 minutes)"
    )


# --- reaper -------------------------------------------------------------------------


def test_pods_to_reap():
    pods = {
        "old": pod("a/old", created=NOW - 7 * 3600, state=RUNNING),
        "orphan": ended(0, at=NOW - 600),
        "followed": ended(0, at=NOW - 600),
        "just-ended": ended(0, at=NOW - 10),
        "running": pod("a/run", state=RUNNING),
        "going": ended(0, at=NOW - 600),
    }
    pods["going"]["metadata"]["deletionTimestamp"] = iso(NOW)
    doomed = pods_to_reap(pods, {"followed"}, NOW, max_age=6 * 3600, orphan_grace=300)
    assert sorted(doomed) == [("old", TOO_OLD), ("orphan", ORPHAN)]
    # max_age 0: no age limit
    assert pods_to_reap(pods, {"followed"}, NOW, max_age=0, orphan_grace=300) == [
        ("orphan", ORPHAN)
    ]


# --- adoption -----------------------------------------------------------------------


def test_adopts_running_and_pending_build_pods_only():
    running, pending = pod("a/run", state=RUNNING), pod("a/pending")
    going = pod("a/going", state=RUNNING)
    going["metadata"]["deletionTimestamp"] = iso(NOW)
    foreign = pod("a/foreign", state=RUNNING)
    foreign["metadata"]["annotations"] = {}
    adopted = adoptable([running, pending, ended(0), ended(1), going, foreign])
    assert [r.repo_url for r in adopted] == [
        "https://github.com/a/run",
        "https://github.com/a/pending",
    ]


# --- buildsecrets -------------------------------------------------------------------


def secret(name: str, build: str, age: float, deleting: bool = False):
    """What list_namespaced_secret returns (kubernetes_asyncio models), reduced."""
    created = datetime.datetime.fromtimestamp(NOW - age, datetime.timezone.utc)
    return SimpleNamespace(
        metadata=SimpleNamespace(
            name=name,
            annotations={ANNOTATION_PREFIX + "build": build},
            creation_timestamp=created,
            deletion_timestamp=created if deleting else None,
        )
    )


def test_orphaned_secrets():
    secrets = [
        secret("s-orphan", "gone", 600),
        secret("s-young", "gone-too", 10),
        secret("s-used", "running", 600),
        secret("s-going", "gone", 600, deleting=True),
    ]
    assert orphaned_secrets(secrets, {"running"}.__contains__, NOW, 300) == ["s-orphan"]
