"""KubernetesBuilder: every build is a pod running repo2docker.

This module is the builder's configuration (its traits, as data for the pure pod
builders in objects.py) and its public surface (start, stop, build, follow, reap); the
work is done by one module per job:

- kubeclient.py: reaching the API (client, config loading, errors);
- podwatch.py: one shared watch, which tells every build how its pod is doing;
- adoption.py: the build pods found running at start, which the service follows again;
- podcreate.py: creating a build's pod, or joining the one already there (409);
- podfollow.py: following a pod until its container ends, then deciding how the build
  ended (podoutcome.py: what its state means; podevents.py: why it is late to start);
- podrelay.py: its log (podlogs.py, one follower per build) and state as events;
- replay.py: an adopted build's log, read again, without what its record holds;
- poddelete.py, reaper.py: deleting pods, at once, after a linger, or when forgotten;
- buildsecrets.py: the per-build credentials Secret.

kubernetes_asyncio is imported only when a client is made (see kubeclient.py): the
service's other builders never load it.
"""

from __future__ import annotations

import asyncio
import time

from traitlets import Bool, Dict, Integer, List, Unicode, default

from ..events import Event
from ..tasks import cancel_and_wait
from .adoption import adoptable
from .base import BuildFailed, BuildRequest, Emit, make_build_request
from .buildsecrets import BuildSecrets
from .kubeclient import SERVICE_ACCOUNT_NAMESPACE, current_namespace, make_api_client
from .objects import (
    BuildPodConfig,
    credentials_secret_name,
    label_selector,
    make_build_pod,
    make_credentials_secret,
    parse_time,
    sticky_node,
    to_dict,
)
from .podcreate import PodCreator
from .poddelete import PodDeleter
from .podfollow import FollowLimits, PodFollower
from .podoutcome import duration, watch_refused
from .podwatch import PodWatch
from .reaper import TOO_OLD, pods_to_reap, reap_every
from .replay import LogReplay
from .repo2docker import Repo2DockerBuilder

__all__ = [
    "DEFAULT_BUILD_IMAGE",
    "SERVICE_ACCOUNT_NAMESPACE",
    "KubernetesBuilder",
    "build_pod_config",
]

# The repo2docker release this service is tested with (its image on quay.io).
DEFAULT_BUILD_IMAGE = "quay.io/jupyterhub/repo2docker:2026.04.0"


def build_pod_config(**overrides) -> BuildPodConfig:
    """A BuildPodConfig of KubernetesBuilder's defaults with `overrides` (trait names), for
    tests and tools that make pods without a configured builder."""
    unknown = set(overrides) - set(KubernetesBuilder.class_trait_names(pod=True))
    if unknown:
        raise TypeError(f"not build pod settings: {sorted(unknown)}")
    overrides.setdefault("namespace", "default")
    return KubernetesBuilder(**overrides).pod_config()


class KubernetesBuilder(Repo2DockerBuilder):
    """Builds images in Kubernetes pods running repo2docker."""

    survives_restart = True

    # --- where and how to reach the cluster ---

    namespace = Unicode(
        help="Namespace for build pods. Default: the namespace this service runs in "
        "(in a cluster), else $POD_NAMESPACE, else 'default'.",
    ).tag(config=True, pod=True)

    @default("namespace")
    def _default_namespace(self):
        return current_namespace()

    k8s_api_url = Unicode(
        "",
        help="URL of the Kubernetes API, without credentials (e.g. `kubectl proxy` on "
        "http://127.0.0.1:8001, or a test server). Default: in-cluster config, else ~/.kube/config.",
    ).tag(config=True)

    # --- the build pod (BinderHub's KubernetesBuildExecutor names where they mean the same) ---

    build_image = Unicode(
        DEFAULT_BUILD_IMAGE, help="The image with repo2docker that build pods run."
    ).tag(config=True, pod=True)

    build_image_pull_policy = Unicode(
        None,
        allow_none=True,
        help="imagePullPolicy of the build container (Kubernetes default if None).",
    ).tag(config=True, pod=True)

    docker_host = Unicode(
        "/var/run/docker.sock",
        allow_none=True,
        help="The Docker API repo2docker builds with. A socket path on the node (or "
        "unix://path) is mounted into the build pod; a tcp:// URL is passed as DOCKER_HOST; "
        "None mounts nothing.",
    ).tag(config=True, pod=True)

    image_pull_secrets = List(Unicode(), help="Names of Secrets to pull the build image with.").tag(
        config=True, pod=True
    )

    push_secret = Unicode(
        "",
        help="Name of a Secret holding a docker config.json with credentials to push "
        "images. Mounted as a file in the build pod (never an environment variable).",
    ).tag(config=True, pod=True)

    push_secret_key = Unicode(
        "config.json",
        help="The key of push_secret holding config.json ('.dockerconfigjson' "
        "for a kubernetes.io/dockerconfigjson Secret).",
    ).tag(config=True, pod=True)

    git_credentials_secret = Unicode(
        "",
        help="Name of a Secret whose key git_credentials_key holds git credential helper "
        "output (e.g. 'username=x\\npassword=y'), for private repositories. Passed as "
        "GIT_CREDENTIAL_ENV from the Secret, as repo2docker's image expects. Serves the "
        "builds whose repository URL carries no credentials; one that does gets a Secret "
        "of its own (made per build, owned by its pod).",
    ).tag(config=True, pod=True)

    git_credentials_key = Unicode("credentials", help="Key in git_credentials_secret.").tag(
        config=True, pod=True
    )

    resources = Dict(
        help="Resources of the build container, e.g. {'requests': {'memory': '1Gi'}}. "
        "(The build itself runs in the Docker daemon, not in this container.)"
    ).tag(config=True, pod=True)

    node_selector = Dict(help="nodeSelector of build pods.").tag(config=True, pod=True)

    tolerations = List(Dict(), help="Tolerations of build pods (Kubernetes API shape).").tag(
        config=True, pod=True
    )

    affinity = Dict(help="Affinity of build pods (Kubernetes API shape).").tag(
        config=True, pod=True
    )

    sticky_builds = Bool(
        False,
        help="Builds of one repository prefer the node that built it before, to reuse the "
        "layer cache of the Docker daemon there (a preferred node affinity).",
    ).tag(config=True)

    service_account = Unicode(
        "", help="serviceAccountName of build pods ('' for the namespace default)."
    ).tag(config=True, pod=True)

    automount_service_account_token = Bool(
        False, help="Mount the service account token into build pods (repo2docker needs none)."
    ).tag(config=True, pod=True)

    pod_security_context = Dict(help="Pod securityContext of build pods.").tag(
        config=True, pod=True
    )

    container_security_context = Dict(help="securityContext of the build container.").tag(
        config=True, pod=True
    )

    extra_envs = Dict(
        help="Extra environment of the build container: name -> value, or name -> an "
        "EnvVar body such as {'valueFrom': {'secretKeyRef': ...}}."
    ).tag(config=True, pod=True)

    extra_volumes = List(Dict(), help="Extra volumes of build pods.").tag(config=True, pod=True)

    extra_volume_mounts = List(Dict(), help="Extra volume mounts of the build container.").tag(
        config=True, pod=True
    )

    extra_labels = Dict(
        help="Extra labels of build pods. They are part of the selector this service "
        "watches: give two services in one namespace different ones."
    ).tag(config=True, pod=True)

    extra_annotations = Dict(help="Extra annotations of build pods.").tag(config=True, pod=True)

    priority_class_name = Unicode("", help="priorityClassName of build pods.").tag(
        config=True, pod=True
    )

    # --- time limits and cleanup ---

    pending_grace = Integer(
        300,
        help="Seconds a build pod may be stuck before its build fails: in a waiting state "
        "that does not clear by itself (ImagePullBackOff, CreateContainerConfigError, "
        "unschedulable), or not started this long after its creation with a Warning as "
        "its latest Event (FailedMount of the Docker socket or a Secret, FailedScheduling).",
    ).tag(config=True)

    max_age = Integer(
        6 * 3600,
        help="Build pods older than this (seconds) are deleted by the reaper, whoever made them.",
    ).tag(config=True)

    reap_interval = Integer(60, help="Seconds between reaper passes.").tag(config=True)

    # Tuning knobs, not configuration: tests shorten them (a build reads them when it
    # starts; see limits()).
    watch_timeout_seconds = 120
    log_drain_timeout = 30.0  # wait this long for the last log lines after the container ends
    log_eof_grace = 2.0
    orphan_grace = 300  # finished pods nobody here follows are deleted this long after they end
    # A finished pod stays this long, so that another replica following it can read the
    # end of its log before it goes (the outcome does not wait for it).
    finished_pod_linger = 5.0
    create_attempts = 5
    poll_interval = 5.0  # a build re-checks its deadlines this often without events
    events_interval = 15.0  # a late pod's Events are read at most this often
    backoff_base = 0.5
    backoff_cap = 30.0
    node_memory = 12 * 3600  # sticky builds remember nodes seen this long

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self._api_client = None
        self._core = None
        self._watch: PodWatch | None = None
        self._deleter: PodDeleter | None = None
        self._secrets: BuildSecrets | None = None
        self._creator: PodCreator | None = None
        self._follower: PodFollower | None = None
        self._reaper: asyncio.Task | None = None
        self._stopping = False
        self._following: dict[str, int] = {}  # pod name -> builds here following it
        self._nodes: dict[str, float] = {}  # node name -> last seen (sticky builds)

    # --- configuration as data ---

    def pod_config(self) -> BuildPodConfig:
        """The traits that shape build pods (tagged pod=True), as data for objects.py."""
        return BuildPodConfig(
            {name: getattr(self, name) for name in sorted(self.trait_names(pod=True))}
        )

    def limits(self) -> FollowLimits:
        """The settings a build follows its pod by, as data (read when it starts)."""
        return FollowLimits(
            build_timeout=self.build_timeout,
            pending_grace=self.pending_grace,
            poll_interval=self.poll_interval,
            events_interval=self.events_interval,
            log_drain_timeout=self.log_drain_timeout,
            log_eof_grace=self.log_eof_grace,
            finished_pod_linger=self.finished_pod_linger,
            backoff_base=self.backoff_base,
            backoff_cap=self.backoff_cap,
        )

    def fingerprint_parts(self) -> list:
        return [self.build_image, *super().fingerprint_parts()]

    def make_pod(self, request: BuildRequest):
        """The V1Pod this builder would create for `request` (no I/O)."""
        sticky = None
        if self.sticky_builds:
            cutoff = time.time() - self.node_memory
            sticky = sticky_node(
                [n for n, t in self._nodes.items() if t > cutoff], request.repo_url
            )
        return make_build_pod(request, self.pod_config(), sticky_node=sticky)

    def check_config(self) -> None:
        """Make a pod for a sample request, so that a configuration error (a typo in a
        toleration, an invalid label) stops the service at start, not at its first build."""
        sample = make_build_request(
            image_name="registry.example/config-check:latest",
            repo_url="https://user:token@example.org/repo",
            ref="0" * 40,
            provider="git",
            spec="https://example.org/repo/HEAD",
            push=True,
        )
        try:
            make_build_pod(sample, self.pod_config())
            make_credentials_secret(sample, self.pod_config(), owner_uid="0")
        except ValueError as e:
            raise ValueError(f"c.KubernetesBuilder configuration: {e}") from None

    # --- lifecycle ---

    async def start(self) -> list[BuildRequest]:
        from kubernetes_asyncio import client

        self.check_config()
        self._stopping = False
        self._api_client = await make_api_client(self.k8s_api_url)
        self._core = client.CoreV1Api(self._api_client)
        self._watch = PodWatch(
            self._core,
            self.namespace,
            label_selector(self.pod_config()),
            timeout_seconds=self.watch_timeout_seconds,
            backoff_base=self.backoff_base,
            backoff_cap=self.backoff_cap,
        )
        self._watch.add_listener(self._remember_node)
        try:
            await self._watch.start()
        except BaseException:
            await self._api_client.close()
            self._api_client = None
            raise
        self._deleter = PodDeleter(self._core, self.namespace, self.log)
        self._secrets = BuildSecrets(self._core, self.namespace, self.log)
        self._creator = PodCreator(
            self._core,
            self.namespace,
            self._watch,
            self._secrets,
            self._deleter,
            self._following,
            self.log,
        )
        self._follower = PodFollower(
            self._core, self._api_client, self.namespace, self._watch, self._deleter
        )
        for pod in self._watch.pods.values():
            self._remember_node("ADDED", pod)
        self._reaper = asyncio.create_task(
            reap_every(lambda: self.reap_interval, self.reap, self.log), name="r2dservice-reaper"
        )
        adopted = adoptable(self._watch.pods.values())
        self.log.info(
            "Kubernetes builder watching %s in namespace %s: %d build pods, %d running",
            self._watch.label_selector,
            self.namespace,
            len(self._watch.pods),
            len(adopted),
        )
        return adopted

    async def stop(self) -> None:
        # From now on a cancelled build leaves its pod running for the next start().
        self._stopping = True
        await cancel_and_wait(self._reaper)
        self._reaper = None
        # Finished pods waiting out their linger are deleted now.
        if self._deleter:
            await self._deleter.stop()
        if self._watch:
            await self._watch.stop()
        if self._api_client:
            await self._api_client.close()
            self._api_client = None

    def health(self) -> list[dict]:
        """The `kubernetes` check: not ok while the API refuses the pod watch (builds
        fail at once) or the deletion of build pods (they are left behind)."""
        if self._watch is None:
            return []
        self._deleter.forget_gone(self._watch.pods)
        problems = []
        if self._watch.denied:
            problems.append(f"the build pod watch is refused: {self._watch.denied}")
        if self._deleter.problem:
            problems.append(self._deleter.problem)
        # Not critical: images that exist are still served, so a Role that lost a verb
        # must not take every replica out of its load balancer.
        check = {"service": "kubernetes", "ok": not problems, "critical": False}
        return [check | ({"message": "; ".join(problems)} if problems else {})]

    def _remember_node(self, type_: str, pod: dict) -> None:
        node = (pod.get("spec") or {}).get("nodeName")
        if node:
            self._nodes[node] = time.time()

    # --- builds ---

    async def build(self, request: BuildRequest, emit: Emit) -> None:
        self._check_started()
        if self._watch.denied:
            # A pod made now would run unwatched: say why at once instead.
            raise BuildFailed(watch_refused(self._watch.denied))
        request = await self.with_cache(request)
        q = self._watch.subscribe(request.name)
        self._following[request.name] = self._following.get(request.name, 0) + 1
        try:
            uid, created = await self._creator.create(
                request,
                to_dict(self.make_pod(request)),
                self.pod_config(),
                emit,
                q,
                attempts=self.create_attempts,
                backoff_base=self.backoff_base,
            )
            await self._follower.follow(request, emit, q, uid, created, self.limits())
        except asyncio.CancelledError:
            await self._on_cancel(request)
            raise
        finally:
            self._unfollow(request.name, q)
            if request.credentials and not self._stopping:
                # The container read it when it started; a pod left for the next
                # start() keeps it (and Kubernetes deletes it with the pod).
                await asyncio.shield(self._secrets.delete(credentials_secret_name(request)))

    async def follow(
        self, request: BuildRequest, emit: Emit, replay: LogReplay | None = None
    ) -> None:
        """Follow a pod adopted at start. Its log is read again from the start: `replay`
        (the events the build's record holds) keeps those lines from being emitted twice."""
        self._check_started()
        q = self._watch.subscribe(request.name)
        self._following[request.name] = self._following.get(request.name, 0) + 1
        try:
            pod = self._watch.pods.get(request.name)
            if pod is None:
                raise BuildFailed(f"The build pod {request.name} no longer exists.\n")
            emit(Event("fetching", f"Following the build running in pod {request.name}\n"))
            created = parse_time(pod["metadata"].get("creationTimestamp")) or time.time()
            await self._follower.follow(
                request, emit, q, pod["metadata"].get("uid"), created, self.limits(), replay
            )
        except asyncio.CancelledError:
            await self._on_cancel(request)
            raise
        finally:
            self._unfollow(request.name, q)

    def _check_started(self) -> None:
        if self._watch is None or self._stopping:
            raise RuntimeError("KubernetesBuilder is not started")

    def _unfollow(self, name: str, q: asyncio.Queue) -> None:
        if self._watch is not None:
            self._watch.unsubscribe(name, q)
        n = self._following.get(name, 0) - 1
        if n > 0:
            self._following[name] = n
        else:
            self._following.pop(name, None)

    async def _on_cancel(self, request: BuildRequest) -> None:
        if self._stopping:
            # Service shutdown: the pod builds on, the next start() adopts it.
            return
        self.log.info("Build %s cancelled; deleting its pod", request.name)
        try:
            await asyncio.shield(self._deleter.delete(request.name, self.backoff_base))
        except asyncio.CancelledError:
            pass

    # --- the reaper ---

    async def reap(self) -> list[str]:
        """Delete build pods older than max_age, and finished pods nobody follows
        (the service stopped before it could clean them up). From the watch's cache:
        no extra API reads. Then build Secrets whose pod is gone."""
        now = time.time()
        doomed = pods_to_reap(
            dict(self._watch.pods), self._following, now, self.max_age, self.orphan_grace
        )
        for name, why in doomed:
            if why == TOO_OLD:
                self.log.warning(
                    "Reaping build pod %s: older than %s", name, duration(self.max_age)
                )
            else:
                self.log.info("Reaping finished build pod %s that nobody follows", name)
        for name, _why in doomed:
            await self._deleter.delete(name, self.backoff_base)
        await self._secrets.reap(
            self._watch.label_selector,
            lambda build: build in self._watch.pods or build in self._following,
            now,
            self.orphan_grace,
        )
        return [name for name, _why in doomed]
