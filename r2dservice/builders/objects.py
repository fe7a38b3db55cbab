"""The build pod: make it from a BuildRequest, and read a build back from it. Pure: no I/O.

Like KubeSpawner's objects.py: everything here is a function of its arguments, so every
shape of pod the service can create is unit-tested and validated against the Kubernetes
schema without a cluster.

Pods are kubernetes_asyncio models on the way out (make_build_pod) and plain JSON dicts
on the way in (what the watch delivers): deserializing every watch event into models
would cost CPU for fields we never read.
"""

from __future__ import annotations

import base64
import copy
import datetime
import hashlib
import json
import re
from collections.abc import Iterable, Mapping
from types import MappingProxyType
from typing import Any

from kubernetes_asyncio.client import models as k8s

from .base import BuildRequest
from .repo2docker import deadline_seconds
from .repo2docker import repo2docker_args as _repo2docker_args

CONTAINER_NAME = "builder"

# Labels every build pod carries; the shared watch selects on these (plus extra_labels).
BASE_LABELS = {
    "app.kubernetes.io/name": "r2dservice",
    "app.kubernetes.io/component": "build",
    "app.kubernetes.io/managed-by": "r2dservice",
}
ANNOTATION_PREFIX = "r2dservice.jupyter.org/"
PROVIDER_LABEL = ANNOTATION_PREFIX + "provider"

# Where the docker socket and the push credentials appear inside the build container.
DOCKER_SOCKET_MOUNT = "/var/run/docker.sock"
DOCKER_CONFIG_DIR = "/var/run/r2dservice/docker"

_LABEL_VALUE_RE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
_LABEL_NAME_RE = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")
_DNS_SUBDOMAIN_RE = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_DNS_LABEL_RE = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")


class BuildPodConfig:
    """The operator's configuration of build pods, as immutable data: KubernetesBuilder's
    traits tagged `pod=True`, by name (KubernetesBuilder.pod_config() makes one;
    kubernetes.build_pod_config(**overrides) makes one from the trait defaults).

    Dicts and lists of dicts take the Kubernetes API's shape (camelCase or snake_case keys),
    as in KubeSpawner's config: `{"key": "gpu", "operator": "Exists"}` for a toleration.
    """

    __slots__ = ("_values",)

    def __init__(self, values: Mapping[str, Any]):
        object.__setattr__(self, "_values", MappingProxyType(copy.deepcopy(dict(values))))

    def __getattr__(self, name: str) -> Any:
        try:
            return self._values[name]
        except KeyError:
            raise AttributeError(f"BuildPodConfig has no setting {name!r}") from None

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError("BuildPodConfig is immutable: use replace()")

    def replace(self, **changes: Any) -> BuildPodConfig:
        """A copy with `changes` (names it already has only)."""
        unknown = set(changes) - set(self._values)
        if unknown:
            raise TypeError(f"BuildPodConfig has no settings {sorted(unknown)}")
        return BuildPodConfig({**self._values, **changes})

    def as_dict(self) -> dict[str, Any]:
        return copy.deepcopy(dict(self._values))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, BuildPodConfig) and dict(self._values) == dict(other._values)

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return (
            "BuildPodConfig("
            + ", ".join(f"{k}={v!r}" for k, v in sorted(self._values.items()))
            + ")"
        )


# --- making the pod ---------------------------------------------------------------


def build_labels(config: BuildPodConfig) -> dict[str, str]:
    """The labels that select this service's build pods (the watch's selector)."""
    return {**BASE_LABELS, **_check_labels(config.extra_labels)}


def label_selector(config: BuildPodConfig) -> str:
    return ",".join(f"{k}={v}" for k, v in sorted(build_labels(config).items()))


def repo2docker_args(request: BuildRequest, config: BuildPodConfig) -> list[str]:
    """The build container's command line: repo2docker builds (and pushes), never runs."""
    return ["jupyter-repo2docker"] + _repo2docker_args(
        request,
        user_id=config.user_id,
        user_name=config.user_name,
        extra_args=config.repo2docker_extra_args,
        inline_cache=config.warm_rebuilds,
    )


# The key of a build's credentials Secret that holds git-credential(1) helper output.
CREDENTIALS_KEY = "credentials"


def credentials_secret_name(request: BuildRequest) -> str:
    """The per-build Secret with the request's git credentials (a DNS subdomain)."""
    return f"{request.name}-git"


def make_credentials_secret(
    request: BuildRequest, config: BuildPodConfig, *, owner_uid: str | None = None
) -> k8s.V1Secret:
    """The Secret that hands a build pod the request's git credentials (GIT_CREDENTIAL_ENV),
    labelled like its pod (so the reaper finds leftovers); owned by the pod when
    `owner_uid` is given (Kubernetes deletes it with the pod)."""
    if not request.credentials:
        raise ValueError("the request has no credentials")
    return k8s.V1Secret(
        api_version="v1",
        kind="Secret",
        type="Opaque",
        metadata=k8s.V1ObjectMeta(
            name=credentials_secret_name(request),
            namespace=config.namespace,
            labels=_pod_labels(request, config),
            annotations={ANNOTATION_PREFIX + "build": request.name},
            owner_references=[owner_reference(request.name, owner_uid)] if owner_uid else None,
        ),
        data={CREDENTIALS_KEY: base64.b64encode(request.credentials.encode()).decode()},
    )


def owner_reference(pod_name: str, uid: str) -> k8s.V1OwnerReference:
    """A reference to the build pod, for objects that live and die with it."""
    return k8s.V1OwnerReference(api_version="v1", kind="Pod", name=pod_name, uid=uid)


def make_build_pod(
    request: BuildRequest, config: BuildPodConfig, *, sticky_node: str | None = None
) -> k8s.V1Pod:
    """The pod that builds `request` under `config`.

    `sticky_node`: the node this repository's builds prefer (see sticky_node()), for
    the layer cache of the Docker daemon there; None for no preference.
    """
    if not _DNS_LABEL_RE.match(request.name) or len(request.name) > 63:
        raise ValueError(f"build name {request.name!r} is not a DNS-1123 label")

    volumes: list[k8s.V1Volume] = []
    mounts: list[k8s.V1VolumeMount] = []
    env: list[k8s.V1EnvVar] = []

    socket_path, docker_url = _docker_host(config.docker_host)
    if socket_path:
        volumes.append(
            k8s.V1Volume(
                name="docker-socket",
                host_path=k8s.V1HostPathVolumeSource(path=socket_path, type="Socket"),
            )
        )
        mounts.append(k8s.V1VolumeMount(name="docker-socket", mount_path=DOCKER_SOCKET_MOUNT))
    elif docker_url:
        env.append(k8s.V1EnvVar(name="DOCKER_HOST", value=docker_url))

    if request.push and config.push_secret:
        # The credentials reach the container as a file, never as an environment
        # variable (env shows up in `kubectl describe` and in crash dumps). The
        # folder around it is an emptyDir because buildx writes its state there.
        volumes.append(k8s.V1Volume(name="docker-config", empty_dir=k8s.V1EmptyDirVolumeSource()))
        volumes.append(
            k8s.V1Volume(
                name="push-secret",
                secret=k8s.V1SecretVolumeSource(
                    secret_name=config.push_secret,
                    items=[k8s.V1KeyToPath(key=config.push_secret_key, path="config.json")],
                ),
            )
        )
        mounts.append(k8s.V1VolumeMount(name="docker-config", mount_path=DOCKER_CONFIG_DIR))
        mounts.append(
            k8s.V1VolumeMount(
                name="push-secret",
                mount_path=f"{DOCKER_CONFIG_DIR}/config.json",
                sub_path="config.json",
                read_only=True,
            )
        )
        env.append(k8s.V1EnvVar(name="DOCKER_CONFIG", value=DOCKER_CONFIG_DIR))

    # repo2docker's image configures git's `env` credential helper, which answers with
    # GIT_CREDENTIAL_ENV (as BinderHub uses it); the value stays in a Secret: the
    # build's own when the request has credentials, else the operator's.
    if request.credentials:
        secret, key = credentials_secret_name(request), CREDENTIALS_KEY
    else:
        secret, key = config.git_credentials_secret, config.git_credentials_key
    if secret:
        env.append(
            k8s.V1EnvVar(
                name="GIT_CREDENTIAL_ENV",
                value_from=k8s.V1EnvVarSource(
                    secret_key_ref=k8s.V1SecretKeySelector(name=secret, key=key)
                ),
            )
        )

    for name, value in config.extra_envs.items():
        if isinstance(value, Mapping):
            env.append(to_model(k8s.V1EnvVar, {"name": name, **value}))
        else:
            env.append(k8s.V1EnvVar(name=name, value=str(value)))

    volumes.extend(to_model(k8s.V1Volume, v) for v in config.extra_volumes)
    mounts.extend(to_model(k8s.V1VolumeMount, m) for m in config.extra_volume_mounts)

    container = k8s.V1Container(
        name=CONTAINER_NAME,
        image=config.build_image,
        image_pull_policy=config.build_image_pull_policy or None,
        args=repo2docker_args(request, config),
        env=env or None,
        volume_mounts=mounts or None,
        resources=to_model(k8s.V1ResourceRequirements, config.resources)
        if config.resources
        else None,
        security_context=to_model(k8s.V1SecurityContext, config.container_security_context)
        if config.container_security_context
        else None,
    )

    spec = k8s.V1PodSpec(
        containers=[container],
        restart_policy="Never",
        volumes=volumes or None,
        # No service-link variables: the build needs none and they leak the namespace's services.
        enable_service_links=False,
        automount_service_account_token=config.automount_service_account_token,
        service_account_name=config.service_account or None,
        node_selector=dict(config.node_selector) or None,
        tolerations=[to_model(k8s.V1Toleration, t) for t in config.tolerations] or None,
        affinity=_affinity(config.affinity, sticky_node),
        image_pull_secrets=[k8s.V1LocalObjectReference(name=s) for s in config.image_pull_secrets]
        or None,
        security_context=to_model(k8s.V1PodSecurityContext, config.pod_security_context)
        if config.pod_security_context
        else None,
        active_deadline_seconds=deadline_seconds(config.build_timeout),
        priority_class_name=config.priority_class_name or None,
    )

    labels = _pod_labels(request, config)
    return k8s.V1Pod(
        api_version="v1",
        kind="Pod",
        metadata=k8s.V1ObjectMeta(
            name=request.name,
            namespace=config.namespace,
            labels=labels,
            annotations={**_check_annotations(config.extra_annotations), **_annotations(request)},
        ),
        spec=spec,
    )


def _pod_labels(request: BuildRequest, config: BuildPodConfig) -> dict[str, str]:
    labels = {**_request_labels(request), **build_labels(config)}
    if request.provider and _LABEL_VALUE_RE.match(request.provider):
        labels[PROVIDER_LABEL] = request.provider
    return labels


def _docker_host(docker_host: str | None) -> tuple[str, str]:
    """(socket path to mount, or "", DOCKER_HOST URL to set, or "")."""
    if not docker_host:
        return "", ""
    if docker_host.startswith("unix://"):
        return docker_host[len("unix://") :], ""
    if "://" in docker_host:
        return "", docker_host
    return docker_host, ""


def _affinity(affinity: Mapping[str, Any], sticky: str | None) -> k8s.V1Affinity | None:
    """The configured affinity, plus a preference for the sticky node when there is one."""
    d = json.loads(json.dumps(dict(affinity)))  # a deep copy we may change
    if sticky:
        node_affinity = d.setdefault("nodeAffinity", d.pop("node_affinity", {}))
        key = "preferredDuringSchedulingIgnoredDuringExecution"
        preferred = node_affinity.setdefault(
            key, node_affinity.pop("preferred_during_scheduling_ignored_during_execution", [])
        )
        preferred.append(
            {
                "weight": 100,
                "preference": {
                    "matchExpressions": [
                        {"key": "kubernetes.io/hostname", "operator": "In", "values": [sticky]}
                    ]
                },
            }
        )
    return to_model(k8s.V1Affinity, d) if d else None


def sticky_node(nodes: Iterable[str], key: str) -> str | None:
    """The node a repository's builds prefer: rendezvous (highest random weight) hashing,
    so adding or losing a node moves only the repositories that ranked it first."""

    def score(node: str) -> bytes:
        return hashlib.blake2b(f"{key}\0{node}".encode(), digest_size=8).digest()

    return max(set(nodes), key=score, default=None)


def _annotations(request: BuildRequest) -> dict[str, str]:
    p = ANNOTATION_PREFIX
    out = {
        p + "image": request.image_name,
        p + "repo-url": request.repo_url,
        p + "ref": request.ref,
        p + "push": "true" if request.push else "false",
    }
    if request.provider:
        out[p + "provider"] = request.provider
    if request.spec:
        out[p + "spec"] = request.spec
    if request.user:
        out[p + "user"] = request.user
    if request.labels:
        out[p + "request-labels"] = json.dumps(dict(request.labels), sort_keys=True)
    return out


def _request_labels(request: BuildRequest) -> dict[str, str]:
    """The request's own labels, with values made valid (they may come from users)."""
    return {k: label_value(str(v)) for k, v in _check_labels(request.labels, values=False).items()}


def label_value(value: str) -> str:
    """A valid label value (<= 63, alphanumeric ends, [-_.] inside) that reads like `value`."""
    v = re.sub(r"[^A-Za-z0-9_.-]+", "-", value)[:63]
    return re.sub(r"^[^A-Za-z0-9]+|[^A-Za-z0-9]+$", "", v)


def _check_labels(labels: Mapping[str, str], values: bool = True) -> dict[str, str]:
    for k, v in labels.items():
        if not _valid_key(k):
            raise ValueError(f"invalid label name {k!r}")
        if values and not (isinstance(v, str) and _LABEL_VALUE_RE.match(v) and len(v) <= 63):
            raise ValueError(f"invalid value {v!r} for label {k!r}")
    return dict(labels)


def _check_annotations(annotations: Mapping[str, str]) -> dict[str, str]:
    for k, v in annotations.items():
        if not _valid_key(k) or not isinstance(v, str):
            raise ValueError(f"invalid annotation {k!r}: {v!r}")
    return dict(annotations)


def _valid_key(key: str) -> bool:
    """Kubernetes qualified name: optional DNS-subdomain prefix + "/" + name (<= 63)."""
    prefix, _, name = key.rpartition("/")
    if prefix and (len(prefix) > 253 or not _DNS_SUBDOMAIN_RE.match(prefix)):
        return False
    return len(name) <= 63 and bool(_LABEL_NAME_RE.match(name))


# --- models <-> JSON ----------------------------------------------------------------

_NATIVE = {"str": str, "int": int, "float": float, "bool": bool, "object": object}


def to_model(klass: type | str, data: Any) -> Any:
    """A kubernetes_asyncio model from a dict in the API's shape (camelCase keys, as in
    YAML) or the client's (snake_case). Unknown keys raise ValueError: a typo in config
    fails when the service starts, not on the cluster."""
    if data is None:
        return None
    if isinstance(klass, str):
        if klass.startswith("list["):
            return [to_model(klass[5:-1], d) for d in data]
        if klass.startswith("dict("):
            sub = klass[5:-1].split(", ", 1)[1]
            return {k: to_model(sub, v) for k, v in data.items()}
        if klass in _NATIVE:
            return data
        if klass in ("datetime", "date"):
            return data
        klass = getattr(k8s, klass)
    if not isinstance(data, Mapping):
        if isinstance(data, klass):
            return data
        raise ValueError(f"{klass.__name__} must be a mapping, not {data!r}")
    by_json = {v: k for k, v in klass.attribute_map.items()}
    kwargs = {}
    for key, value in data.items():
        attr = key if key in klass.openapi_types else by_json.get(key)
        if attr is None:
            raise ValueError(f"unknown field {key!r} for {klass.__name__}")
        kwargs[attr] = to_model(klass.openapi_types[attr], value)
    return klass(**kwargs)


def to_dict(obj: Any) -> Any:
    """JSON-ready dict (camelCase, Nones dropped) of a model: what the API receives.
    The same as ApiClient.sanitize_for_serialization, without creating an ApiClient."""
    if obj is None or isinstance(obj, (str, int, float, bool, bytes)):
        return obj
    if isinstance(obj, (list, tuple)):
        return [to_dict(o) for o in obj]
    if isinstance(obj, (datetime.datetime, datetime.date)):
        return obj.isoformat()
    if isinstance(obj, Mapping):
        return {k: to_dict(v) for k, v in obj.items()}
    return {
        obj.attribute_map[attr]: to_dict(getattr(obj, attr))
        for attr in obj.openapi_types
        if getattr(obj, attr) is not None
    }


# --- reading pods back (raw JSON dicts, as the watch delivers them) ----------------


def request_from_pod(pod: Mapping[str, Any]) -> BuildRequest | None:
    """The BuildRequest a build pod was made from (for adopting it after a restart);
    None when the pod lacks what a build needs (not made by us, or by an older version)."""
    meta = pod.get("metadata") or {}
    ann = meta.get("annotations") or {}
    p = ANNOTATION_PREFIX
    name, image, repo_url = meta.get("name"), ann.get(p + "image"), ann.get(p + "repo-url")
    if not (name and image and repo_url):
        return None
    try:
        labels = json.loads(ann.get(p + "request-labels") or "{}")
    except ValueError:
        labels = {}
    return BuildRequest(
        name=name,
        image_name=image,
        repo_url=repo_url,
        ref=ann.get(p + "ref", ""),
        provider=ann.get(p + "provider", ""),
        spec=ann.get(p + "spec", ""),
        push=ann.get(p + "push") == "true",
        user=ann.get(p + "user", ""),
        labels=labels if isinstance(labels, dict) else {},
    )


def parse_time(value: str | None) -> float | None:
    """Seconds since the epoch from an RFC 3339 timestamp ("2024-05-01T10:00:00Z")."""
    if not value:
        return None
    try:
        # (3.10 does not read "Z")
        return datetime.datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def container_status(pod: Mapping[str, Any]) -> Mapping[str, Any]:
    for cs in (pod.get("status") or {}).get("containerStatuses") or ():
        if cs.get("name") == CONTAINER_NAME:
            return cs
    return {}


def pod_phase(pod: Mapping[str, Any]) -> str:
    return (pod.get("status") or {}).get("phase") or "Pending"


def terminated_state(pod: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """The build container's `terminated` state, or None while it has not ended."""
    return (container_status(pod).get("state") or {}).get("terminated")


def is_running(pod: Mapping[str, Any]) -> bool:
    """The container has started (so it has a log to read)."""
    state = container_status(pod).get("state") or {}
    return bool(state.get("running") or state.get("terminated"))


def is_finished(pod: Mapping[str, Any]) -> bool:
    return pod_phase(pod) in ("Succeeded", "Failed") or terminated_state(pod) is not None


# Waiting reasons that do not clear up by themselves; the grace lets a slow registry
# or a Secret created a moment late recover before the build is failed.
STUCK_REASONS = frozenset(
    {
        "ImagePullBackOff",
        "ErrImagePull",
        "InvalidImageName",
        "ErrImageNeverPull",
        "CreateContainerConfigError",
        "CreateContainerError",
    }
)


def stuck_reason(pod: Mapping[str, Any]) -> str | None:
    """Why a pending pod cannot start, in words, or None when it is merely on its way."""
    if is_finished(pod) or is_running(pod):
        return None
    waiting = (container_status(pod).get("state") or {}).get("waiting") or {}
    if waiting.get("reason") in STUCK_REASONS:
        detail = waiting.get("message") or ""
        return f"{waiting['reason']}: {detail}".rstrip(": ")
    for cond in (pod.get("status") or {}).get("conditions") or ():
        if (
            cond.get("type") == "PodScheduled"
            and cond.get("status") == "False"
            and cond.get("reason") == "Unschedulable"
        ):
            return f"Unschedulable: {cond.get('message') or 'no node can run the build pod'}"
    return None


def waiting_message(pod: Mapping[str, Any]) -> str:
    """What a pending pod is doing, for progress events ("" when there is nothing to say)."""
    waiting = (container_status(pod).get("state") or {}).get("waiting") or {}
    if waiting.get("reason"):
        return waiting["reason"] + (f": {waiting['message']}" if waiting.get("message") else "")
    if (pod.get("spec") or {}).get("nodeName"):
        return "scheduled on " + pod["spec"]["nodeName"]
    return ""


def termination_message(pod: Mapping[str, Any]) -> str:
    """Why a pod ended, from its status, in words (for when the log says nothing)."""
    term = terminated_state(pod) or {}
    status = pod.get("status") or {}
    parts = []
    if term:
        reason = term.get("reason") or "Error"
        parts.append(f"{reason} (exit code {term.get('exitCode')})")
        if term.get("message"):
            parts.append(term["message"].strip())
    if status.get("reason"):
        parts.append(status["reason"] + (f": {status['message']}" if status.get("message") else ""))
    return "; ".join(parts) or f"the pod ended in phase {pod_phase(pod)}"
