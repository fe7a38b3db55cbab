"""The chart on a real z2jh cluster: what a pod needs is where the pod is (Secrets in the
build namespace), keyed as the tools that read it look it up, and what must survive an
upgrade does so without `lookup` (GitOps renders without a cluster)."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest
import yaml

from tests.support.service import REPO
from tests.test_chart import CHART, NAMESPACE, RELEASE, find, helm, run_helm, secret_data

__all__ = ["helm"]  # the session fixture, shared with test_chart


def template(helm: str, tmp_path, values: dict, *args: str) -> list[dict]:
    proc = run_helm(
        helm,
        "template",
        RELEASE,
        CHART,
        "--namespace",
        NAMESPACE,
        *args,
        values=values,
        tmp_path=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    return [d for d in yaml.safe_load_all(proc.stdout) if d]


def registry_secrets(docs: list[dict]) -> list[dict]:
    return [
        d for d in docs if d["kind"] == "Secret" and d["metadata"]["name"] == f"{RELEASE}-registry"
    ]


def test_registry_secret_is_in_the_build_namespace_too(helm, tmp_path):
    """binderhub#810: a pod mounts Secrets of its own namespace only."""
    docs = template(
        helm,
        tmp_path,
        {
            "imagePrefix": "registry.example/r2d-",
            "registry": {"username": "u", "password": "p"},
            "build": {"namespace": "binder-builds"},
        },
    )
    secrets = registry_secrets(docs)
    assert sorted(s["metadata"]["namespace"] for s in secrets) == [NAMESPACE, "binder-builds"]
    assert secrets[0]["data"] == secrets[1]["data"]
    # the Role the builder uses is in that namespace, and the service mounts the one in its own
    assert find(docs, "Role")["metadata"]["namespace"] == "binder-builds"


def test_registry_secret_once_when_builds_run_in_the_release_namespace(helm, tmp_path):
    docs = template(
        helm,
        tmp_path,
        {"imagePrefix": "registry.example/r2d-", "registry": {"username": "u", "password": "p"}},
    )
    [secret] = registry_secrets(docs)
    assert secret["metadata"]["namespace"] == NAMESPACE


@pytest.mark.parametrize(
    "prefix, url",
    [
        ("myorg/r2d-", ""),
        ("docker.io/myorg/r2d-", ""),
        ("index.docker.io/myorg/r2d-", ""),
        ("registry-1.docker.io/myorg/r2d-", ""),
        ("myorg/r2d-", "docker.io"),
        ("myorg/r2d-", "https://index.docker.io/v1/"),
    ],
)
def test_docker_hub_is_keyed_as_docker_looks_it_up(helm, tmp_path, prefix, url):
    """The docker CLI and buildx look Docker Hub's credentials up under
    https://index.docker.io/v1/ only; an entry under "docker.io" is never used."""
    docs = template(
        helm,
        tmp_path,
        {"imagePrefix": prefix, "registry": {"url": url, "username": "u", "password": "p"}},
    )
    [secret] = registry_secrets(docs)
    config = json.loads(secret_data(secret)[".dockerconfigjson"])
    assert list(config["auths"]) == ["https://index.docker.io/v1/"]
    assert (
        config["auths"]["https://index.docker.io/v1/"]["auth"] == base64.b64encode(b"u:p").decode()
    )


def test_docker_hub_key_is_what_the_service_reads(helm, tmp_path):
    """The same key serves the service's own existence check (registry.py)."""
    from r2dservice.registry import credentials_for

    docs = template(
        helm,
        tmp_path,
        {"imagePrefix": "docker.io/myorg/r2d-", "registry": {"username": "u", "password": "p"}},
    )
    [secret] = registry_secrets(docs)
    config = json.loads(secret_data(secret)[".dockerconfigjson"])
    assert credentials_for(config, "docker.io") == ("u", "p")


def test_renders_are_the_same_every_time(helm, tmp_path):
    """No generated secret and no `lookup`: `helm template` in a GitOps tool, without a
    cluster, gives what `helm upgrade` applies, so nothing rotates on a sync."""
    values = {"imagePrefix": "registry.example/r2d-"}
    first = template(helm, tmp_path, values)
    assert template(helm, tmp_path, values) == first
    for path in Path(CHART, "templates").iterdir():
        assert "lookup " not in path.read_text(), path


def test_database_url_from_an_existing_secret(helm, tmp_path):
    docs = template(
        helm,
        tmp_path,
        {"replicas": 2, "db": {"existingSecret": {"name": "pg", "key": "url"}}},
    )
    assert not [d for d in docs if d["kind"] == "PersistentVolumeClaim"]
    deployment = find(docs, "Deployment")
    assert "strategy" not in deployment["spec"]
    (c,) = deployment["spec"]["template"]["spec"]["containers"]
    env = {e["name"]: e for e in c["env"]}
    assert env["R2DSERVICE_DB_URL"]["valueFrom"] == {"secretKeyRef": {"name": "pg", "key": "url"}}


def test_database_volume_can_be_an_empty_dir(helm, tmp_path):
    docs = template(helm, tmp_path, {"db": {"persistence": {"enabled": False}}})
    assert not [d for d in docs if d["kind"] == "PersistentVolumeClaim"]
    volumes = {
        v["name"]: v for v in find(docs, "Deployment")["spec"]["template"]["spec"]["volumes"]
    }
    assert volumes["db"] == {"name": "db", "emptyDir": {}}


def test_release_workflow_publishes_the_chart_default_image():
    """The chart's default image is <image.name>:<appVersion>; the release workflow
    pushes exactly that, with the chart versioned as the image (chartpress-style)."""
    from r2dservice._version import __version__

    workflow = yaml.safe_load(Path(REPO, ".github", "workflows", "release.yaml").read_text())
    values = yaml.safe_load(Path(CHART, "values.yaml").read_text())
    chart = yaml.safe_load(Path(CHART, "Chart.yaml").read_text())
    assert workflow["env"]["IMAGE"] == values["image"]["name"]
    assert values["image"]["tag"] == ""  # the chart's appVersion
    assert chart["appVersion"] == __version__
    steps = workflow["jobs"]["release"]["steps"]
    [image_step] = [s for s in steps if s.get("name") == "The service image"]
    assert image_step["with"]["tags"] == "${{ env.IMAGE }}:${{ steps.version.outputs.version }}"
    [version_step] = [s for s in steps if s.get("id") == "version"]
    assert "r2dservice/_version.py" in version_step["run"]
    assert "appVersion" in version_step["run"] and "^version:" in version_step["run"]
    # the Dockerfile it builds is the one the end-to-end test runs
    assert image_step["with"]["context"] == "."
    assert Path(REPO, "Dockerfile").exists()
