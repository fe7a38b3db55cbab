"""KubernetesBuilder: every build is a pod running repo2docker.

One shared watch (podwatch.PodWatch) tells every build how its pod is doing (and
podevents why one is late to start); one log
follower (podlogs.LogFollower) per running build turns the container's log into events.
The pod is named after the image, so creating it twice (another replica, a restarted
service) finds it (409) and joins it. A build ends when its container has exited:
success only on exit code 0; everything else fails with a reason a person can read.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from typing import Any

import aiohttp
from traitlets import Bool, Dict, Integer, List, Unicode, default

from ..events import Event
from .base import BuildFailed, BuildRequest, Emit, make_build_request
from .objects import (
    ANNOTATION_PREFIX,
    BuildPodConfig,
    credentials_secret_name,
    is_finished,
    is_running,
    label_selector,
    make_build_pod,
    make_credentials_secret,
    owner_reference,
    parse_time,
    pod_phase,
    request_from_pod,
    sticky_node,
    stuck_reason,
    terminated_state,
    termination_message,
    to_dict,
    waiting_message,
)
from .podevents import read_pod_events, warning_reason
from .podlogs import LogFollower
from .podwatch import VANISHED, PodWatch, backoff_delays
from .repo2docker import Repo2DockerBuilder, Repo2DockerOutput

SERVICE_ACCOUNT_NAMESPACE = "/var/run/secrets/kubernetes.io/serviceaccount/namespace"

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


def _duration(seconds: float) -> str:
    seconds = int(seconds)
    if seconds % 3600 == 0 and seconds >= 3600:
        return f"{seconds // 3600} hour" + ("s" if seconds != 3600 else "")
    if seconds % 60 == 0 and seconds >= 60:
        return f"{seconds // 60} minute" + ("s" if seconds != 60 else "")
    return f"{seconds} second" + ("s" if seconds != 1 else "")


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
        try:
            with open(SERVICE_ACCOUNT_NAMESPACE) as f:
                return f.read().strip()
        except OSError:
            return os.environ.get("POD_NAMESPACE", "default")

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

    # Tuning knobs, not configuration: tests shorten them.
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
        self._reaper: asyncio.Task | None = None
        self._stopping = False
        self._following: dict[str, int] = {}  # pod name -> builds here following it
        self._nodes: dict[str, float] = {}  # node name -> last seen (sticky builds)
        self._deletions: dict[str, asyncio.Task] = {}  # pod name -> lingering deletion

    # --- configuration as data ---

    def pod_config(self) -> BuildPodConfig:
        """The traits that shape build pods (tagged pod=True), as data for objects.py."""
        return BuildPodConfig(
            {name: getattr(self, name) for name in sorted(self.trait_names(pod=True))}
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

    # --- lifecycle ---

    async def _make_api_client(self):
        from kubernetes_asyncio import client, config

        conf = client.Configuration()
        if self.k8s_api_url:
            conf.host = self.k8s_api_url
        else:
            try:
                config.load_incluster_config(client_configuration=conf)
            except config.ConfigException:
                await config.load_kube_config(client_configuration=conf)
        # One watch plus a log stream per running build, all long-lived: an aiohttp
        # connection limit would queue the next build's requests behind them.
        conf.connection_pool_maxsize = 0
        return client.ApiClient(conf)

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

    async def start(self) -> list[BuildRequest]:
        from kubernetes_asyncio import client

        self.check_config()
        self._stopping = False
        self._api_client = await self._make_api_client()
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
        for pod in self._watch.pods.values():
            self._remember_node("ADDED", pod)
        self._reaper = asyncio.create_task(self._reap_loop(), name="r2dservice-reaper")
        adopted = []
        for pod in self._watch.pods.values():
            if is_finished(pod) or pod["metadata"].get("deletionTimestamp"):
                continue
            request = request_from_pod(pod)
            if request is not None:
                adopted.append(request)
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
        if self._reaper:
            self._reaper.cancel()
            try:
                await self._reaper
            except asyncio.CancelledError:
                pass
            self._reaper = None
        # Finished pods waiting out their linger are deleted now.
        pending = list(self._deletions.values())
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        if self._watch:
            await self._watch.stop()
        if self._api_client:
            await self._api_client.close()
            self._api_client = None

    def _remember_node(self, type_: str, pod: dict) -> None:
        node = (pod.get("spec") or {}).get("nodeName")
        if node:
            self._nodes[node] = time.time()

    # --- builds ---

    async def build(self, request: BuildRequest, emit: Emit) -> None:
        self._check_started()
        request = await self.with_cache(request)
        q = self._watch.subscribe(request.name)
        self._following[request.name] = self._following.get(request.name, 0) + 1
        try:
            uid, created = await self._create_pod(request, emit, q)
            await self._follow_pod(request, emit, q, uid, created)
        except asyncio.CancelledError:
            await self._on_cancel(request)
            raise
        finally:
            self._unfollow(request.name, q)
            if request.credentials and not self._stopping:
                # The container read it when it started; a pod left for the next
                # start() keeps it (and Kubernetes deletes it with the pod).
                await asyncio.shield(self._delete_secret(credentials_secret_name(request)))

    async def follow(self, request: BuildRequest, emit: Emit) -> None:
        self._check_started()
        q = self._watch.subscribe(request.name)
        self._following[request.name] = self._following.get(request.name, 0) + 1
        try:
            pod = self._watch.pods.get(request.name)
            if pod is None:
                raise BuildFailed(f"The build pod {request.name} no longer exists.\n")
            emit(Event("fetching", f"Following the build running in pod {request.name}\n"))
            created = parse_time(pod["metadata"].get("creationTimestamp")) or time.time()
            await self._follow_pod(request, emit, q, pod["metadata"].get("uid"), created)
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
            await asyncio.shield(self._delete_pod(request.name))
        except asyncio.CancelledError:
            pass

    async def _create_pod(
        self, request: BuildRequest, emit: Emit, q: asyncio.Queue
    ) -> tuple[str | None, float]:
        """Create the pod, or join the one of the same name. Returns (uid or None, created)."""
        from kubernetes_asyncio.client.exceptions import ApiException

        body = to_dict(self.make_pod(request))
        delays = backoff_delays(self.backoff_base)
        attempt = 0
        while True:
            attempt += 1
            try:
                if request.credentials:
                    # Before the pod, so that its container finds it when it starts.
                    await self._put_secret(request)
                pod = await self._core.create_namespaced_pod(
                    self.namespace, body, _request_timeout=aiohttp.ClientTimeout(total=30)
                )
            except ApiException as e:
                if e.status == 409:
                    existing = self._watch.pods.get(request.name)
                    if existing and existing["metadata"].get("deletionTimestamp"):
                        # A previous build of this image is still being torn down.
                        await self._wait_deleted(request.name, q)
                        continue
                    if existing and _failed(existing) and self._following.get(request.name) == 1:
                        # A failure left behind by an earlier run (the service stopped
                        # before deleting it): a new request deserves a new attempt.
                        self.log.info("Replacing failed build pod %s", request.name)
                        await self._delete_pod(request.name)
                        await self._wait_deleted(request.name, q)
                        continue
                    uid = existing["metadata"].get("uid") if existing else None
                    if request.credentials and uid:
                        await self._own_secret(request, uid)
                    emit(
                        Event(
                            "fetching", f"Joining the build already running in pod {request.name}\n"
                        )
                    )
                    created = (
                        parse_time(existing["metadata"].get("creationTimestamp"))
                        if existing
                        else None
                    )
                    return uid, created or time.time()
                if _retryable(e.status) and attempt < self.create_attempts:
                    self.log.warning("Creating pod %s: HTTP %s; retrying", request.name, e.status)
                    await asyncio.sleep(next(delays))
                    continue
                raise BuildFailed(f"Could not create the build pod: {_api_message(e)}\n") from None
            except (aiohttp.ClientError, asyncio.TimeoutError) as e:
                if attempt < self.create_attempts:
                    self.log.warning("Creating pod %s: %s; retrying", request.name, e)
                    await asyncio.sleep(next(delays))
                    continue
                raise BuildFailed(
                    f"Could not reach the Kubernetes API to create the build pod: {e}\n"
                ) from None
            if request.credentials:
                await self._own_secret(request, pod.metadata.uid)
            self.log.info("Created build pod %s for %s", request.name, request.image_name)
            emit(Event("fetching", f"Build pod {request.name} created, waiting for it to start\n"))
            return pod.metadata.uid, time.time()

    # --- the per-build credentials Secret ---

    async def _put_secret(self, request: BuildRequest) -> None:
        """Create the build's credentials Secret, or (left by an earlier attempt, another
        replica or a previous pod of this name) give it these credentials and no owner,
        so that the old pod's deletion does not take it along. ApiException and client
        errors go to the caller (its retries)."""
        from kubernetes_asyncio.client.exceptions import ApiException

        body = to_dict(make_credentials_secret(request, self.pod_config()))
        timeout = aiohttp.ClientTimeout(total=30)
        try:
            await self._core.create_namespaced_secret(
                self.namespace, body, _request_timeout=timeout
            )
        except ApiException as e:
            if e.status != 409:
                raise
            await self._core.patch_namespaced_secret(
                body["metadata"]["name"],
                self.namespace,
                {"metadata": {"ownerReferences": None}, "data": body["data"]},
                _content_type="application/merge-patch+json",
                _request_timeout=timeout,
            )

    async def _own_secret(self, request: BuildRequest, uid: str) -> None:
        """Make the pod the owner of the build's Secret: Kubernetes' garbage collector
        deletes it with the pod, whatever becomes of this service."""
        from kubernetes_asyncio.client.exceptions import ApiException

        name = credentials_secret_name(request)
        patch = {"metadata": {"ownerReferences": [to_dict(owner_reference(request.name, uid))]}}
        delays = backoff_delays(self.backoff_base)
        for _attempt in range(3):
            try:
                await self._core.patch_namespaced_secret(
                    name,
                    self.namespace,
                    patch,
                    _content_type="application/merge-patch+json",
                    _request_timeout=aiohttp.ClientTimeout(total=30),
                )
                return
            except ApiException as e:
                if e.status == 404:
                    return  # gone already (the pod started and another replica ended)
                if not _retryable(e.status):
                    self.log.warning("Secret %s: %s", name, _api_message(e))
                    return
            except (aiohttp.ClientError, asyncio.TimeoutError) as e:
                self.log.warning("Secret %s: %s", name, e)
            await asyncio.sleep(next(delays))
        # The reaper deletes it if this never works.

    async def _delete_secret(self, name: str) -> None:
        """Delete a build's Secret; gone already is fine; the reaper retries what fails."""
        from kubernetes_asyncio.client.exceptions import ApiException

        if self._core is None:
            return
        try:
            await self._core.delete_namespaced_secret(
                name, self.namespace, _request_timeout=aiohttp.ClientTimeout(total=30)
            )
            self.log.info("Deleted build secret %s", name)
        except ApiException as e:
            if e.status != 404:
                self.log.warning("Deleting secret %s: %s", name, _api_message(e))
        except (aiohttp.ClientError, asyncio.TimeoutError) as e:
            self.log.warning("Deleting secret %s: %s", name, e)

    async def _wait_deleted(self, name: str, q: asyncio.Queue, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while name in self._watch.pods:
            left = deadline - time.monotonic()
            if left <= 0:
                raise BuildFailed(f"The previous build pod {name} is taking too long to go away.\n")
            try:
                await asyncio.wait_for(q.get(), min(left, 5))
            except asyncio.TimeoutError:
                pass

    async def _follow_pod(
        self, request: BuildRequest, emit: Emit, q: asyncio.Queue, uid: str | None, created: float
    ) -> None:
        """Follow the pod through the shared watch until its container ends; then decide."""
        run = _Run(request, emit)
        deadline = created + self.build_timeout if self.build_timeout else None
        # Past this (wall clock, like `created`), a pod that has not started is asked
        # why in its Events: FailedMount and FailedScheduling show nowhere else.
        late = created + self.pending_grace
        events_read = 0.0  # monotonic time of the last read
        following_since = time.monotonic()
        pod = self._watch.pods.get(request.name)
        if pod is not None and uid not in (None, pod["metadata"].get("uid")):
            pod = None  # an older pod of the same name, on its way out
        deleted = False
        try:
            while True:
                if pod is not None:
                    uid = uid or pod["metadata"].get("uid")
                    if is_running(pod) and run.logs is None:
                        self._start_logs(run)
                    if is_finished(pod) or deleted:
                        break
                    self._report_state(run, pod)
                now = time.time()
                if deadline is not None and now >= deadline:
                    await self._delete_pod(request.name)
                    raise BuildFailed(
                        f"The build took longer than {_duration(self.build_timeout)}, "
                        "the limit for one build.\n"
                    )
                if (
                    run.stuck_since is not None
                    and time.monotonic() - run.stuck_since > self.pending_grace
                ):
                    await self._delete_pod(request.name)
                    raise BuildFailed(
                        f"The build pod could not start within {_duration(self.pending_grace)}: "
                        f"{run.stuck}\n"
                    )
                # Not started and no waiting reason that says why (those have their
                # own clock above): only the Events can tell.
                waiting = (
                    pod is not None
                    and run.stuck_since is None
                    and not is_running(pod)
                    and not is_finished(pod)
                )
                if (
                    waiting
                    and now >= late
                    and time.monotonic() - events_read >= self.events_interval
                ):
                    events_read = time.monotonic()
                    reason = warning_reason(
                        await read_pod_events(self._core, self.namespace, request.name, uid)
                    )
                    if reason:
                        await self._delete_pod(request.name)
                        raise BuildFailed(
                            "The build pod could not start within "
                            f"{_duration(self.pending_grace)}: {reason}\n"
                        )
                wait = (
                    self.poll_interval
                    if deadline is None
                    else max(0.0, min(self.poll_interval, deadline - now))
                )
                if waiting:
                    next_read = max(
                        late - now, events_read + self.events_interval - time.monotonic()
                    )
                    wait = min(wait, max(0.0, next_read) + 0.01)
                if run.stuck_since is not None:
                    wait = min(
                        wait,
                        max(0.0, run.stuck_since + self.pending_grace - time.monotonic()) + 0.01,
                    )
                try:
                    type_, event_pod = await asyncio.wait_for(q.get(), wait)
                except asyncio.TimeoutError:
                    if (
                        request.name not in self._watch.pods
                        and self._watch.listed_at > following_since
                    ):
                        # Created and deleted while the watch was re-listing: no event
                        # will ever come, but a list newer than the pod lacks it.
                        deleted = True
                        if pod is None:
                            raise BuildFailed(
                                f"The build pod {request.name} was deleted before it started.\n"
                            ) from None
                        break
                    continue
                if uid is not None and event_pod["metadata"].get("uid") != uid:
                    continue  # another pod that had (or will have) this name
                pod = event_pod
                if type_ in ("DELETED", VANISHED):
                    deleted = True
            await self._finish(run, pod, deleted)
        finally:
            await run.stop_logs()

    def _start_logs(self, run: _Run) -> None:
        follower = LogFollower(
            self._api_client,
            self.namespace,
            run.request.name,
            run.on_line,
            run.finished,
            eof_grace=self.log_eof_grace,
            backoff_base=self.backoff_base / 2,
            backoff_cap=min(10.0, self.backoff_cap),
        )
        run.logs = asyncio.create_task(follower.run(), name=f"logs-{run.request.name}")

    def _report_state(self, run: _Run, pod: dict) -> None:
        reason = stuck_reason(pod)
        if reason:
            if run.stuck_since is None:
                run.stuck_since = time.monotonic()
            run.stuck = reason
        else:
            run.stuck_since = None
            run.stuck = ""
        if reason:
            message = (
                f"Build pod cannot start: {reason} "
                f"(the build fails if this lasts {_duration(self.pending_grace)})"
            )
        elif is_running(pod):
            message = "Build pod started"
        else:
            state = waiting_message(pod)
            message = f"Build pod: {state}" if state else ""
        if message and message != run.last_state:
            run.last_state = message
            run.emit_state(message)

    async def _finish(self, run: _Run, pod: dict, deleted: bool) -> None:
        term = terminated_state(pod)
        if is_running(pod) and run.logs is None:
            # It went from Pending to ended between two events: read the whole log now.
            self._start_logs(run)
        await run.drain_logs(self.log_drain_timeout)
        succeeded = term is not None and term.get("exitCode") == 0 and pod_phase(pod) != "Failed"
        # We delete only after deciding, so a deletion seen before is someone else's.
        deleted = deleted or bool(pod["metadata"].get("deletionTimestamp"))
        if not deleted:
            self._delete_later(run.request.name)
        if succeeded:
            return
        if deleted:
            raise BuildFailed(
                f"The build pod {run.request.name} was deleted before the build finished "
                "(by someone else, or its node went away).\n"
            )
        if (pod.get("status") or {}).get("reason") == "DeadlineExceeded":
            raise BuildFailed(
                f"The build took longer than {_duration(self.build_timeout)}, the limit for one build.\n"
            )
        if (term or {}).get("reason") == "OOMKilled":
            raise BuildFailed(
                "The build pod ran out of memory (OOMKilled); c.KubernetesBuilder.resources "
                "sets its limit.\n"
            )
        if run.last_error:
            raise BuildFailed(run.failure_message())
        detail = f"; last log line: {run.last_line.strip()}" if run.last_line.strip() else ""
        raise BuildFailed(f"The build failed: {termination_message(pod)}{detail}\n")

    def _delete_later(self, name: str) -> None:
        async def linger_then_delete():
            try:
                await asyncio.sleep(self.finished_pod_linger)
            finally:
                # also when stop() cuts the linger short
                await self._delete_pod(name)
                self._deletions.pop(name, None)

        if name not in self._deletions:
            self._deletions[name] = asyncio.create_task(linger_then_delete())

    async def _delete_pod(self, name: str) -> None:
        """Delete a build pod; gone already is fine; the reaper retries what fails here."""
        from kubernetes_asyncio.client.exceptions import ApiException

        if self._core is None:
            return
        delays = backoff_delays(self.backoff_base)
        for _attempt in range(3):
            try:
                await self._core.delete_namespaced_pod(
                    name,
                    self.namespace,
                    propagation_policy="Background",
                    _request_timeout=aiohttp.ClientTimeout(total=30),
                )
                self.log.info("Deleted build pod %s", name)
                return
            except ApiException as e:
                if e.status == 404:
                    return
                if not _retryable(e.status):
                    self.log.warning("Deleting pod %s: %s", name, _api_message(e))
                    return
                err: Any = e.status
            except (aiohttp.ClientError, asyncio.TimeoutError) as e:
                err = e
            self.log.warning("Deleting pod %s failed (%s); retrying", name, err)
            await asyncio.sleep(next(delays))

    # --- the reaper ---

    async def _reap_loop(self) -> None:
        while True:
            await asyncio.sleep(self.reap_interval)
            try:
                await self.reap()
            except Exception:
                self.log.exception("Reaping build pods failed")

    async def reap(self) -> list[str]:
        """Delete build pods older than max_age, and finished pods nobody follows
        (the service stopped before it could clean them up). From the watch's cache:
        no extra API reads."""
        now = time.time()
        doomed = []
        for name, pod in list(self._watch.pods.items()):
            meta = pod["metadata"]
            if meta.get("deletionTimestamp"):
                continue
            created = parse_time(meta.get("creationTimestamp")) or now
            if self.max_age and now - created > self.max_age:
                self.log.warning(
                    "Reaping build pod %s: older than %s", name, _duration(self.max_age)
                )
                doomed.append(name)
                continue
            if is_finished(pod) and name not in self._following:
                ended = parse_time((terminated_state(pod) or {}).get("finishedAt")) or created
                if now - ended > self.orphan_grace:
                    self.log.info("Reaping finished build pod %s that nobody follows", name)
                    doomed.append(name)
        for name in doomed:
            await self._delete_pod(name)
        await self._reap_secrets(now)
        return doomed

    async def _reap_secrets(self, now: float) -> list[str]:
        """Delete build Secrets whose pod is gone: left when the service stopped between
        creating one and handing it to its pod (an owned one goes with its pod)."""
        from kubernetes_asyncio.client.exceptions import ApiException

        try:
            secrets = await self._core.list_namespaced_secret(
                self.namespace,
                label_selector=self._watch.label_selector,
                _request_timeout=aiohttp.ClientTimeout(total=30),
            )
        except (ApiException, aiohttp.ClientError, asyncio.TimeoutError) as e:
            self.log.warning("Listing build secrets: %s", getattr(e, "reason", e))
            return []
        doomed = []
        for secret in secrets.items:
            meta = secret.metadata
            build = (meta.annotations or {}).get(ANNOTATION_PREFIX + "build", "")
            created = meta.creation_timestamp.timestamp() if meta.creation_timestamp else now
            if build in self._watch.pods or build in self._following or meta.deletion_timestamp:
                continue
            if now - created > self.orphan_grace:
                self.log.info("Reaping build secret %s whose pod is gone", meta.name)
                doomed.append(meta.name)
        for name in doomed:
            await self._delete_secret(name)
        return doomed


class _Run:
    """What one build remembers while it follows its pod."""

    def __init__(self, request: BuildRequest, emit: Emit):
        self.request = request
        self.emit = emit
        self.output = Repo2DockerOutput()
        self.last_state = ""
        self.stuck = ""
        self.stuck_since: float | None = None
        self.finished = asyncio.Event()
        self.logs: asyncio.Task | None = None

    @property
    def phase(self) -> str:
        return self.output.phase

    @property
    def last_error(self) -> str:
        return self.output.last_error

    @property
    def last_line(self) -> str:
        return self.output.last_line

    def emit_state(self, message: str) -> None:
        self.emit(Event(self.phase, message + "\n"))

    def on_line(self, line: str) -> None:
        event = self.output.line(line)
        if event is not None:
            self.emit(event)

    def failure_message(self) -> str:
        return self.output.failure_message()

    async def drain_logs(self, timeout: float) -> None:
        self.finished.set()
        if self.logs is None:
            return
        try:
            await asyncio.wait_for(asyncio.shield(self.logs), timeout)
        except asyncio.TimeoutError:
            pass
        except Exception:
            logging.getLogger(__name__).exception("Log follower of %s failed", self.request.name)

    async def stop_logs(self) -> None:
        if self.logs is not None and not self.logs.done():
            self.logs.cancel()
            try:
                await self.logs
            except (asyncio.CancelledError, Exception):  # noqa: BLE001
                pass


def _failed(pod: dict) -> bool:
    """Finished, and not with exit code 0."""
    term = terminated_state(pod) or {}
    return is_finished(pod) and (pod_phase(pod) == "Failed" or term.get("exitCode") != 0)


def _retryable(status: int | None) -> bool:
    return status in (429, 500, 502, 503, 504)


def _api_message(e) -> str:
    """The human part of an ApiException (the Status message), else its reason."""
    import json

    try:
        return json.loads(e.body).get("message") or e.reason
    except (TypeError, ValueError, AttributeError):
        return f"HTTP {e.status} {e.reason}"
