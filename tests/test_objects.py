"""make_build_pod() and the pod readers: pure functions, tested exhaustively.

Every shape make_build_pod() can produce is validated against the Kubernetes OpenAPI
schema with kubernetes-validate --strict (offline schemas bundled with the package),
for the oldest and the newest Kubernetes version it knows.
"""

from __future__ import annotations

import base64
import json
import subprocess
import sys

import kubernetes_validate
import pytest
import yaml
from kubernetes_asyncio.client import models as k8s

from r2dservice import naming
from r2dservice.builders.base import BuildRequest, make_build_request
from r2dservice.builders.kubernetes import KubernetesBuilder, build_pod_config
from r2dservice.builders.objects import (
    BASE_LABELS,
    CREDENTIALS_KEY,
    DOCKER_CONFIG_DIR,
    STUCK_REASONS,
    credentials_secret_name,
    is_finished,
    is_running,
    label_selector,
    label_value,
    make_build_pod,
    make_credentials_secret,
    parse_time,
    repo2docker_args,
    request_from_pod,
    sticky_node,
    stuck_reason,
    terminated_state,
    termination_message,
    to_dict,
    to_model,
    waiting_message,
)

KUBE_VERSIONS = sorted(
    {kubernetes_validate.utils.all_versions()[0], kubernetes_validate.latest_version(), "1.30.0"}
)


def request(**kw) -> BuildRequest:
    image = kw.pop("image", "registry.example:5000/r2d/gh-owner-repo-1234abcd:" + "c" * 40)
    d = {
        "name": naming.build_name(image),
        "image_name": image,
        "repo_url": "https://github.com/owner/repo",
        "ref": "c" * 40,
        "provider": "gh",
        "spec": "owner/repo/main",
        "push": True,
        "user": "alice@example.org",
    }
    d.update(kw)
    return BuildRequest(**d)


CONFIG = build_pod_config(
    build_image="quay.io/jupyterhub/repo2docker:2026.04.0", namespace="builds"
)

EVERYTHING = CONFIG.replace(
    build_image_pull_policy="Always",
    docker_host="unix:///var/run/dind/docker.sock",
    image_pull_secrets=("pull-a", "pull-b"),
    push_secret="push-creds",
    push_secret_key=".dockerconfigjson",
    git_credentials_secret="git-creds",
    git_credentials_key="helper",
    resources={"requests": {"cpu": "100m", "memory": "256Mi"}, "limits": {"memory": "1Gi"}},
    node_selector={"hub.jupyter.org/node-purpose": "user"},
    tolerations=(
        {
            "key": "hub.jupyter.org/dedicated",
            "operator": "Equal",
            "value": "user",
            "effect": "NoSchedule",
        },
        {"key": "gpu", "operator": "Exists", "toleration_seconds": 30, "effect": "NoExecute"},
    ),
    affinity={
        "podAntiAffinity": {
            "preferredDuringSchedulingIgnoredDuringExecution": [
                {
                    "weight": 10,
                    "podAffinityTerm": {
                        "topologyKey": "kubernetes.io/hostname",
                        "labelSelector": {"matchLabels": {"app.kubernetes.io/component": "build"}},
                    },
                }
            ]
        }
    },
    service_account="builder",
    automount_service_account_token=True,
    pod_security_context={"fsGroup": 1000, "seccompProfile": {"type": "RuntimeDefault"}},
    container_security_context={
        "allowPrivilegeEscalation": False,
        "capabilities": {"drop": ["ALL"]},
    },
    extra_envs={
        "HTTP_PROXY": "http://proxy:3128",
        "NODE": {"valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}},
        "NUMBER": 3,
    },
    extra_volumes=({"name": "r2d-config", "configMap": {"name": "repo2docker-config"}},),
    extra_volume_mounts=(
        {"name": "r2d-config", "mountPath": "/etc/repo2docker", "readOnly": True},
    ),
    extra_labels={"release": "r2d", "example.org/team": "data"},
    extra_annotations={"example.org/owner": "platform team"},
    repo2docker_extra_args=("--config=/etc/repo2docker/config.py", "--appendix=RUN true"),
    user_id=1001,
    user_name="builder",
    build_timeout=3600,
    priority_class_name="builds",
)

SHAPES = {
    "minimal": (CONFIG, request(), None),
    "no push": (CONFIG, request(push=False), None),
    "push without secret": (CONFIG.replace(push_secret=""), request(), None),
    "no docker socket": (CONFIG.replace(docker_host=None), request(), None),
    "tcp docker host": (CONFIG.replace(docker_host="tcp://dind:2375"), request(), None),
    "sticky only": (CONFIG, request(), "node-7"),
    "everything": (EVERYTHING, request(labels={"user": "Alice Example!"}), "node-1"),
    "everything, no push": (EVERYTHING, request(push=False, provider="", spec="", user=""), None),
    "sticky into existing node affinity": (
        CONFIG.replace(
            affinity={
                "node_affinity": {
                    "preferred_during_scheduling_ignored_during_execution": [
                        {
                            "weight": 5,
                            "preference": {
                                "match_expressions": [
                                    {"key": "pool", "operator": "In", "values": ["builds"]}
                                ]
                            },
                        }
                    ]
                }
            },
        ),
        request(),
        "node-2",
    ),
    "request credentials": (
        EVERYTHING,
        make_build_request(
            image_name="r.example/git-private:" + "c" * 40,
            repo_url="https://alice:tok@git.example/owner/private",
            ref="c" * 40,
            provider="git",
            spec="https://alice:tok@git.example/owner/private/main",
            push=True,
        ),
        None,
    ),
    "long names": (
        CONFIG,
        request(image="r.example/" + "x" * 200 + ":" + "t" * 120),
        None,
    ),
}


def pod_dict(config=CONFIG, req=None, sticky=None) -> dict:
    return to_dict(make_build_pod(req or request(), config, sticky_node=sticky))


def container(d: dict) -> dict:
    [c] = d["spec"]["containers"]
    return c


def env_of(d: dict) -> dict:
    return {e["name"]: e for e in container(d).get("env", [])}


# --- every shape is a valid Pod --------------------------------------------------------


@pytest.mark.parametrize("version", KUBE_VERSIONS)
@pytest.mark.parametrize("shape", list(SHAPES))
def test_every_shape_validates_strictly(shape, version):
    config, req, sticky = SHAPES[shape]
    d = pod_dict(config, req, sticky)
    kubernetes_validate.validate(d, version, strict=True)
    # and it survives a YAML round trip unchanged (what `r2dservice build-pod` prints)
    assert yaml.safe_load(yaml.safe_dump(d)) == d


def test_strict_validation_catches_unknown_fields():
    d = pod_dict()
    d["spec"]["containers"][0]["bogus"] = True
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(d, kubernetes_validate.latest_version(), strict=True)


def test_cli_validates_the_yaml(tmp_path):
    path = tmp_path / "pod.yaml"
    path.write_text(yaml.safe_dump_all([pod_dict(*SHAPES[s]) for s in SHAPES]))
    out = subprocess.run(
        [sys.executable, "-m", "kubernetes_validate", "--strict", "-k", "1.30.0", str(path)],
        capture_output=True,
        text=True,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert out.stdout.count("passed") == len(SHAPES)


# --- metadata -------------------------------------------------------------------------------


def test_name_namespace_labels_annotations():
    req = request()
    d = pod_dict(req=req)
    meta = d["metadata"]
    assert meta["name"] == req.name and len(req.name) <= 63
    assert meta["namespace"] == "builds"
    for k, v in BASE_LABELS.items():
        assert meta["labels"][k] == v
    assert meta["labels"]["r2dservice.jupyter.org/provider"] == "gh"
    ann = meta["annotations"]
    assert ann["r2dservice.jupyter.org/repo-url"] == req.repo_url
    assert ann["r2dservice.jupyter.org/ref"] == req.ref
    assert ann["r2dservice.jupyter.org/image"] == req.image_name
    assert ann["r2dservice.jupyter.org/user"] == "alice@example.org"
    assert ann["r2dservice.jupyter.org/push"] == "true"
    assert d["apiVersion"] == "v1" and d["kind"] == "Pod"


def test_name_is_deterministic_from_the_image():
    a, b = pod_dict(req=request()), pod_dict(req=request())
    assert a == b
    other = pod_dict(req=request(image="registry.example:5000/r2d/other:" + "c" * 40))
    assert other["metadata"]["name"] != a["metadata"]["name"]


def test_bad_build_name_is_refused():
    with pytest.raises(ValueError, match="DNS-1123"):
        make_build_pod(request(name="Not_A_Label"), CONFIG)
    with pytest.raises(ValueError):
        make_build_pod(request(name="a" * 64), CONFIG)


def test_extra_labels_and_annotations():
    d = pod_dict(EVERYTHING)
    assert d["metadata"]["labels"]["release"] == "r2d"
    assert d["metadata"]["labels"]["example.org/team"] == "data"
    assert d["metadata"]["annotations"]["example.org/owner"] == "platform team"


def test_extra_labels_cannot_override_ours():
    config = CONFIG.replace(extra_labels={"release": "x"})
    req = request(labels={"app.kubernetes.io/component": "evil"})
    d = pod_dict(config, req)
    assert d["metadata"]["labels"]["app.kubernetes.io/component"] == "build"


@pytest.mark.parametrize(
    "labels",
    [{"bad key!": "x"}, {"ok": "not a valid value"}, {"ok": "x" * 64}, {"-bad": "x"}],
)
def test_invalid_extra_labels_are_refused(labels):
    with pytest.raises(ValueError, match="label"):
        pod_dict(CONFIG.replace(extra_labels=labels))


def test_invalid_annotation_key_is_refused():
    with pytest.raises(ValueError, match="annotation"):
        pod_dict(CONFIG.replace(extra_annotations={"a b": "x"}))


def test_request_labels_values_are_made_valid():
    d = pod_dict(req=request(labels={"user": "Alice Example!", "empty": "!!!", "long": "y" * 80}))
    labels = d["metadata"]["labels"]
    assert labels["user"] == "Alice-Example"
    assert labels["empty"] == ""
    assert labels["long"] == "y" * 63


@pytest.mark.parametrize(
    "value, expected",
    [
        ("simple", "simple"),
        ("a@b.org", "a-b.org"),
        ("--x--", "x"),
        ("_a_", "a"),
        ("", ""),
        ("a" * 70, "a" * 63),
        ("a" * 62 + "-b", "a" * 62),
    ],
)
def test_label_value(value, expected):
    assert label_value(value) == expected


def test_label_selector_includes_extra_labels():
    assert label_selector(CONFIG) == (
        "app.kubernetes.io/component=build,app.kubernetes.io/managed-by=r2dservice,"
        "app.kubernetes.io/name=r2dservice"
    )
    sel = label_selector(CONFIG.replace(extra_labels={"release": "r2d"}))
    assert sel.endswith(",release=r2d")


def test_provider_label_only_when_valid():
    d = pod_dict(req=request(provider=""))
    assert "r2dservice.jupyter.org/provider" not in d["metadata"]["labels"]
    assert "r2dservice.jupyter.org/provider" not in d["metadata"]["annotations"]


# --- the container ----------------------------------------------------------------------------


def test_repo2docker_arguments():
    req = request()
    args = container(pod_dict(req=req))["args"]
    assert args[0] == "jupyter-repo2docker"
    assert "--json-logs" in args and "--no-run" in args and "--push" in args
    assert f"--ref={req.ref}" in args
    assert f"--image-name={req.image_name}" in args
    assert "--user-id=1000" in args and "--user-name=jovyan" in args
    assert args[-1] == req.repo_url  # after every option (repo2docker#128)
    assert "command" not in container(pod_dict(req=req))  # keep the image's entrypoint


def test_no_push_flag_without_push():
    assert "--push" not in container(pod_dict(req=request(push=False)))["args"]


def test_extra_args_come_before_the_repository():
    args = repo2docker_args(request(), EVERYTHING)
    i = args.index("--config=/etc/repo2docker/config.py")
    assert i < len(args) - 1 and args[-1] == "https://github.com/owner/repo"
    assert "--user-id=1001" in args and "--user-name=builder" in args


def test_repository_that_looks_like_an_option_is_refused():
    with pytest.raises(ValueError, match="starts with '-'"):
        make_build_pod(request(repo_url="--help"), CONFIG)


def test_ref_that_looks_like_an_option_stays_a_value():
    args = repo2docker_args(request(ref="--evil"), CONFIG)
    assert "--ref=--evil" in args and "--evil" not in args


def test_image_and_pull_policy():
    c = container(pod_dict())
    assert c["name"] == "builder"
    assert c["image"] == CONFIG.build_image
    assert "imagePullPolicy" not in c
    assert container(pod_dict(EVERYTHING))["imagePullPolicy"] == "Always"


def test_pod_spec_basics():
    spec = pod_dict()["spec"]
    assert spec["restartPolicy"] == "Never"
    assert spec["automountServiceAccountToken"] is False
    assert spec["enableServiceLinks"] is False
    assert "serviceAccountName" not in spec
    # build_timeout's default (an hour) is the kubelet's deadline; 0 is none
    assert spec["activeDeadlineSeconds"] == 3600
    assert "activeDeadlineSeconds" not in pod_dict(CONFIG.replace(build_timeout=0))["spec"]
    # seconds as a float (one trait type for both builders), rounded up for the kubelet
    assert pod_dict(CONFIG.replace(build_timeout=90.2))["spec"]["activeDeadlineSeconds"] == 91
    everything = pod_dict(EVERYTHING)["spec"]
    assert everything["serviceAccountName"] == "builder"
    assert everything["automountServiceAccountToken"] is True
    assert everything["activeDeadlineSeconds"] == 3600
    assert everything["priorityClassName"] == "builds"


# --- docker, secrets and credentials -------------------------------------------------------


def test_docker_socket_is_a_host_path_mount():
    d = pod_dict()
    [vol] = [v for v in d["spec"]["volumes"] if v["name"] == "docker-socket"]
    assert vol["hostPath"] == {"path": "/var/run/docker.sock", "type": "Socket"}
    [mount] = [m for m in container(d)["volumeMounts"] if m["name"] == "docker-socket"]
    assert mount["mountPath"] == "/var/run/docker.sock"


def test_docker_host_unix_url():
    d = pod_dict(EVERYTHING)
    [vol] = [v for v in d["spec"]["volumes"] if v["name"] == "docker-socket"]
    assert vol["hostPath"]["path"] == "/var/run/dind/docker.sock"


def test_docker_host_tcp_is_an_env_var():
    d = pod_dict(CONFIG.replace(docker_host="tcp://dind:2375"))
    assert env_of(d)["DOCKER_HOST"]["value"] == "tcp://dind:2375"
    assert not any(v["name"] == "docker-socket" for v in d["spec"].get("volumes", []))


def test_no_docker_host():
    d = pod_dict(CONFIG.replace(docker_host=None, push_secret=""))
    assert "volumes" not in d["spec"]
    assert "DOCKER_HOST" not in env_of(d)


def test_push_secret_is_a_file_never_an_env_var():
    d = pod_dict(CONFIG.replace(push_secret="push-creds"))
    vols = {v["name"]: v for v in d["spec"]["volumes"]}
    assert vols["push-secret"]["secret"] == {
        "secretName": "push-creds",
        "items": [{"key": "config.json", "path": "config.json"}],
    }
    assert vols["docker-config"]["emptyDir"] == {}
    mounts = {m["name"]: m for m in container(d)["volumeMounts"]}
    assert mounts["push-secret"] == {
        "name": "push-secret",
        "mountPath": f"{DOCKER_CONFIG_DIR}/config.json",
        "subPath": "config.json",
        "readOnly": True,
    }
    assert mounts["docker-config"]["mountPath"] == DOCKER_CONFIG_DIR
    env = env_of(d)
    assert env["DOCKER_CONFIG"]["value"] == DOCKER_CONFIG_DIR
    # no environment variable takes anything from the push secret
    assert "push-creds" not in json.dumps(container(d).get("env"))


def test_push_secret_key_for_dockerconfigjson_secrets():
    d = pod_dict(EVERYTHING)
    vols = {v["name"]: v for v in d["spec"]["volumes"]}
    assert vols["push-secret"]["secret"]["items"] == [
        {"key": ".dockerconfigjson", "path": "config.json"}
    ]


def test_push_secret_not_mounted_when_not_pushing():
    d = pod_dict(CONFIG.replace(push_secret="push-creds"), request(push=False))
    assert not any(v["name"] == "push-secret" for v in d["spec"]["volumes"])
    assert "DOCKER_CONFIG" not in env_of(d)


def test_git_credentials_come_from_the_secret():
    env = env_of(pod_dict(EVERYTHING))
    assert env["GIT_CREDENTIAL_ENV"] == {
        "name": "GIT_CREDENTIAL_ENV",
        "valueFrom": {"secretKeyRef": {"name": "git-creds", "key": "helper"}},
    }
    assert "GIT_CREDENTIAL_ENV" not in env_of(pod_dict())


def private(**kw) -> BuildRequest:
    """A request made as the service makes them, from a URL with credentials."""
    url = "https://alice:tok-s3cret@git.example/owner/private"
    return make_build_request(
        image_name="registry.example:5000/r2d/git-private:" + "c" * 40,
        repo_url=url,
        ref="c" * 40,
        provider="git",
        spec=url + "/main",
        push=True,
        user="alice",
        **kw,
    )


@pytest.mark.parametrize("config", [CONFIG, EVERYTHING], ids=["minimal", "everything"])
def test_request_credentials_come_from_a_secret_of_the_build(config):
    req = private()
    d = pod_dict(config, req)
    assert "tok-s3cret" not in json.dumps(d)
    assert container(d)["args"][-1] == "https://git.example/owner/private"
    ann = d["metadata"]["annotations"]
    assert ann["r2dservice.jupyter.org/repo-url"] == "https://git.example/owner/private"
    assert "tok-s3cret" not in ann["r2dservice.jupyter.org/spec"]
    # the build's own Secret, even when the operator configured one
    assert env_of(d)["GIT_CREDENTIAL_ENV"]["valueFrom"] == {
        "secretKeyRef": {"name": credentials_secret_name(req), "key": CREDENTIALS_KEY}
    }
    kubernetes_validate.validate(d, kubernetes_validate.latest_version(), strict=True)


@pytest.mark.parametrize("version", KUBE_VERSIONS)
def test_credentials_secret(version):
    req = private()
    secret = to_dict(make_credentials_secret(req, EVERYTHING, owner_uid="1234-uid"))
    kubernetes_validate.validate(secret, version, strict=True)
    assert secret["metadata"]["name"] == credentials_secret_name(req) == req.name + "-git"
    assert secret["metadata"]["namespace"] == "builds"
    assert secret["metadata"]["labels"] == pod_dict(EVERYTHING, req)["metadata"]["labels"]
    assert secret["metadata"]["annotations"] == {"r2dservice.jupyter.org/build": req.name}
    assert secret["metadata"]["ownerReferences"] == [
        {"apiVersion": "v1", "kind": "Pod", "name": req.name, "uid": "1234-uid"}
    ]
    assert base64.b64decode(secret["data"][CREDENTIALS_KEY]).decode() == (
        "protocol=https\nhost=git.example\nusername=alice\npassword=tok-s3cret\n"
    )
    assert "ownerReferences" not in to_dict(make_credentials_secret(req, CONFIG))["metadata"]
    with pytest.raises(ValueError):
        make_credentials_secret(request(), CONFIG)


def test_pod_config_is_kubernetes_builders_pod_traits():
    """No hand-written copy: every trait tagged pod=True, by name, with its value."""
    names = set(KubernetesBuilder.class_trait_names(pod=True))
    assert {
        "build_image",
        "namespace",
        "tolerations",
        "user_id",
        "user_name",
        "repo2docker_extra_args",
        "build_timeout",
    } <= names
    assert "k8s_api_url" not in names and "sticky_builds" not in names
    b = KubernetesBuilder(
        namespace="ns", user_id=1234, tolerations=[{"key": "k", "operator": "Exists"}]
    )
    config = b.pod_config()
    assert set(config.as_dict()) == names
    assert (config.user_id, config.namespace) == (1234, "ns")
    # immutable, and apart from the builder
    with pytest.raises(AttributeError):
        config.user_id = 1
    b.tolerations[0]["key"] = "changed"
    assert config.tolerations == [{"key": "k", "operator": "Exists"}]
    with pytest.raises(TypeError):
        CONFIG.replace(no_such_setting=1)
    with pytest.raises(TypeError):
        build_pod_config(k8s_api_url="http://x")
    # every pod setting shapes the pod: none is declared and then ignored
    import inspect

    from r2dservice.builders import objects

    source = inspect.getsource(objects)
    for name in names:
        assert f"config.{name}" in source, name


def test_extra_envs():
    env = env_of(pod_dict(EVERYTHING))
    assert env["HTTP_PROXY"]["value"] == "http://proxy:3128"
    assert env["NUMBER"]["value"] == "3"
    assert env["NODE"]["valueFrom"] == {"fieldRef": {"fieldPath": "spec.nodeName"}}


def test_image_pull_secrets():
    assert pod_dict(EVERYTHING)["spec"]["imagePullSecrets"] == [
        {"name": "pull-a"},
        {"name": "pull-b"},
    ]
    assert "imagePullSecrets" not in pod_dict()["spec"]


# --- scheduling -------------------------------------------------------------------------------


def test_resources_node_selector_tolerations():
    d = pod_dict(EVERYTHING)
    assert container(d)["resources"] == {
        "requests": {"cpu": "100m", "memory": "256Mi"},
        "limits": {"memory": "1Gi"},
    }
    assert d["spec"]["nodeSelector"] == {"hub.jupyter.org/node-purpose": "user"}
    assert d["spec"]["tolerations"][1] == {
        "key": "gpu",
        "operator": "Exists",
        "tolerationSeconds": 30,
        "effect": "NoExecute",
    }


def test_no_affinity_by_default():
    assert "affinity" not in pod_dict()["spec"]


def test_sticky_node_adds_a_preference():
    aff = pod_dict(sticky="node-7")["spec"]["affinity"]
    [term] = aff["nodeAffinity"]["preferredDuringSchedulingIgnoredDuringExecution"]
    assert term["weight"] == 100
    assert term["preference"]["matchExpressions"] == [
        {"key": "kubernetes.io/hostname", "operator": "In", "values": ["node-7"]}
    ]


def test_sticky_node_merges_with_configured_affinity():
    config, req, sticky = SHAPES["sticky into existing node affinity"]
    terms = pod_dict(config, req, sticky)["spec"]["affinity"]["nodeAffinity"][
        "preferredDuringSchedulingIgnoredDuringExecution"
    ]
    assert [t["weight"] for t in terms] == [5, 100]
    # the configuration itself is not changed
    assert (
        len(
            config.affinity["node_affinity"]["preferred_during_scheduling_ignored_during_execution"]
        )
        == 1
    )
    aff = pod_dict(EVERYTHING, sticky="node-1")["spec"]["affinity"]
    assert "podAntiAffinity" in aff and "nodeAffinity" in aff


def test_security_contexts():
    d = pod_dict(EVERYTHING)
    assert d["spec"]["securityContext"] == {
        "fsGroup": 1000,
        "seccompProfile": {"type": "RuntimeDefault"},
    }
    assert container(d)["securityContext"] == {
        "allowPrivilegeEscalation": False,
        "capabilities": {"drop": ["ALL"]},
    }


def test_extra_volumes_and_mounts():
    d = pod_dict(EVERYTHING)
    assert {"name": "r2d-config", "configMap": {"name": "repo2docker-config"}} in d["spec"][
        "volumes"
    ]
    assert {"name": "r2d-config", "mountPath": "/etc/repo2docker", "readOnly": True} in container(
        d
    )["volumeMounts"]


def test_sticky_node_is_rendezvous_hashing():
    nodes = [f"node-{i}" for i in range(5)]
    assert sticky_node([], "repo") is None
    picks = {r: sticky_node(nodes, r) for r in (f"https://github.com/o/r{i}" for i in range(200))}
    assert picks == {r: sticky_node(list(reversed(nodes)), r) for r in picks}  # order-free
    assert len(set(picks.values())) == 5  # spread over the nodes
    # adding a node moves only the repositories that now prefer the new node
    more = {r: sticky_node(nodes + ["node-new"], r) for r in picks}
    moved = [r for r in picks if more[r] != picks[r]]
    assert moved and all(more[r] == "node-new" for r in moved)
    # losing a node moves only the repositories that preferred it
    fewer = {r: sticky_node(nodes[1:], r) for r in picks}
    assert all(fewer[r] == picks[r] for r in picks if picks[r] != "node-0")


# --- models from config dicts ----------------------------------------------------------------


def test_to_model_accepts_camel_and_snake_case():
    a = to_model(k8s.V1Toleration, {"key": "k", "tolerationSeconds": 5})
    b = to_model(k8s.V1Toleration, {"key": "k", "toleration_seconds": 5})
    assert a == b and a.toleration_seconds == 5


def test_to_model_refuses_unknown_fields():
    with pytest.raises(ValueError, match="unknown field 'tolerationSecs'"):
        to_model(k8s.V1Toleration, {"key": "k", "tolerationSecs": 5})
    with pytest.raises(ValueError, match="unknown field"):
        pod_dict(CONFIG.replace(affinity={"nodeAffinity": {"bogus": []}}))


def test_to_model_refuses_non_mappings():
    with pytest.raises(ValueError, match="must be a mapping"):
        to_model(k8s.V1Toleration, "key=value")


async def test_to_dict_matches_the_client_serialization():
    from kubernetes_asyncio.client import ApiClient

    config, req, sticky = SHAPES["everything"]
    pod = make_build_pod(req, config, sticky_node=sticky)
    async with ApiClient() as api:
        assert api.sanitize_for_serialization(pod) == to_dict(pod)


# --- reading pods back -----------------------------------------------------------------------


@pytest.mark.parametrize("shape", list(SHAPES))
def test_request_round_trips_through_the_pod(shape):
    config, req, sticky = SHAPES[shape]
    assert request_from_pod(pod_dict(config, req, sticky)) == req


def test_request_from_foreign_pod_is_none():
    assert request_from_pod({"metadata": {"name": "x"}}) is None
    assert request_from_pod({}) is None
    d = pod_dict()
    d["metadata"]["annotations"]["r2dservice.jupyter.org/request-labels"] = "not json"
    assert request_from_pod(d).labels == {}


def pod_with(state: dict | None = None, phase: str = "Pending", **status) -> dict:
    st = {"phase": phase, **status}
    if state is not None:
        st["containerStatuses"] = [{"name": "builder", "state": state}]
    return {"metadata": {"name": "p"}, "spec": {}, "status": st}


@pytest.mark.parametrize("reason", sorted(STUCK_REASONS))
def test_stuck_waiting_reasons(reason):
    pod = pod_with({"waiting": {"reason": reason, "message": "details here"}})
    assert stuck_reason(pod) == f"{reason}: details here"
    assert not is_running(pod) and not is_finished(pod)


@pytest.mark.parametrize("reason", ["ContainerCreating", "PodInitializing", None])
def test_normal_waiting_is_not_stuck(reason):
    assert stuck_reason(pod_with({"waiting": {"reason": reason} if reason else {}})) is None


def test_unschedulable_is_stuck():
    pod = pod_with(
        None,
        conditions=[
            {
                "type": "PodScheduled",
                "status": "False",
                "reason": "Unschedulable",
                "message": "0/3 nodes",
            }
        ],
    )
    assert stuck_reason(pod) == "Unschedulable: 0/3 nodes"
    pod["status"]["conditions"][0]["status"] = "True"
    assert stuck_reason(pod) is None


def test_running_and_finished():
    running = pod_with({"running": {"startedAt": "2024-01-01T00:00:00Z"}}, "Running")
    assert is_running(running) and not is_finished(running) and stuck_reason(running) is None
    done = pod_with({"terminated": {"exitCode": 0, "reason": "Completed"}}, "Succeeded")
    assert is_running(done) and is_finished(done)
    assert terminated_state(done)["exitCode"] == 0
    # a Failed phase is finished even when the container status lags behind
    assert is_finished(pod_with({"running": {}}, "Failed"))
    assert terminated_state(running) is None


def test_other_containers_are_ignored():
    pod = pod_with(None)
    pod["status"]["containerStatuses"] = [
        {"name": "sidecar", "state": {"terminated": {"exitCode": 1}}}
    ]
    assert terminated_state(pod) is None


def test_termination_message():
    pod = pod_with(
        {"terminated": {"exitCode": 1, "reason": "Error", "message": " boom \n"}}, "Failed"
    )
    assert termination_message(pod) == "Error (exit code 1); boom"
    evicted = pod_with({"running": {}}, "Failed", reason="Evicted", message="low disk")
    assert termination_message(evicted) == "Evicted: low disk"
    assert termination_message(pod_with(None, "Failed")) == "the pod ended in phase Failed"


def test_waiting_message():
    assert (
        waiting_message(pod_with({"waiting": {"reason": "ContainerCreating"}}))
        == "ContainerCreating"
    )
    pod = pod_with(None)
    assert waiting_message(pod) == ""
    pod["spec"]["nodeName"] = "node-1"
    assert waiting_message(pod) == "scheduled on node-1"


def test_parse_time():
    assert parse_time("1970-01-01T00:01:00Z") == 60
    assert parse_time(None) is None
    assert parse_time("garbage") is None
