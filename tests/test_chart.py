"""The helm chart (chart/r2dservice): lint, render, validate, and prove that its
configuration reaches r2dservice.

helm comes from $R2D_TEST_HELM (dev/services.sh installs it with dev/helm.sh and writes
the variable to its env.sh). No cluster is needed: manifests are rendered with
`helm template`, validated with kubernetes-validate --strict (offline schemas), and the
rendered configuration is run by r2dservice itself with the environment the Deployment
sets: `r2dservice build-pod` prints the build pod, and R2DService is initialized (not
started) to read its settings back.
"""

from __future__ import annotations

import base64
import copy
import hashlib
import json
import os
import re
import subprocess
import sys
import textwrap

import kubernetes_validate
import pytest
import yaml

from tests.support.service import REPO

CHART = os.path.join(REPO, "chart", "r2dservice")
NAMESPACE = "binder"
RELEASE = "r2dservice"
KUBE_VERSION = "1.30.0"
SHA = "0123456789abcdef0123456789abcdef01234567"
# What a Secret that the chart does not make (an existing one) holds, in these tests.
EXISTING_SECRET_VALUE = "value-of-an-existing-secret"

# Value sets the chart must render, lint and validate.
VALUE_SETS: dict[str, dict] = {
    "defaults": {},
    # The Kubernetes builder pushing with credentials the chart turns into a Secret.
    "kubernetes-credentials": {
        "imagePrefix": "127.0.0.1:5000/binder/r2d-",
        "registry": {"username": "pusher", "password": "s3cret"},
        "concurrentBuildLimit": 7,
        "maxQueueLength": 50,
        "replicas": 2,
        "db": {"url": "postgresql+psycopg://r2d:pw@postgres/r2d"},
        "build": {
            "namespace": "binder-builds",
            "image": {"pullPolicy": "IfNotPresent", "pullSecrets": ["quay-pull"]},
            # a Docker daemon the operator runs on the nodes
            "daemon": {"type": "host"},
            "dockerHost": "/var/run/dind/docker.sock",
            "nodeSelector": {"hub.jupyter.org/node-purpose": "user"},
            "tolerations": [
                {
                    "key": "hub.jupyter.org/dedicated",
                    "operator": "Equal",
                    "value": "user",
                    "effect": "NoSchedule",
                },
            ],
            "resources": {"requests": {"memory": "256Mi"}, "limits": {"memory": "1Gi"}},
            "stickyBuilds": True,
            "buildTimeout": 1800,
            "pendingGrace": 120,
            "maxAge": 7200,
            "extraLabels": {"team": "data"},
            "extraAnnotations": {"example.org/owner": "data-team"},
            "extraEnv": {
                "PIP_NO_CACHE_DIR": "1",
                "PIP_RETRIES": 5,
                "PIP_NO_INPUT": True,
                "EXTRA_TOKEN": {"valueFrom": {"secretKeyRef": {"name": "tokens", "key": "extra"}}},
            },
            "repo2dockerExtraArgs": ["--label=built-by=r2dservice"],
            "priorityClassName": "builds",
            "gitCredentials": {"existingSecret": "git-credentials"},
        },
    },
    # Everything secret comes from Secrets made elsewhere: zero-to-jupyterhub's hub
    # Secret for the token, an Opaque Secret with a config.json for the registry.
    "existing-secrets": {
        "imagePrefix": "127.0.0.1:5000/r2d-",
        "service": {"name": "builds"},
        "hub": {
            "baseUrl": "/jhub/",
            "existingSecret": {"name": "hub", "key": "hub.services.builds.apiToken"},
        },
        "registry": {"existingSecret": "registry-config", "existingSecretKey": "config.json"},
        "build": {"daemon": {"type": "external"}, "dockerHost": ""},
    },
    # The rootless build daemon, where the cluster allows user namespaces.
    "rootless-daemon": {
        "imagePrefix": "127.0.0.1:5000/r2d-",
        "build": {
            "daemon": {
                "type": "rootless",
                "extraArgs": ["--mtu=1400"],
                "resources": {"requests": {"cpu": "1"}},
                "imageCleaner": {"diskHighPercent": 70, "diskLowPercent": 50},
            },
            "nodeSelector": {"hub.jupyter.org/node-purpose": "user"},
            "networkPolicy": {
                "egressAllowRules": {"privateIPs": True},
                "egress": [{"to": [{"ipBlock": {"cidr": "203.0.113.0/24"}}]}],
            },
        },
    },
    # Builds as a repo2docker process in the service's pod, against the node's Docker.
    "local-builder": {
        "builder": "local",
        "imagePrefix": "127.0.0.1:5000/r2d-",
        "registry": {"username": "pusher", "password": "s3cret"},
        "build": {"buildTimeout": 900, "repo2dockerExtraArgs": ["--label=local=yes"]},
        "podSecurityContext": {
            "runAsNonRoot": True,
            "runAsUser": 1000,
            "supplementalGroups": [998],
        },
    },
    # The optional resources, and a metrics token.
    "network-policy": {
        "imagePrefix": "127.0.0.1:5000/r2d-",
        "networkPolicy": {
            "enabled": True,
            "ingress": [
                {
                    "from": [{"namespaceSelector": {"matchLabels": {"name": "monitoring"}}}],
                    "ports": [{"port": "http"}],
                },
            ],
            "egressAllowRules": {"cloudMetadataServer": True},
        },
        "pdb": {"enabled": True},
        "metrics": {"token": "scrape-me"},
        "hub": {"networkAccessLabel": False},
        "extraEnv": {
            "GITHUB_TOKEN": {"valueFrom": {"secretKeyRef": {"name": "gh", "key": "token"}}}
        },
    },
    # Settings as a dict, Python snippets, and custom values they read.
    "extra-config": {
        "imagePrefix": "127.0.0.1:5000/r2d-",
        "debug": True,
        "auth": {"buildScope": "", "adminScope": "custom:binder:admin"},
        "config": {
            "BuildManager": {"max_queue_length": 7},
            "KubernetesBuilder": {"reap_interval": 30},
        },
        "custom": {"priorityClass": "from-custom"},
        "extraConfig": {
            "20-second": "c.KubernetesBuilder.service_account = 'second'\n",
            "10-first": textwrap.dedent(
                """\
                c.KubernetesBuilder.service_account = 'first'
                c.KubernetesBuilder.priority_class_name = get_chart_value("custom.priorityClass")
                c.R2DService.keepalive_interval = 5.0
                """
            ),
        },
    },
}


# --- helpers ---------------------------------------------------------------------------


@pytest.fixture(scope="session")
def helm() -> str:
    path = os.environ.get("R2D_TEST_HELM")
    if not path:
        pytest.fail(
            "R2D_TEST_HELM is not set: run `bash dev/services.sh` (it installs helm with "
            "dev/helm.sh) and `source <state>/env.sh`, or use dev/test.sh, which does both.",
            pytrace=False,
        )
    if not os.access(path, os.X_OK):
        pytest.fail(
            f"R2D_TEST_HELM={path} is not an executable helm; run dev/helm.sh", pytrace=False
        )
    return path


def run_helm(
    helm: str, *args: str, values: dict | None = None, tmp_path=None
) -> subprocess.CompletedProcess:
    cmd = [helm, *args]
    if values:
        path = tmp_path / "values.yaml"
        path.write_text(yaml.safe_dump(values))
        cmd += ["-f", str(path)]
    # helm needs no cluster for these commands; keep it away from any kubeconfig.
    env = {**os.environ, "KUBECONFIG": os.devnull, "HELM_CACHE_HOME": str(tmp_path or "/tmp")}
    return subprocess.run(cmd, check=False, capture_output=True, text=True, timeout=120, env=env)


_rendered: dict[str, list[dict]] = {}


def render(helm: str, name: str, tmp_path_factory) -> list[dict]:
    """The manifests of VALUE_SETS[name] (rendered once per session)."""
    if name not in _rendered:
        tmp = tmp_path_factory.mktemp(f"render-{name}")
        proc = run_helm(
            helm,
            "template",
            RELEASE,
            CHART,
            "--namespace",
            NAMESPACE,
            "--kube-version",
            KUBE_VERSION,
            values=VALUE_SETS[name],
            tmp_path=tmp,
        )
        assert proc.returncode == 0, f"helm template ({name}) failed:\n{proc.stderr}"
        _rendered[name] = [d for d in yaml.safe_load_all(proc.stdout) if d]
    return copy.deepcopy(_rendered[name])


def find(
    docs: list[dict], kind: str, name: str | None = None, namespace: str | None = None
) -> dict:
    found = [
        d
        for d in docs
        if d["kind"] == kind
        and (name is None or d["metadata"]["name"] == name)
        and (namespace is None or d["metadata"].get("namespace", NAMESPACE) == namespace)
    ]
    assert len(found) == 1, (
        f"{len(found)} {kind} {name or ''} in {[(d['kind'], d['metadata']['name']) for d in docs]}"
    )
    return found[0]


def kinds(docs: list[dict]) -> list[tuple[str, str]]:
    return sorted((d["kind"], d["metadata"]["name"]) for d in docs)


def secret_data(secret: dict) -> dict[str, str]:
    return {k: base64.b64decode(v).decode() for k, v in (secret.get("data") or {}).items()}


def container(docs: list[dict]) -> dict:
    (c,) = find(docs, "Deployment")["spec"]["template"]["spec"]["containers"]
    return c


def env_of(docs: list[dict]) -> dict[str, dict]:
    return {e["name"]: e for e in container(docs)["env"]}


def resolve_env(docs: list[dict]) -> dict[str, str]:
    """The environment the Deployment gives r2dservice, with Secrets and fields resolved."""
    secrets = {d["metadata"]["name"]: secret_data(d) for d in docs if d["kind"] == "Secret"}
    out = {}
    for e in container(docs)["env"]:
        if "value" in e:
            out[e["name"]] = e["value"]
            continue
        source = e["valueFrom"]
        if "fieldRef" in source:
            assert source["fieldRef"]["fieldPath"] == "metadata.namespace"
            out[e["name"]] = NAMESPACE
        else:
            ref = source["secretKeyRef"]
            if ref["name"] in secrets:
                out[e["name"]] = secrets[ref["name"]][ref["key"]]
            else:
                out[e["name"]] = EXISTING_SECRET_VALUE
    return out


def materialize_config(docs: list[dict], folder) -> str:
    """Write the config Secret's files as the Deployment mounts them; the config file's path."""
    c = container(docs)
    (mount,) = [m for m in c["volumeMounts"] if m["name"] == "config"]
    volumes = {
        v["name"]: v for v in find(docs, "Deployment")["spec"]["template"]["spec"]["volumes"]
    }
    secret = secret_data(find(docs, "Secret", volumes["config"]["secret"]["secretName"]))
    for item in volumes["config"]["secret"]["items"]:
        (folder / item["path"]).write_text(secret[item["key"]])
    command = c["command"]
    assert command[:2] == ["r2dservice", "-f"]
    assert os.path.dirname(command[2]) == mount["mountPath"]
    return str(folder / os.path.basename(command[2]))


def service_env(docs: list[dict]) -> dict[str, str]:
    """This machine's environment without what would leak into r2dservice's settings,
    plus the Deployment's."""
    base = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(
            ("JUPYTERHUB_", "R2DSERVICE_", "DOCKER_", "POD_NAMESPACE", "KUBECONFIG")
        )
    }
    return {**base, **resolve_env(docs)}


def run_r2dservice(args: list[str], env: dict, cwd) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "r2dservice", *args],
        check=False,
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        cwd=cwd,
    )


# Initializes R2DService (as `r2dservice -f <config>` would, without starting it) and
# prints the settings the chart is responsible for.
READ_SETTINGS = textwrap.dedent(
    """\
    import json, sys
    from r2dservice.app import R2DService

    app = R2DService()
    app.initialize(["-f", sys.argv[1]])
    b, a = app.builder, app.authenticator
    out = {
        "ip": app.ip, "port": app.port, "base_url": app.base_url,
        "builder": type(b).__name__, "image_prefix": app.image_prefix, "pushes": app.pushes,
        "registry": type(app.registry).__name__,
        "docker_config_path": getattr(app.registry, "docker_config_path", None),
        "concurrent_build_limit": app.build_manager.concurrent_build_limit,
        "max_queue_length": app.build_manager.max_queue_length,
        "keepalive_interval": app.keepalive_interval,
        "metrics_token": app.metrics_token, "log_level": app.log_level,
        "auth_enabled": app.auth_enabled, "db_url": app.db_url,
    }
    if app.launcher is not None:
        out["launch_quotas"] = [app.launcher.per_repo_quota, app.launcher.per_repo_quota_higher]
    if a is not None:
        h = a.hub_auth
        out["auth"] = {
            "service_name": a.service_name, "api_url": h.api_url, "api_token": h.api_token,
            "client_id": h.oauth_client_id, "redirect_uri": h.oauth_redirect_uri,
            "access_scopes": sorted(a.access_scopes), "build_scope": a.build_scope,
            "admin_scope": a.admin_scope, "cookie_secret": a.cookie_secret,
        }
    traits = ["build_timeout", "repo2docker_extra_args"]
    if out["builder"] == "KubernetesBuilder":
        traits += ["namespace", "build_image", "push_secret", "push_secret_key", "docker_host",
                   "reap_interval", "service_account", "priority_class_name", "extra_labels",
                   "sticky_builds", "pending_grace", "max_age"]
    out["builder_settings"] = {t: getattr(b, t) for t in traits}
    print(json.dumps(out))
    """
)


def read_settings(docs: list[dict], tmp_path) -> dict:
    config = materialize_config(docs, tmp_path)
    proc = subprocess.run(
        [sys.executable, "-c", READ_SETTINGS, config],
        check=False,
        capture_output=True,
        text=True,
        timeout=120,
        env=service_env(docs),
        cwd=tmp_path,
    )
    assert proc.returncode == 0, (
        f"r2dservice did not take the chart's configuration:\n{proc.stderr}"
    )
    return json.loads(proc.stdout.strip().splitlines()[-1])


def build_pod(docs: list[dict], tmp_path) -> dict:
    config = materialize_config(docs, tmp_path)
    proc = run_r2dservice(
        ["build-pod", "-f", config, "gh/owner/repo/main", "--ref", SHA], service_env(docs), tmp_path
    )
    assert proc.returncode == 0, f"r2dservice build-pod failed:\n{proc.stderr}"
    return yaml.safe_load(proc.stdout)


# --- lint, render, validate ------------------------------------------------------------


@pytest.mark.parametrize("name", VALUE_SETS)
def test_helm_lint_strict(helm, name, tmp_path):
    proc = run_helm(
        helm,
        "lint",
        "--strict",
        CHART,
        "--namespace",
        NAMESPACE,
        values=VALUE_SETS[name],
        tmp_path=tmp_path,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "0 chart(s) failed" in proc.stdout


@pytest.mark.parametrize("name", VALUE_SETS)
def test_manifests_are_valid_kubernetes(helm, name, tmp_path_factory):
    docs = render(helm, name, tmp_path_factory)
    assert docs
    for doc in docs:
        try:
            kubernetes_validate.validate(doc, KUBE_VERSION, strict=True)
        except kubernetes_validate.ValidationError as e:
            pytest.fail(f"{doc['kind']} {doc['metadata']['name']} ({name}): {e}")


@pytest.mark.parametrize("name", VALUE_SETS)
def test_labels_and_selectors(helm, name, tmp_path_factory):
    docs = render(helm, name, tmp_path_factory)
    for doc in docs:
        labels = doc["metadata"]["labels"]
        for key in (
            "app.kubernetes.io/name",
            "app.kubernetes.io/instance",
            "app.kubernetes.io/component",
            "app.kubernetes.io/managed-by",
            "helm.sh/chart",
        ):
            assert key in labels, (doc["kind"], key)
        assert labels["component"] == labels["app.kubernetes.io/component"]
        assert labels["app.kubernetes.io/instance"] == RELEASE
    deployment = find(docs, "Deployment")
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    selector = deployment["spec"]["selector"]["matchLabels"]
    assert selector.items() <= pod_labels.items()
    assert find(docs, "Service")["spec"]["selector"] == selector
    # Build pods carry the same name and instance but another component: neither the
    # Deployment nor the Service may select them.
    assert selector["app.kubernetes.io/component"] == "service"
    values = json.loads(secret_data(find(docs, "Secret", RELEASE))["values.json"])
    assert values["build"]["extraLabels"]["app.kubernetes.io/instance"] == RELEASE


def test_default_resources(helm, tmp_path_factory):
    docs = render(helm, "defaults", tmp_path_factory)
    assert kinds(docs) == [
        ("ConfigMap", f"{RELEASE}-image-cleaner"),
        ("DaemonSet", f"{RELEASE}-build-daemon"),
        ("Deployment", RELEASE),
        ("NetworkPolicy", f"{RELEASE}-build"),
        ("NetworkPolicy", f"{RELEASE}-build-daemon"),
        ("PersistentVolumeClaim", f"{RELEASE}-db"),
        ("Role", RELEASE),
        ("RoleBinding", RELEASE),
        ("Secret", RELEASE),
        ("Service", RELEASE),
        ("ServiceAccount", RELEASE),
    ]
    service = find(docs, "Service")
    assert service["spec"]["type"] == "ClusterIP"
    assert service["spec"]["ports"] == [
        {"name": "http", "port": 8585, "targetPort": "http", "protocol": "TCP"}
    ]
    assert service["metadata"]["annotations"] == {
        "prometheus.io/scrape": "true",
        "prometheus.io/path": "/services/binder/metrics",
        "prometheus.io/port": "8585",
    }
    # Nothing generated: every render is the same (GitOps, helm upgrade).
    assert set(secret_data(find(docs, "Secret"))) == {"r2dservice_config.py", "values.json"}
    pvc = find(docs, "PersistentVolumeClaim")
    assert pvc["spec"] == {
        "accessModes": ["ReadWriteOnce"],
        "resources": {"requests": {"storage": "1Gi"}},
    }


def test_deployment_runs_an_external_hub_service(helm, tmp_path_factory):
    docs = render(helm, "defaults", tmp_path_factory)
    c = container(docs)
    assert c["image"] == f"quay.io/jupyterhub/r2dservice:{chart_yaml()['appVersion']}"
    assert c["command"] == ["r2dservice", "-f", "/etc/r2dservice/r2dservice_config.py"]
    assert c["ports"] == [{"name": "http", "containerPort": 8585, "protocol": "TCP"}]
    env = env_of(docs)
    assert {k: v["value"] for k, v in env.items() if "value" in v} == {
        "JUPYTERHUB_SERVICE_NAME": "binder",
        "JUPYTERHUB_API_URL": "http://hub:8081/hub/api",
        "JUPYTERHUB_BASE_URL": "/",
        "JUPYTERHUB_SERVICE_PREFIX": "/services/binder/",
        "JUPYTERHUB_SERVICE_URL": "http://0.0.0.0:8585",
        "JUPYTERHUB_OAUTH_CALLBACK_URL": "/services/binder/oauth_callback",
        "JUPYTERHUB_CLIENT_ID": "service-binder",
        "TRAITLETS_APPLICATION_RAISE_CONFIG_FILE_ERROR": "1",
    }
    # The token zero-to-jupyterhub generates for the hub.services entry, from its Secret.
    assert env["JUPYTERHUB_API_TOKEN"]["valueFrom"] == {
        "secretKeyRef": {"name": "hub", "key": "hub.services.binder.apiToken"}
    }
    assert "R2DSERVICE_COOKIE_SECRET" not in env  # derived from the token
    assert c["livenessProbe"]["httpGet"] == {"path": "/services/binder/versions", "port": "http"}
    assert c["readinessProbe"]["httpGet"] == {"path": "/services/binder/health", "port": "http"}
    assert c["securityContext"] == {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "capabilities": {"drop": ["ALL"]},
    }
    pod = find(docs, "Deployment")["spec"]["template"]
    assert pod["spec"]["securityContext"]["runAsNonRoot"] is True
    assert pod["spec"]["automountServiceAccountToken"] is True
    assert pod["spec"]["serviceAccountName"] == RELEASE
    assert pod["metadata"]["labels"]["hub.jupyter.org/network-access-hub"] == "true"
    # the configuration, a writable /tmp, and the build records' volume
    assert {m["mountPath"] for m in c["volumeMounts"]} == {
        "/etc/r2dservice",
        "/tmp",
        "/srv/r2dservice",
    }
    assert find(docs, "Deployment")["spec"]["strategy"] == {"type": "Recreate"}


def test_rbac_in_the_build_namespace(helm, tmp_path_factory):
    docs = render(helm, "kubernetes-credentials", tmp_path_factory)
    role = find(docs, "Role")
    assert role["metadata"]["namespace"] == "binder-builds"
    assert role["rules"] == [
        {
            "apiGroups": [""],
            "resources": ["pods"],
            "verbs": ["create", "list", "watch", "delete"],
        },
        {"apiGroups": [""], "resources": ["pods/log"], "verbs": ["get"]},
        # per-build git credentials: made, handed to the pod, deleted, reaped; never read
        {
            "apiGroups": [""],
            "resources": ["secrets"],
            "verbs": ["create", "list", "patch", "delete"],
        },
        # why a late build pod does not start (FailedMount, FailedScheduling)
        {"apiGroups": [""], "resources": ["events"], "verbs": ["list"]},
    ]
    binding = find(docs, "RoleBinding")
    assert binding["metadata"]["namespace"] == "binder-builds"
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": RELEASE, "namespace": NAMESPACE}
    ]
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "Role",
        "name": RELEASE,
    }


def test_registry_secret_from_credentials(helm, tmp_path_factory):
    docs = render(helm, "kubernetes-credentials", tmp_path_factory)
    secret = find(docs, "Secret", f"{RELEASE}-registry", NAMESPACE)
    assert secret["type"] == "kubernetes.io/dockerconfigjson"
    config = json.loads(secret_data(secret)[".dockerconfigjson"])
    # The auths key is the registry host of imagePrefix.
    assert config == {
        "auths": {
            "127.0.0.1:5000": {
                "username": "pusher",
                "password": "s3cret",
                "auth": base64.b64encode(b"pusher:s3cret").decode(),
            }
        }
    }
    # The service reads it as a file, for the existence check.
    c = container(docs)
    assert {"name": "registry", "mountPath": "/var/run/r2dservice/registry", "readOnly": True} in c[
        "volumeMounts"
    ]
    volumes = {
        v["name"]: v for v in find(docs, "Deployment")["spec"]["template"]["spec"]["volumes"]
    }
    assert volumes["registry"]["secret"] == {
        "secretName": f"{RELEASE}-registry",
        "items": [{"key": ".dockerconfigjson", "path": "config.json"}],
    }


def test_existing_secrets_are_used_not_made(helm, tmp_path_factory):
    docs = render(helm, "existing-secrets", tmp_path_factory)
    assert [d for d in docs if d["kind"] == "Secret"] == [find(docs, "Secret", RELEASE)]
    assert "hub.apiToken" not in secret_data(find(docs, "Secret"))
    env = env_of(docs)
    assert env["JUPYTERHUB_API_TOKEN"]["valueFrom"] == {
        "secretKeyRef": {"name": "hub", "key": "hub.services.builds.apiToken"}
    }
    assert env["JUPYTERHUB_SERVICE_PREFIX"]["value"] == "/jhub/services/builds/"
    assert env["JUPYTERHUB_API_URL"]["value"] == "http://hub:8081/jhub/hub/api"
    volumes = {
        v["name"]: v for v in find(docs, "Deployment")["spec"]["template"]["spec"]["volumes"]
    }
    assert volumes["registry"]["secret"] == {
        "secretName": "registry-config",
        "items": [{"key": "config.json", "path": "config.json"}],
    }


def test_local_builder_mounts_the_docker_socket(helm, tmp_path_factory):
    docs = render(helm, "local-builder", tmp_path_factory)
    assert not [d for d in docs if d["kind"] in ("Role", "RoleBinding")]
    pod = find(docs, "Deployment")["spec"]["template"]["spec"]
    assert pod["automountServiceAccountToken"] is False
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert volumes["docker-socket"]["hostPath"] == {
        "path": "/var/run/docker.sock",
        "type": "Socket",
    }
    env = env_of(docs)
    assert env["DOCKER_HOST"]["value"] == "unix:///var/run/docker.sock"
    assert env["DOCKER_CONFIG"]["value"] == "/var/run/r2dservice/docker"
    mounts = {m["mountPath"]: m for m in container(docs)["volumeMounts"]}
    # The push credentials inside a writable DOCKER_CONFIG (buildx writes beside them).
    assert mounts["/var/run/r2dservice/docker"]["name"] == "docker-config"
    assert mounts["/var/run/r2dservice/docker/config.json"] == {
        "name": "registry",
        "mountPath": "/var/run/r2dservice/docker/config.json",
        "subPath": "config.json",
        "readOnly": True,
    }
    assert mounts["/var/run/docker.sock"]["name"] == "docker-socket"


def test_network_policy_pdb_and_metrics_token(helm, tmp_path_factory):
    docs = render(helm, "network-policy", tmp_path_factory)
    policy = find(docs, "NetworkPolicy", RELEASE)
    assert (
        policy["spec"]["podSelector"]["matchLabels"]
        == find(docs, "Deployment")["spec"]["selector"]["matchLabels"]
    )
    first, extra = policy["spec"]["ingress"]
    assert first["ports"] == [{"port": "http"}]
    assert {
        "podSelector": {
            "matchLabels": {
                "app.kubernetes.io/name": "jupyterhub",
                "app.kubernetes.io/component": "proxy",
            }
        }
    } in first["from"]
    assert extra == VALUE_SETS["network-policy"]["networkPolicy"]["ingress"][0]
    egress = policy["spec"]["egress"]
    blocks = [p["ipBlock"] for rule in egress for p in rule.get("to", [])]
    assert {
        "cidr": "0.0.0.0/0",
        "except": ["10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "169.254.169.254/32"],
    } in blocks
    assert {"cidr": "169.254.169.254/32"} in blocks
    assert any(
        rule.get("ports") == [{"port": 53, "protocol": "UDP"}, {"port": 53, "protocol": "TCP"}]
        for rule in egress
    )
    pdb = find(docs, "PodDisruptionBudget")
    assert pdb["spec"]["maxUnavailable"] == 1
    assert secret_data(find(docs, "Secret", RELEASE))["metrics.token"] == "scrape-me"
    env = env_of(docs)
    assert env["R2DSERVICE_METRICS_TOKEN"]["valueFrom"]["secretKeyRef"] == {
        "name": RELEASE,
        "key": "metrics.token",
    }
    assert env["GITHUB_TOKEN"]["valueFrom"] == {"secretKeyRef": {"name": "gh", "key": "token"}}
    labels = find(docs, "Deployment")["spec"]["template"]["metadata"]["labels"]
    assert "hub.jupyter.org/network-access-hub" not in labels


# --- the schema ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "args, message",
    [
        (
            ["--set", "imagePrefx=127.0.0.1:5000/r2d-"],
            "additional properties 'imagePrefx' not allowed",
        ),
        (["--set", "build.nodeSelecter.a=b"], "additional properties 'nodeSelecter' not allowed"),
        (["--set", "hub.existingSecret.nam=hub"], "additional properties 'nam' not allowed"),
        (["--set", "networkPolicy.egressAllowRules.privateIps=false"], "'privateIps' not allowed"),
        (
            ["--set", "concurrentBuildLimit=four"],
            "/concurrentBuildLimit': got string, want integer",
        ),
        (["--set", "build.buildTimeout=-5"], "/build/buildTimeout"),
        (["--set", "builder=docker"], "/builder': value must be one of 'kubernetes', 'local'"),
        (["--set", "service.port=http"], "/service/port': got string, want integer"),
        (["--set", "build.stickyBuilds=maybe"], "/build/stickyBuilds': got string, want boolean"),
        (["--set", "imagePrefix=Registry.Example:5000/R2D-"], "/imagePrefix"),
        (["--set", "build.dockerHost=docker.sock"], "/build/dockerHost"),
        (
            ["--set", "config.kubernetesBuilder.namespace=x"],
            "/config': additional properties 'kubernetesBuilder'",
        ),
        (["--set", "extraConfig.a=null", "--set-json", "extraConfig.b=[1]"], "/extraConfig/b"),
    ],
)
def test_schema_rejects_typos_and_wrong_types(helm, args, message, tmp_path):
    proc = run_helm(helm, "template", RELEASE, CHART, *args, tmp_path=tmp_path)
    assert proc.returncode != 0, f"helm template accepted {args}"
    assert "schema" in proc.stderr and message in proc.stderr, proc.stderr


def test_template_errors_say_what_to_fix(helm, tmp_path):
    proc = run_helm(
        helm, "template", RELEASE, CHART, "--set", "hub.existingSecret.name=", tmp_path=tmp_path
    )
    assert proc.returncode != 0
    assert "hub.existingSecret.name is empty and hub.apiToken too" in proc.stderr
    proc = run_helm(helm, "template", RELEASE, CHART, "--set", "replicas=2", tmp_path=tmp_path)
    assert proc.returncode != 0
    assert "replicas > 1 share one history: set db.url" in proc.stderr
    proc = run_helm(
        helm,
        "template",
        RELEASE,
        CHART,
        "--set",
        "pdb.enabled=true,pdb.minAvailable=1",
        tmp_path=tmp_path,
    )
    assert proc.returncode != 0
    assert "either minAvailable or maxUnavailable" in proc.stderr


def walk_keys(value: dict, path=()):
    for key, sub in value.items():
        yield path + (key,), sub
        if isinstance(sub, dict) and sub:
            yield from walk_keys(sub, path + (key,))


def test_schema_knows_every_value():
    with open(os.path.join(CHART, "values.yaml")) as f:
        values = yaml.safe_load(f)
    with open(os.path.join(CHART, "values.schema.json")) as f:
        schema = json.load(f)
    for path, _ in walk_keys(values):
        node = schema
        for key in path:
            props = node.get("properties")
            if props is None:
                break  # a free-form map (labels, Kubernetes objects)
            assert key in props, f"values.schema.json has no {'.'.join(path)}"
            node = props[key]


def test_every_value_is_commented():
    """Each setting of values.yaml has a comment right above it (or on its line). Keys
    inside Kubernetes objects and maps (resources, securityContext, label sets) are data."""
    with open(os.path.join(CHART, "values.schema.json")) as f:
        schema = json.load(f)
    with open(os.path.join(CHART, "values.yaml")) as f:
        lines = f.read().splitlines()
    stack: list[tuple[int, str]] = []  # (indent, key) of the keys above this line
    previous = ""
    missing, seen = [], 0
    for number, line in enumerate(lines, 1):
        key = re.match(r"^(\s*)([A-Za-z][\w.-]*):(\s|$)", line)
        if key:
            indent = len(key.group(1))
            while stack and stack[-1][0] >= indent:
                stack.pop()
            node = schema
            for _, parent in stack:
                node = (node.get("properties") or {}).get(parent, {})
            if key.group(2) in (node.get("properties") or {}):  # a setting of the chart
                seen += 1
                if "#" not in line and not previous.startswith("#"):
                    missing.append(
                        f"line {number}: {'.'.join([k for _, k in stack] + [key.group(2)])}"
                    )
            stack.append((indent, key.group(2)))
        if line.strip():
            previous = line.strip()
    assert seen > 100
    assert not missing, "values without a comment: " + ", ".join(missing)


def chart_yaml() -> dict:
    with open(os.path.join(CHART, "Chart.yaml")) as f:
        return yaml.safe_load(f)


def test_chart_metadata_follows_the_code():
    from r2dservice._version import __version__
    from r2dservice.builders.kubernetes import DEFAULT_BUILD_IMAGE

    chart = chart_yaml()
    assert chart["apiVersion"] == "v2"
    assert chart["name"] == "r2dservice"
    assert chart["appVersion"] == __version__
    with open(os.path.join(CHART, "values.yaml")) as f:
        values = yaml.safe_load(f)
    image = values["build"]["image"]
    assert f"{image['name']}:{image['tag']}" == DEFAULT_BUILD_IMAGE


# --- the configuration reaches r2dservice ---------------------------------------------------


@pytest.mark.parametrize("name", VALUE_SETS)
def test_rendered_config_is_python(helm, name, tmp_path_factory):
    data = secret_data(find(render(helm, name, tmp_path_factory), "Secret", RELEASE))
    compile(data["r2dservice_config.py"], "r2dservice_config.py", "exec")
    values = json.loads(data["values.json"])
    # Credentials stay out of the configuration files.
    assert "s3cret" not in data["values.json"] and "s3cret" not in data["r2dservice_config.py"]
    for snippet in values["extraConfig"].values():
        compile(snippet, "extraConfig", "exec")


def test_build_pod_reflects_the_chart(helm, tmp_path_factory, tmp_path):
    docs = render(helm, "kubernetes-credentials", tmp_path_factory)
    pod = build_pod(docs, tmp_path)
    kubernetes_validate.validate(pod, KUBE_VERSION, strict=True)
    build = VALUE_SETS["kubernetes-credentials"]["build"]
    spec = pod["spec"]
    assert pod["metadata"]["namespace"] == "binder-builds"
    assert pod["metadata"]["labels"]["app.kubernetes.io/instance"] == RELEASE
    assert pod["metadata"]["labels"]["team"] == "data"
    assert pod["metadata"]["annotations"]["example.org/owner"] == "data-team"
    assert pod["metadata"]["annotations"]["r2dservice.jupyter.org/image"].startswith(
        "127.0.0.1:5000/binder/r2d-"
    )
    assert spec["nodeSelector"] == build["nodeSelector"]
    assert spec["tolerations"] == build["tolerations"]
    assert spec["activeDeadlineSeconds"] == 1800
    assert spec["priorityClassName"] == "builds"
    assert spec["imagePullSecrets"] == [{"name": "quay-pull"}]
    (c,) = spec["containers"]
    assert c["image"] == "quay.io/jupyterhub/repo2docker:2026.04.0"
    assert c["imagePullPolicy"] == "IfNotPresent"
    assert c["resources"] == build["resources"]
    assert "--label=built-by=r2dservice" in c["args"]
    assert "--push" in c["args"]
    env = {e["name"]: e for e in c["env"]}
    assert env["PIP_NO_CACHE_DIR"]["value"] == "1"
    assert (env["PIP_RETRIES"]["value"], env["PIP_NO_INPUT"]["value"]) == ("5", "true")
    assert env["EXTRA_TOKEN"]["valueFrom"] == build["extraEnv"]["EXTRA_TOKEN"]["valueFrom"]
    assert env["GIT_CREDENTIAL_ENV"]["valueFrom"]["secretKeyRef"] == {
        "name": "git-credentials",
        "key": "credentials",
    }
    volumes = {v["name"]: v for v in spec["volumes"]}
    assert volumes["docker-socket"]["hostPath"]["path"] == "/var/run/dind/docker.sock"
    # The same Secret the chart made for the service's registry check.
    (push,) = [
        v
        for v in spec["volumes"]
        if "secret" in v and v["secret"]["secretName"] == f"{RELEASE}-registry"
    ]
    assert push["secret"]["items"][0]["key"] == ".dockerconfigjson"
    mounts = {m["name"]: m for m in c["volumeMounts"]}
    assert mounts[push["name"]]["mountPath"].endswith("/config.json")


def test_build_pod_with_existing_secrets(helm, tmp_path_factory, tmp_path):
    docs = render(helm, "existing-secrets", tmp_path_factory)
    pod = build_pod(docs, tmp_path)
    kubernetes_validate.validate(pod, KUBE_VERSION, strict=True)
    assert pod["metadata"]["namespace"] == NAMESPACE
    volumes = pod["spec"]["volumes"]
    assert not [v for v in volumes if "hostPath" in v]  # dockerHost "" mounts nothing
    (push,) = [v for v in volumes if "secret" in v]
    assert push["secret"]["secretName"] == "registry-config"
    assert push["secret"]["items"][0]["key"] == "config.json"


def test_service_settings_kubernetes(helm, tmp_path_factory, tmp_path):
    docs = render(helm, "kubernetes-credentials", tmp_path_factory)
    s = read_settings(docs, tmp_path)
    secret = secret_data(find(docs, "Secret", RELEASE))
    assert (s["ip"], s["port"], s["base_url"]) == ("0.0.0.0", 8585, "/services/binder/")
    assert s["builder"] == "KubernetesBuilder"
    assert s["image_prefix"] == "127.0.0.1:5000/binder/r2d-"
    assert s["registry"] == "RegistryImageChecker" and s["pushes"] is True
    # The check reads the file the Deployment mounts from the push Secret.
    assert s["docker_config_path"] == "/var/run/r2dservice/registry/config.json"
    assert (s["concurrent_build_limit"], s["max_queue_length"]) == (7, 50)
    assert s["auth"] == {
        "service_name": "binder",
        "api_url": "http://hub:8081/hub/api",
        "api_token": EXISTING_SECRET_VALUE,
        "client_id": "service-binder",
        "redirect_uri": "/services/binder/oauth_callback",
        "access_scopes": ["access:services!service=binder"],
        "build_scope": "custom:r2dservice:build",
        "admin_scope": "custom:r2dservice:admin",
        # derived from the token: the same in every replica and render
        "cookie_secret": hashlib.sha256(
            b"r2dservice cookie secret\0" + EXISTING_SECRET_VALUE.encode()
        ).hexdigest(),
    }
    # The URL with its password comes from the Secret, not values.json.
    assert secret["db.url"] == s["db_url"] == "postgresql+psycopg://r2d:pw@postgres/r2d"
    assert "pw@" not in secret["values.json"]
    b = s["builder_settings"]
    assert b["namespace"] == "binder-builds"
    assert b["build_image"] == "quay.io/jupyterhub/repo2docker:2026.04.0"
    assert (b["push_secret"], b["push_secret_key"]) == (f"{RELEASE}-registry", ".dockerconfigjson")
    assert b["docker_host"] == "/var/run/dind/docker.sock"
    assert (b["build_timeout"], b["pending_grace"], b["max_age"]) == (1800, 120, 7200)
    assert b["sticky_builds"] is True
    assert b["extra_labels"] == {"app.kubernetes.io/instance": RELEASE, "team": "data"}


def test_service_settings_existing_secrets(helm, tmp_path_factory, tmp_path):
    s = read_settings(render(helm, "existing-secrets", tmp_path_factory), tmp_path)
    assert s["base_url"] == "/jhub/services/builds/"
    assert s["auth"]["service_name"] == "builds"
    assert s["auth"]["api_token"] == EXISTING_SECRET_VALUE
    assert s["auth"]["api_url"] == "http://hub:8081/jhub/hub/api"
    assert s["auth"]["redirect_uri"] == "/jhub/services/builds/oauth_callback"
    assert s["auth"]["access_scopes"] == ["access:services!service=builds"]
    assert s["docker_config_path"] == "/var/run/r2dservice/registry/config.json"
    assert s["builder_settings"]["docker_host"] is None
    assert s["builder_settings"]["push_secret"] == "registry-config"


def test_service_settings_local_builder(helm, tmp_path_factory, tmp_path):
    s = read_settings(render(helm, "local-builder", tmp_path_factory), tmp_path)
    assert s["builder"] == "LocalBuilder"
    assert s["pushes"] is True and s["registry"] == "RegistryImageChecker"
    assert s["builder_settings"] == {
        "build_timeout": 900,
        "repo2docker_extra_args": ["--label=local=yes"],
    }


def test_service_settings_metrics_token(helm, tmp_path_factory, tmp_path):
    s = read_settings(render(helm, "network-policy", tmp_path_factory), tmp_path)
    assert s["metrics_token"] == "scrape-me"


def test_service_settings_config_and_extra_config(helm, tmp_path_factory, tmp_path):
    s = read_settings(render(helm, "extra-config", tmp_path_factory), tmp_path)
    # `config` wins over the structured values...
    assert s["max_queue_length"] == 7
    assert s["builder_settings"]["reap_interval"] == 30
    # ...and extraConfig runs last, in the order of its names, with the chart's values.
    assert s["builder_settings"]["service_account"] == "second"
    assert s["builder_settings"]["priority_class_name"] == "from-custom"
    assert s["keepalive_interval"] == 5.0
    assert s["log_level"] == 10
    assert (s["auth"]["build_scope"], s["auth"]["admin_scope"]) == ("", "custom:binder:admin")


def test_service_settings_defaults(helm, tmp_path_factory, tmp_path):
    s = read_settings(render(helm, "defaults", tmp_path_factory), tmp_path)
    assert s["builder"] == "KubernetesBuilder"
    assert s["builder_settings"]["namespace"] == NAMESPACE
    assert s["builder_settings"]["push_secret"] == ""
    assert s["auth_enabled"] is True and s["log_level"] == 20
    # build records outlive the pod: sqlite on the chart's volume
    assert s["db_url"] == "sqlite:////srv/r2dservice/r2dservice.sqlite"


def test_extra_config_errors_name_the_snippet(helm, tmp_path):
    proc = run_helm(
        helm,
        "template",
        RELEASE,
        CHART,
        "--namespace",
        NAMESPACE,
        "--set",
        "extraConfig.50-broken=c.R2DService.port = undefined_name",
        tmp_path=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    docs = [d for d in yaml.safe_load_all(proc.stdout) if d]
    config = materialize_config(docs, tmp_path)
    result = run_r2dservice(
        ["build-pod", "-f", config, "gh/owner/repo/main", "--ref", SHA], service_env(docs), tmp_path
    )
    assert result.returncode != 0
    assert "<extraConfig.50-broken>" in result.stderr and "undefined_name" in result.stderr


# --- the hub side: NOTES print the hub's values -----------------------------------------------


def notes_and_manifest(helm: str, tmp_path, *args: str) -> tuple[str, list[dict]]:
    proc = run_helm(
        helm,
        "install",
        RELEASE,
        CHART,
        "--dry-run=client",
        "--namespace",
        NAMESPACE,
        *args,
        tmp_path=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    manifest, _, notes = proc.stdout.partition("NOTES:\n")
    docs = [d for d in yaml.safe_load_all(manifest.split("MANIFEST:", 1)[1]) if d]
    return notes, docs


# `kubectl get secret --namespace NS NAME -o jsonpath={.data.KEY}` from rendered Secrets.
KUBECTL_STUB = textwrap.dedent(
    """\
    import json, os, sys

    args = sys.argv[1:]
    assert args[:2] == ["get", "secret"], args
    rest, name, path = args[2:], None, None
    while rest:
        arg = rest.pop(0)
        if arg in ("--namespace", "-n"):
            assert rest.pop(0) == os.environ["FAKE_NAMESPACE"], args
        elif arg == "-o":
            path = rest.pop(0)
        else:
            name = arg
    assert path.startswith("jsonpath={.data.") and path.endswith("}"), path
    key = path[len("jsonpath={.data."):-1].replace("\\\\.", ".")
    with open(os.environ["FAKE_SECRETS"]) as f:
        sys.stdout.write(json.load(f)[name]["data"][key])
    """
)


def run_snippet(notes: str, docs: list[dict], tmp_path) -> dict:
    """Run the shell snippet of the NOTES as an operator would, with a kubectl that
    answers from the rendered manifests; the values file it writes."""
    snippet = notes[notes.index("cat > r2dservice-hub.yaml") : notes.index("\nEOF\n") + 5]
    secrets = {d["metadata"]["name"]: d for d in docs if d["kind"] == "Secret"}
    (tmp_path / "secrets.json").write_text(json.dumps(secrets))
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    kubectl = bin_dir / "kubectl"
    kubectl.write_text(f"#!{sys.executable}\n" + KUBECTL_STUB)
    kubectl.chmod(0o755)
    env = {
        **os.environ,
        "PATH": f"{bin_dir}:{os.environ['PATH']}",
        "FAKE_SECRETS": str(tmp_path / "secrets.json"),
        "FAKE_NAMESPACE": NAMESPACE,
    }
    proc = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", snippet],
        cwd=tmp_path,
        check=False,
        capture_output=True,
        text=True,
        env=env,
    )
    assert proc.returncode == 0, proc.stderr
    return yaml.safe_load((tmp_path / "r2dservice-hub.yaml").read_text())


# Checks the hub's side with JupyterHub itself: the scopes exist once the custom scopes
# are defined, the role names are valid, and every field of the service entry is one a
# JupyterHub service has (as zero-to-jupyterhub passes them on: name from the key,
# apiToken as api_token).
CHECK_HUB_VALUES = textwrap.dedent(
    """\
    import json, sys
    from jupyterhub import roles, scopes
    from jupyterhub.services.service import Service

    hub = json.loads(sys.argv[1])["hub"]
    custom = hub.get("config", {}).get("JupyterHub", {}).get("custom_scopes", {})
    if custom:
        scopes.define_custom_scopes(custom)
    fields = set(Service.class_traits())
    for key, entry in hub["services"].items():
        entry = dict(entry, name=key)
        if "apiToken" in entry:
            entry["api_token"] = entry.pop("apiToken")
        unknown = set(entry) - fields
        assert not unknown, f"not JupyterHub service fields: {unknown}"
        scopes._check_scopes_exist(entry.get("oauth_client_allowed_scopes", []))
    for name, role in hub["loadRoles"].items():
        roles._validate_role_name(name)
        scopes._check_scopes_exist(role["scopes"])
    print("ok")
    """
)


def check_with_jupyterhub(hub_values: dict) -> None:
    proc = subprocess.run(
        [sys.executable, "-c", CHECK_HUB_VALUES, json.dumps(hub_values)],
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0 and proc.stdout.strip() == "ok", proc.stderr


def test_notes_print_the_hub_values(helm, tmp_path):
    notes, docs = notes_and_manifest(
        helm, tmp_path, "--set", "imagePrefix=127.0.0.1:5000/r2d-,hub.apiToken=chosen-token"
    )
    assert "WARNING" not in notes
    hub_values = run_snippet(notes, docs, tmp_path)
    service = find(docs, "Service")
    token = secret_data(find(docs, "Secret", RELEASE))["hub.apiToken"]
    assert token == "chosen-token"
    assert hub_values["hub"]["services"] == {
        "binder": {
            "url": f"http://{service['metadata']['name']}:{service['spec']['ports'][0]['port']}",
            "apiToken": token,
            "oauth_client_allowed_scopes": [
                "custom:r2dservice:build",
                "custom:r2dservice:admin",
                "servers!user",
            ],
            "oauth_no_confirm": True,
        }
    }
    custom = hub_values["hub"]["config"]["JupyterHub"]["custom_scopes"]
    assert set(custom) == {"custom:r2dservice:build", "custom:r2dservice:admin"}
    roles = hub_values["hub"]["loadRoles"]
    assert roles["user"]["scopes"] == [
        "self",
        "access:services!service=binder",
        "custom:r2dservice:build",
    ]
    assert set(roles["r2dservice-admins"]["scopes"]) == {
        "access:services!service=binder",
        "custom:r2dservice:build",
        "custom:r2dservice:admin",
    }
    check_with_jupyterhub(hub_values)


def test_notes_with_a_token_from_the_hub(helm, tmp_path):
    """The default: no token to copy, the hub makes it."""
    notes, docs = notes_and_manifest(
        helm,
        tmp_path,
        "--set",
        "auth.adminScope=",
        "--set",
        "fullnameOverride=builder",
    )
    assert "WARNING: imagePrefix is not set" in notes
    hub_values = run_snippet(notes, docs, tmp_path)
    # zero-to-jupyterhub generates the token and keeps it in its Secret "hub".
    assert hub_values["hub"]["services"]["binder"] == {
        "url": "http://builder:8585",
        "oauth_client_allowed_scopes": ["custom:r2dservice:build", "servers!user"],
        "oauth_no_confirm": True,
    }
    assert "r2dservice-admins" not in hub_values["hub"]["loadRoles"]
    check_with_jupyterhub(hub_values)


def test_notes_give_the_service_a_role_to_count_servers_for_the_repo_quota(helm, tmp_path):
    notes, docs = notes_and_manifest(
        helm,
        tmp_path,
        "--set",
        "hub.apiToken=chosen-token,launch.perRepoQuota=3,launch.perRepoQuotaHigher=10",
    )
    hub_values = run_snippet(notes, docs, tmp_path)
    assert hub_values["hub"]["loadRoles"]["r2dservice-service"] == {
        "scopes": ["list:users", "read:servers"],
        "services": ["binder"],
    }
    check_with_jupyterhub(hub_values)
    assert read_settings(docs, tmp_path)["launch_quotas"] == [3, 10]
    # Without a quota, the service gets no role.
    (tmp_path / "none").mkdir()
    notes, docs = notes_and_manifest(helm, tmp_path / "none", "--set", "hub.apiToken=chosen-token")
    hub_values = run_snippet(notes, docs, tmp_path / "none")
    assert "r2dservice-service" not in hub_values["hub"]["loadRoles"]


async def test_rbac_grants_exactly_the_calls_the_builder_makes(helm, tmp_path_factory):
    """Run the Kubernetes builder (a build with per-request credentials, a late pod, the
    reaper) against the stand-in API; authorize each request it made as the API server
    would with the chart's Role and RoleBinding (tests/fakes/kubeauth.py): all allowed,
    and nothing in the Role that the builder never uses."""
    import asyncio
    from urllib.parse import parse_qsl, urlsplit

    from r2dservice.builders.base import make_build_request
    from r2dservice.builders.kubernetes import KubernetesBuilder
    from tests.fakes import kubeauth
    from tests.fakes.kubeapi import FakeKubeAPI

    docs = render(helm, "kubernetes-credentials", tmp_path_factory)
    role, binding = find(docs, "Role"), find(docs, "RoleBinding")
    rbac = kubeauth.RBAC()
    rbac.add(role)
    rbac.add(binding)
    [subject] = binding["subjects"]
    user = kubeauth.service_account_user(subject["namespace"], subject["name"])
    granted = {(r, v) for rule in role["rules"] for r in rule["resources"] for v in rule["verbs"]}
    ns = role["metadata"]["namespace"]
    async with FakeKubeAPI() as kube:
        builder = KubernetesBuilder(k8s_api_url=kube.url, namespace=ns, push_secret="push")
        builder.finished_pod_linger = 0
        # late at once: the build reads its pod's Events while it waits
        builder.pending_grace = 0
        builder.events_interval = builder.poll_interval = 0.05
        await builder.start()
        try:
            url = "https://u:tok@git.example/o/r"
            req = make_build_request(
                image_name="r.example/o-r:1",
                repo_url=url,
                ref="a" * 40,
                provider="git",
                spec=url,
                push=True,
            )
            task = asyncio.create_task(builder.build(req, lambda e: None))
            await kube.wait_for_pod(req.name, ns)
            for _ in range(500):  # the Secret, owned by the pod
                if kube.secrets and next(iter(kube.secrets.values()))["metadata"].get(
                    "ownerReferences"
                ):
                    break
                await asyncio.sleep(0.01)
            else:
                raise AssertionError("the builder made no credentials Secret for its pod")
            while not kube.stats["event-list"].requests:
                await asyncio.sleep(0.01)
            kube.start_container(req.name, namespace=ns)
            kube.log(req.name, '{"phase": "building", "message": "hi"}', namespace=ns)
            kube.finish(req.name, 0, namespace=ns)
            await asyncio.wait_for(task, 10)
            await kube.wait_gone(req.name, ns)
            await builder.reap()
        finally:
            await builder.stop()
    requests = [
        kubeauth.request_attributes(m, urlsplit(p).path, dict(parse_qsl(urlsplit(p).query)))
        for m, p in kube.request_log
    ]
    requests = [a for a in requests if a.resource_request]
    refused = [
        kubeauth.forbidden_message(user, a) for a in requests if not rbac.authorize(user, a)[0]
    ]
    assert refused == []
    used = {(a.resource + (f"/{a.subresource}" if a.subresource else ""), a.verb) for a in requests}
    assert used == granted, f"unused: {granted - used}; not granted: {used - granted}"
