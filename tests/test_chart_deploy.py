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


# --- the build daemon -------------------------------------------------------------------


def daemon_set(docs: list[dict]) -> dict:
    return find(docs, "DaemonSet", f"{RELEASE}-build-daemon")


def test_dind_daemon_by_default_and_build_pods_get_its_socket(helm, tmp_path):
    """Managed clusters run containerd: no Docker socket on the node. The chart's own
    dockerd serves the builds, and the build pods mount its socket; nobody names a path."""
    from tests.test_chart import build_pod

    docs = template(
        helm,
        tmp_path,
        {
            "imagePrefix": "registry.example/r2d-",
            "build": {
                "namespace": "builds",
                "nodeSelector": {"pool": "build"},
                "tolerations": [{"key": "build", "operator": "Exists"}],
            },
        },
    )
    ds = daemon_set(docs)
    assert ds["metadata"]["namespace"] == "builds"
    spec = ds["spec"]["template"]["spec"]
    # on the nodes build pods go to
    assert spec["nodeSelector"] == {"pool": "build"}
    assert spec["tolerations"] == [{"key": "build", "operator": "Exists"}]
    dockerd, cleaner = spec["containers"]
    assert dockerd["image"] == "docker:28.5-dind"
    assert dockerd["securityContext"] == {"privileged": True}
    # "dockerd" first, so the official entrypoint adds no TCP listener (test_chart_e2e)
    assert dockerd["args"][:2] == ["dockerd", "--host=unix:///var/run/r2dservice/docker.sock"]
    volumes = {v["name"]: v for v in spec["volumes"]}
    socket_dir = volumes["run"]["hostPath"]["path"]
    assert socket_dir == f"/var/run/r2dservice/{NAMESPACE}-{RELEASE}"  # per release
    assert volumes["data"]["hostPath"]["path"] == f"/var/lib/r2dservice/{NAMESPACE}-{RELEASE}"
    # the image cleaner beside it, unprivileged, with the thresholds
    env = {e["name"]: e["value"] for e in cleaner["env"]}
    assert env["DISK_HIGH"] == "80" and env["DISK_LOW"] == "60"
    assert env["DOCKER_HOST"] == "unix:///var/run/r2dservice/docker.sock"
    assert cleaner["securityContext"]["readOnlyRootFilesystem"] is True
    # the build pod r2dservice makes from this configuration mounts that socket
    pod = build_pod(docs, tmp_path)
    [socket] = [v for v in pod["spec"]["volumes"] if v["name"] == "docker-socket"]
    assert socket["hostPath"] == {"path": f"{socket_dir}/docker.sock", "type": "Socket"}


def test_rootless_daemon_runs_unprivileged_in_a_user_namespace(helm, tmp_path_factory):
    from tests.test_chart import render

    docs = render(helm, "rootless-daemon", tmp_path_factory)
    spec = daemon_set(docs)["spec"]["template"]["spec"]
    assert spec["hostUsers"] is False
    dockerd = spec["containers"][0]
    assert dockerd["image"] == "docker:28.5-dind-rootless"
    assert "privileged" not in dockerd["securityContext"]
    assert dockerd["securityContext"]["runAsUser"] == 1000
    # the socket's folder is outside /run, which rootlesskit covers (--copy-up=/run)
    assert dockerd["args"] == ["dockerd", "--host=unix:///r2dservice-run/docker.sock", "--mtu=1400"]
    assert (
        dockerd["readinessProbe"]["exec"]["command"][1]
        == "--host=unix:///r2dservice-run/docker.sock"
    )
    mounts = {m["name"]: m["mountPath"] for m in dockerd["volumeMounts"]}
    # the data where the image's user keeps it ($HOME/.local/share/docker, which its
    # entrypoint checks is writable)
    assert mounts == {"run": "/r2dservice-run", "data": "/home/rootless/.local/share/docker"}
    cleaner = spec["containers"][1]
    assert cleaner["securityContext"]["runAsUser"] == 1000
    assert {e["name"]: e["value"] for e in cleaner["env"]}["DOCKER_HOST"] == (
        "unix:///r2dservice-run/docker.sock"
    )


def test_rootless_daemon_gets_its_node_folders_and_build_pods_its_socket(
    helm, tmp_path_factory, tmp_path
):
    """The kubelet makes the hostPath folders root's, 0755 (DirectoryOrCreate): an init
    container, root of the pod's user namespace, hands them to the daemon's uid before
    dockerd starts. The socket dockerd makes there is that uid's, 0660: build pods get
    its group, also when the operator runs them as another user."""
    from tests.test_chart import build_pod, render

    docs = render(helm, "rootless-daemon", tmp_path_factory)
    spec = daemon_set(docs)["spec"]["template"]["spec"]
    [init] = spec["initContainers"]
    assert init["image"] == spec["containers"][0]["image"]
    assert init["command"] == [
        "sh",
        "-c",
        "chmod 0755 /r2dservice-run && chmod 0700 /home/rootless/.local/share/docker"
        " && chown 1000:1000 /r2dservice-run /home/rootless/.local/share/docker",
    ]
    ctx = init["securityContext"]
    assert ctx["runAsUser"] == 0 and ctx["runAsNonRoot"] is False
    assert ctx["capabilities"] == {"drop": ["ALL"], "add": ["CHOWN", "FOWNER"]}
    assert ctx["allowPrivilegeEscalation"] is False
    mounts = {m["name"]: m["mountPath"] for m in init["volumeMounts"]}
    assert mounts == {m["name"]: m["mountPath"] for m in spec["containers"][0]["volumeMounts"]}
    pod = build_pod(docs, tmp_path)
    assert pod["spec"]["securityContext"]["supplementalGroups"] == [1000]

    # an operator's own securityContext keeps what it says, plus the socket's group once
    for given, groups in (
        ({"runAsUser": 1001}, [1000]),
        ({"supplementalGroups": [5, 1000]}, [5, 1000]),
    ):
        folder = tmp_path / f"given{len(given)}{len(groups)}"
        (folder / "pod").mkdir(parents=True)
        docs = template(
            helm,
            folder,
            {
                "imagePrefix": "registry.example/r2d-",
                "build": {"daemon": {"type": "rootless"}, "podSecurityContext": given},
            },
        )
        ctx = build_pod(docs, folder / "pod")["spec"]["securityContext"]
        assert ctx == {**given, "supplementalGroups": groups}

    # dind: the socket is root's and build pods are left as they are
    (tmp_path / "dind" / "pod").mkdir(parents=True)
    docs = template(helm, tmp_path / "dind", {"imagePrefix": "registry.example/r2d-"})
    assert "initContainers" not in daemon_set(docs)["spec"]["template"]["spec"]
    assert "securityContext" not in build_pod(docs, tmp_path / "dind" / "pod")["spec"]


def test_host_daemon_uses_the_node_socket_and_makes_no_daemon(helm, tmp_path):
    from tests.test_chart import build_pod

    docs = template(
        helm,
        tmp_path,
        {"imagePrefix": "registry.example/r2d-", "build": {"daemon": {"type": "host"}}},
    )
    assert not [d for d in docs if d["kind"] == "DaemonSet"]
    [socket] = [
        v for v in build_pod(docs, tmp_path)["spec"]["volumes"] if v["name"] == "docker-socket"
    ]
    assert socket["hostPath"]["path"] == "/var/run/docker.sock"


def test_network_policy_for_build_pods_and_daemon(helm, tmp_path):
    """On by default: the internet, not the cluster's private ranges or the metadata
    server; and it selects the pods r2dservice actually makes."""
    from tests.test_chart import build_pod

    docs = template(helm, tmp_path, {"imagePrefix": "registry.example/r2d-"})
    builds = find(docs, "NetworkPolicy", f"{RELEASE}-build")
    daemon = find(docs, "NetworkPolicy", f"{RELEASE}-build-daemon")
    for policy in (builds, daemon):
        spec = policy["spec"]
        assert spec["policyTypes"] == ["Ingress", "Egress"] and spec["ingress"] == []
        blocks = [t["ipBlock"] for rule in spec["egress"] for t in rule.get("to", [])]
        assert blocks == [
            {
                "cidr": "0.0.0.0/0",
                "except": [
                    "10.0.0.0/8",
                    "172.16.0.0/12",
                    "192.168.0.0/16",
                    "100.64.0.0/10",
                    "169.254.169.254/32",
                ],
            }
        ]
    labels = build_pod(docs, tmp_path)["metadata"]["labels"]
    assert builds["spec"]["podSelector"]["matchLabels"].items() <= labels.items()
    ds_labels = daemon_set(docs)["spec"]["template"]["metadata"]["labels"]
    assert daemon["spec"]["podSelector"]["matchLabels"].items() <= ds_labels.items()


def test_image_cleaner_removes_oldest_images_until_below_low(tmp_path):
    """The cleaner script with a docker and df that tell a story: 90% full; each image
    removed frees 10%; one image is in use (rm fails) and is skipped."""
    import subprocess

    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    state = tmp_path / "used"
    state.write_text("90")
    calls = tmp_path / "calls"
    (bin_dir / "df").write_text(
        f'#!/bin/sh\necho "Filesystem 1024-blocks Used Available Capacity Mounted"\n'
        f'echo "/dev/x 100 0 0 $(cat {state})% /data"\n'
    )
    (bin_dir / "docker").write_text(
        f"""#!/bin/sh
echo "$*" >> {calls}
case "$1 $2" in
  "image ls") printf '%s\\n' '2026-01-03 10:00:00 +0000 UTC|new' '2026-01-01 10:00:00 +0000 UTC|oldest' '2026-01-02 10:00:00 +0000 UTC|inuse' ;;
  "image rm") [ "$5" = inuse ] && exit 1; echo $(( $(cat {state}) - 10 )) > {state} ;;
esac
"""
    )
    for f in bin_dir.iterdir():
        f.chmod(0o755)
    script = Path(CHART, "files", "image-cleaner.sh")
    env = {
        "PATH": f"{bin_dir}:/usr/bin:/bin",
        "DOCKER_DATA": "/data",
        "DISK_HIGH": "80",
        "DISK_LOW": "75",
        "ONCE": "1",
    }
    proc = subprocess.run(["sh", str(script)], env=env, capture_output=True, text=True, timeout=30)
    assert proc.returncode == 0, proc.stderr
    lines = calls.read_text().splitlines()
    assert lines[0] == "builder prune --all --force"
    removed = [line.split()[-1] for line in lines if line.startswith("image rm")]
    assert removed == ["oldest", "inuse", "new"]  # oldest first; the one in use stays
    assert state.read_text().strip() == "70"
    assert "removed image oldest" in proc.stdout and "removed image inuse" not in proc.stdout

    # below the high mark: nothing happens
    calls.unlink()
    state.write_text("50")
    subprocess.run(["sh", str(script)], env=env, check=True, timeout=30)
    assert not calls.exists()
