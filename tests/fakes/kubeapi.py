"""A stand-in Kubernetes API server for tests: pods in namespaces, on the real wire protocol.

No kube-apiserver can run on these machines, so this speaks just enough of its HTTP API
for a pod client (kubernetes_asyncio, kubectl-style JSON) to not know the difference:

- pods: create (POST), get, list, delete, watch (`watch=true|True|1`), in a namespace
  or across namespaces, with `labelSelector` (`k=v`, `k==v`, `k!=v`, `k`, `!k`,
  `k in (a,b)`, `k notin (a,b)`);
- `resourceVersion`: every change bumps a global counter; a list answers the current
  one; a watch from version N replays what changed after N, then follows live;
  a version older than the retained history ends the watch with an ERROR event carrying
  a 410 Expired Status (what the watch cache does), or an HTTP 410 if asked;
- watch events are JSON lines (ADDED/MODIFIED/DELETED/BOOKMARK/ERROR) on a chunked
  response; `allowWatchBookmarks` and `timeoutSeconds` are honoured;
- pod log with `follow`, `timestamps`, `sinceTime`, `tailLines`: 400 while the container
  waits to start, then the lines so far, then new lines until the container ends;
- secrets: create, get, list (with `labelSelector`), merge-patch
  (`application/merge-patch+json`; other patch types answer 415 here), delete; `data`
  must be base64 (400 otherwise, as the API's JSON decoding says), `stringData` is
  folded into `data` on create; the garbage collector deletes a Secret whose
  ownerReferences name a pod (by uid) that is gone, or is deleted;
- events (core/v1): list and watch, in a namespace or across namespaces, with
  `fieldSelector` on the fields the real API indexes (`involvedObject.name`,
  `involvedObject.uid`, `reason`, `type`, ...; any other field answers 400 "field label
  not supported"); record_event() plays the kubelet's and scheduler's recorder, which
  folds a repeat of the same event into `count` and `lastTimestamp`. Pods take
  `fieldSelector` too (`metadata.name`, `spec.nodeName`, `status.phase`);
- Status objects for errors (404 NotFound, 409 AlreadyExists, 422 Invalid, 500...).
  Created pods are validated with kubernetes-validate --strict, like the real API
  rejects unknown fields (with fieldValidation=Strict).

With `secure=True` it is a cluster's API server as a pod meets it: HTTPS with a
certificate from the cluster's CA (`ca_pem`, what pods get as ca.crt), a bearer token on
every request (tokens it issued for a ServiceAccount, bound to a pod that still exists:
401 otherwise; no token is system:anonymous), RBAC on every request against the Roles
and bindings given with add_object() (403 with the API server's Status), and the
ServiceAccount admission plugin on pod creation (the ServiceAccount must exist; the
projected token volume is added unless automountServiceAccountToken says no). Tests and
harnesses act as cluster admin through admin_session(). See kubeauth.py.

Tests play kubelet and chaos monkey through Python methods: schedule(), set_waiting(),
set_unschedulable(), start_container(), log(), finish(), patch_pod(), delete_pod(),
drop_watches(), compact()/expire_next_watches() (410), fail_requests() (500s),
log_delay / break_logs() (slow and broken log streams). `stats` counts requests and
concurrently open streams per endpoint, and TCP connections.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import copy
import datetime
import json
import re
import time
import uuid
from collections import defaultdict, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from aiohttp import web

from . import kubeauth

Pod = dict

CONTAINER = "builder"


def _true(value: str | None) -> bool:
    # The apiserver parses booleans with Go's strconv.ParseBool.
    return value in ("1", "t", "T", "true", "TRUE", "True")


def now_rfc3339() -> str:
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def rfc3339nano(ns: int) -> str:
    """Go's time.RFC3339Nano, as the kubelet writes log timestamps: trailing zeros trimmed."""
    secs, frac = divmod(ns, 1_000_000_000)
    base = datetime.datetime.fromtimestamp(secs, datetime.timezone.utc).strftime(
        "%Y-%m-%dT%H:%M:%S"
    )
    frac_s = f"{frac:09d}".rstrip("0")
    return base + (f".{frac_s}" if frac_s else "") + "Z"


def parse_rfc3339_ns(value: str) -> int:
    m = re.match(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d{1,9}))?(Z|[+-]\d\d:\d\d)$", value)
    if not m:
        raise ValueError(value)
    base = datetime.datetime.fromisoformat(m.group(1) + (m.group(3).replace("Z", "+00:00")))
    return int(base.timestamp()) * 1_000_000_000 + int((m.group(2) or "0").ljust(9, "0"))


def status(code: int, reason: str, message: str, details: dict | None = None) -> dict:
    s = {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code,
    }
    if details:
        s["details"] = details
    return s


def status_response(code: int, reason: str, message: str, details: dict | None = None):
    return web.json_response(status(code, reason, message, details), status=code)


# --- label selectors ------------------------------------------------------------------


def parse_selector(selector: str) -> Callable[[dict], bool]:
    """A predicate on a labels dict for a Kubernetes label selector string."""
    if not selector:
        return lambda labels: True
    terms = [t.strip() for t in re.split(r",(?![^()]*\))", selector) if t.strip()]
    checks = []
    for term in terms:
        m = re.match(r"^([\w./-]+)\s+(in|notin)\s+\(([^)]*)\)$", term)
        if m:
            key, op, values = m.group(1), m.group(2), {v.strip() for v in m.group(3).split(",")}
            if op == "in":
                checks.append(lambda labels, k=key, vs=values: labels.get(k) in vs)
            else:
                checks.append(lambda labels, k=key, vs=values: labels.get(k) not in vs)
            continue
        m = re.match(r"^([\w./-]+)\s*(==|=|!=)\s*([\w./-]*)$", term)
        if m:
            key, op, value = m.groups()
            if op == "!=":
                checks.append(lambda labels, k=key, v=value: labels.get(k) != v)
            else:
                checks.append(lambda labels, k=key, v=value: labels.get(k) == v)
            continue
        m = re.match(r"^(!?)([\w./-]+)$", term)
        if m:
            neg, key = m.groups()
            if neg:
                checks.append(lambda labels, k=key: k not in labels)
            else:
                checks.append(lambda labels, k=key: k in labels)
            continue
        raise ValueError(f"unable to parse requirement: {term!r}")
    return lambda labels: all(c(labels) for c in checks)


# Field labels the API server indexes, per kind (pkg/apis/core/v1/conversion.go); any
# other answers 400 "field label not supported". "source" is source.component.
FIELD_LABELS = {
    "Pod": {
        "metadata.name": ("metadata", "name"),
        "metadata.namespace": ("metadata", "namespace"),
        "spec.nodeName": ("spec", "nodeName"),
        "spec.restartPolicy": ("spec", "restartPolicy"),
        "spec.schedulerName": ("spec", "schedulerName"),
        "spec.serviceAccountName": ("spec", "serviceAccountName"),
        "status.phase": ("status", "phase"),
        "status.podIP": ("status", "podIP"),
        "status.nominatedNodeName": ("status", "nominatedNodeName"),
    },
    "Event": {
        "metadata.name": ("metadata", "name"),
        "metadata.namespace": ("metadata", "namespace"),
        "involvedObject.kind": ("involvedObject", "kind"),
        "involvedObject.namespace": ("involvedObject", "namespace"),
        "involvedObject.name": ("involvedObject", "name"),
        "involvedObject.uid": ("involvedObject", "uid"),
        "involvedObject.apiVersion": ("involvedObject", "apiVersion"),
        "involvedObject.resourceVersion": ("involvedObject", "resourceVersion"),
        "involvedObject.fieldPath": ("involvedObject", "fieldPath"),
        "reason": ("reason",),
        "reportingComponent": ("reportingComponent",),
        "source": ("source", "component"),
        "type": ("type",),
    },
}


def parse_field_selector(selector: str, kind: str) -> Callable[[dict], bool]:
    """A predicate on an object for a field selector (`f=v`, `f==v`, `f!=v`, comma-joined)."""
    checks = []
    for term in (t.strip() for t in (selector or "").split(",")):
        if not term:
            continue
        m = re.match(r"^([\w.]+)\s*(==|=|!=)\s*(.*)$", term)
        if not m:
            raise ValueError(f"invalid selector: {term!r}; can't understand {term!r}")
        label, op, value = m.groups()
        path = FIELD_LABELS[kind].get(label)
        if path is None:
            raise ValueError(f"field label not supported: {label}")

        def get(obj, path=path):
            for part in path:
                obj = (obj or {}).get(part) if isinstance(obj, dict) else None
            return "" if obj is None else str(obj)

        if op == "!=":
            checks.append(lambda obj, g=get, v=value: g(obj) != v)
        else:
            checks.append(lambda obj, g=get, v=value: g(obj) == v)
    return lambda obj: all(c(obj) for c in checks)


def _selectors(request: web.Request, kind: str) -> Callable[[dict], bool]:
    """The labelSelector and fieldSelector of a list or watch, as one predicate on objects."""
    labels = parse_selector(request.query.get("labelSelector", ""))
    fields = parse_field_selector(request.query.get("fieldSelector", ""), kind)
    return lambda obj: labels(obj["metadata"].get("labels") or {}) and fields(obj)


# --- state --------------------------------------------------------------------------


@dataclass(eq=False)
class _Watch:
    kind: str
    namespace: str | None
    matches: Callable[[dict], bool]
    queue: asyncio.Queue
    response: web.StreamResponse
    request: web.Request


@dataclass
class _Log:
    lines: list = field(default_factory=list)  # (ns timestamp, text)
    changed: asyncio.Event = field(default_factory=asyncio.Event)
    ended: bool = False
    # break the next streams after this many lines: list of line counts
    breaks: deque = field(default_factory=deque)

    def notify(self):
        self.changed.set()
        self.changed = asyncio.Event()


@dataclass
class EndpointStats:
    requests: int = 0
    open: int = 0
    peak_open: int = 0


class FakeKubeAPI:
    """An in-process Kubernetes API server for pods. `await start()`, then point a
    client at `url`."""

    def __init__(
        self,
        *,
        history_limit: int = 10_000,
        bookmark_interval: float = 1.0,
        validate: bool = True,
        kube_version: str = "1.30",
        gone_as_http_status: bool = False,
        secure: bool = False,
    ):
        self.secure = secure
        # secure: the cluster's PKI, token issuer, RBAC and ServiceAccounts
        self.pki: kubeauth.ClusterPKI | None = None
        self.tokens = kubeauth.TokenIssuer() if secure else None
        self.rbac = kubeauth.RBAC()
        self.service_accounts: dict[tuple[str, str], dict] = {}
        self.admin_token = ""
        # (user, verb, resource, namespace, name) of every request answered 403 or 401
        self.denied: list[tuple[str, str, str, str, str]] = []
        self.users_seen: set[str] = set()  # who made API requests (not the admin)
        # (user, verb, resource[/subresource], namespace) of every request RBAC allowed
        self.allowed: set[tuple[str, str, str, str]] = set()
        self.host = ""
        self.port = 0
        self.history_limit = history_limit
        self.bookmark_interval = bookmark_interval
        self.validate = validate
        self.kube_version = kube_version
        self.gone_as_http_status = gone_as_http_status
        self.rv = 1
        self.pods: dict[tuple[str, str], Pod] = {}
        self.secrets: dict[tuple[str, str], dict] = {}
        self.events: dict[tuple[str, str], dict] = {}
        self.deleted_secrets: list[tuple[str, str]] = []  # (namespace, name), in order
        # (rv, type, namespace, kind, object) for replay; at or below compacted_rv is gone
        self.history: deque = deque()
        self.compacted_rv = 0
        self._watches: set[_Watch] = set()
        self._logs: dict[tuple[str, str], _Log] = {}
        self._log_responses: dict[tuple[str, str], dict] = defaultdict(dict)  # id -> request
        self._listeners: list[asyncio.Queue] = []
        self._failures: list[dict] = []
        self._expire_next = 0
        self.log_delay = 0.0  # seconds between lines sent to a following client
        self.stats: dict[str, EndpointStats] = defaultdict(EndpointStats)
        self.tcp_connections = 0
        self.tcp_open = 0
        self.tcp_peak_open = 0
        self.request_log: list[tuple[str, str]] = []  # (method, path_qs), for assertions
        self.keep_request_log = True
        self._runner: web.AppRunner | None = None
        self.url = ""

    # --- server lifecycle ---

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        app = web.Application(middlewares=[self._middleware], client_max_size=10 * 2**20)
        ns = "/api/v1/namespaces/{ns}/pods"
        app.router.add_get(ns, self._list_or_watch)
        app.router.add_get("/api/v1/pods", self._list_or_watch)
        app.router.add_post(ns, self._create)
        app.router.add_get(ns + "/{name}", self._get)
        app.router.add_delete(ns + "/{name}", self._delete)
        app.router.add_get(ns + "/{name}/log", self._log)
        sec = "/api/v1/namespaces/{ns}/secrets"
        app.router.add_get(sec, self._list_secrets)
        app.router.add_post(sec, self._create_secret)
        app.router.add_get(sec + "/{name}", self._get_secret)
        app.router.add_patch(sec + "/{name}", self._patch_secret)
        app.router.add_delete(sec + "/{name}", self._delete_secret)
        app.router.add_get("/api/v1/namespaces/{ns}/events", self._list_or_watch_events)
        app.router.add_get("/api/v1/events", self._list_or_watch_events)
        app.router.add_get("/version", self._version)
        app.router.add_get("/fake/stats", self._stats)
        self._runner = web.AppRunner(
            app, handle_signals=False, access_log=None, shutdown_timeout=0.1
        )
        await self._runner.setup()
        self._count_tcp(self._runner.server)
        ssl_context = None
        if self.secure:
            import tempfile
            from pathlib import Path

            self.pki = kubeauth.ClusterPKI([host])
            self._tls_dir = tempfile.TemporaryDirectory(prefix="fake-kubeapi-")
            ssl_context = self.pki.server_context(Path(self._tls_dir.name))
            admin = {"metadata": {"name": "kubernetes-admin", "uid": str(uuid.uuid4())}}
            self.admin_token = self.tokens.issue("kube-system", admin)
        site = web.TCPSite(self._runner, host, port, ssl_context=ssl_context)
        await site.start()
        sock = site._server.sockets[0]
        self.host, self.port = sock.getsockname()[:2]
        scheme = "https" if self.secure else "http"
        self.url = f"{scheme}://{self.host}:{self.port}"
        return self.url

    @property
    def ca_pem(self) -> str:
        return self.pki.ca_pem if self.pki else ""

    def admin_session(self) -> aiohttp.ClientSession:
        """A client session with the cluster admin's credentials (what `kubectl` and
        `helm install` use), trusting the cluster's CA."""
        if not self.secure:
            return aiohttp.ClientSession()
        return aiohttp.ClientSession(
            headers={"Authorization": f"Bearer {self.admin_token}"},
            connector=aiohttp.TCPConnector(ssl=self.pki.client_context()),
        )

    async def stop(self) -> None:
        self.drop_watches(abrupt=True)
        for key in list(self._log_responses):
            self._abort_logs(key)
        if self._runner:
            await self._runner.cleanup()
            self._runner = None
        if getattr(self, "_tls_dir", None):
            self._tls_dir.cleanup()
            self._tls_dir = None

    async def __aenter__(self):
        await self.start()
        return self

    async def __aexit__(self, *exc):
        await self.stop()

    def _count_tcp(self, server) -> None:
        made, lost = server.connection_made, server.connection_lost

        def connection_made(handler, transport):
            self.tcp_connections += 1
            self.tcp_open += 1
            self.tcp_peak_open = max(self.tcp_peak_open, self.tcp_open)
            return made(handler, transport)

        def connection_lost(handler, exc=None):
            self.tcp_open -= 1
            return lost(handler, exc)

        server.connection_made = connection_made
        server.connection_lost = connection_lost

    # --- fault injection ---

    def fail_requests(
        self, n: int, *, status: int = 500, endpoint: str | None = None, method: str | None = None
    ) -> None:
        """The next `n` requests to `endpoint` (list, watch, create, get, delete, log; None
        for any) answer an error Status with code `status`."""
        self._failures.append({"n": n, "status": status, "endpoint": endpoint, "method": method})

    async def wait_for_watches(self, n: int = 1, timeout: float = 5) -> None:
        """Until `n` watch streams are open (a client opens its watch in the background,
        after its list: a test that drops watches must not come first)."""
        deadline = time.monotonic() + timeout
        while len(self._watches) < n:
            if time.monotonic() > deadline:
                raise AssertionError(f"{len(self._watches)} watches open after {timeout} s")
            await asyncio.sleep(0.01)

    def drop_watches(self, abrupt: bool = True) -> int:
        """End every open watch stream: abruptly (connection reset) or cleanly (as a
        server-side timeout does). Returns how many were dropped."""
        n = 0
        for w in list(self._watches):
            n += 1
            if abrupt and w.request.transport is not None:
                w.request.transport.abort()
            w.queue.put_nowait(None)
        return n

    def compact(self) -> None:
        """Forget the change history (etcd compaction): watches resuming from any version
        older than the current one get 410 Gone."""
        self.history.clear()
        self.compacted_rv = self.rv

    def expire_next_watches(self, n: int = 1) -> None:
        """The next `n` watches that give a resourceVersion get 410 Gone, whatever it is."""
        self._expire_next += n

    def break_logs(self, name: str, namespace: str = "default", after_lines: int | None = None):
        """Cut the pod's log streams: the open ones now (after_lines None), or the next
        one after it has sent `after_lines` lines."""
        key = (namespace, name)
        if after_lines is None:
            self._abort_logs(key)
        else:
            self._log_for(key).breaks.append(after_lines)

    def _abort_logs(self, key) -> None:
        for request in list(self._log_responses.get(key, {}).values()):
            if request.transport is not None:
                request.transport.abort()

    # --- the Python side: driving pods as a kubelet would ---

    def listen(self) -> asyncio.Queue:
        """A queue of every (type, pod copy) change, for harnesses that act on pods."""
        q: asyncio.Queue = asyncio.Queue()
        self._listeners.append(q)
        return q

    def get_pod(self, name: str, namespace: str = "default") -> Pod | None:
        return self.pods.get((namespace, name))

    async def wait_for_pod(self, name: str, namespace: str = "default", timeout: float = 10) -> Pod:
        deadline = time.monotonic() + timeout
        while (namespace, name) not in self.pods:
            if time.monotonic() > deadline:
                raise TimeoutError(f"pod {namespace}/{name} was not created")
            await asyncio.sleep(0.01)
        return self.pods[(namespace, name)]

    async def wait_gone(self, name: str, namespace: str = "default", timeout: float = 10) -> None:
        deadline = time.monotonic() + timeout
        while (namespace, name) in self.pods:
            if time.monotonic() > deadline:
                raise TimeoutError(f"pod {namespace}/{name} was not deleted")
            await asyncio.sleep(0.01)

    def add_pod(self, pod: Pod, namespace: str = "default") -> Pod:
        """Put a pod in place directly (one made by a previous run of the service)."""
        pod = copy.deepcopy(pod)
        self._default_pod(pod, namespace)
        return self._store("ADDED", pod)

    def patch_pod(self, name: str, change: Callable[[Pod], Any], namespace: str = "default") -> Pod:
        """Apply `change(pod)` in place and tell the watchers (MODIFIED)."""
        pod = copy.deepcopy(self.pods[(namespace, name)])
        change(pod)
        return self._store("MODIFIED", pod)

    def schedule(self, name: str, node: str = "node-1", namespace: str = "default") -> Pod:
        def change(pod):
            pod["spec"]["nodeName"] = node
            st = pod["status"]
            st["conditions"] = [c for c in st.get("conditions", []) if c["type"] != "PodScheduled"]
            st["conditions"].append(
                {"type": "PodScheduled", "status": "True", "lastTransitionTime": now_rfc3339()}
            )
            st["hostIP"] = "10.0.0.1"
            self._set_container_state(pod, {"waiting": {"reason": "ContainerCreating"}})

        pod = self.patch_pod(name, change, namespace)
        self.record_event(
            name,
            "Scheduled",
            f"Successfully assigned {namespace}/{name} to {node}",
            type="Normal",
            component="default-scheduler",
            host="",
            namespace=namespace,
        )
        return pod

    def set_unschedulable(
        self,
        name: str,
        message: str = "0/3 nodes are available: 3 Insufficient memory.",
        namespace: str = "default",
        since: str | None = None,
    ) -> Pod:
        def change(pod):
            st = pod["status"]
            st["conditions"] = [c for c in st.get("conditions", []) if c["type"] != "PodScheduled"]
            st["conditions"].append(
                {
                    "type": "PodScheduled",
                    "status": "False",
                    "reason": "Unschedulable",
                    "message": message,
                    "lastTransitionTime": since or now_rfc3339(),
                }
            )

        pod = self.patch_pod(name, change, namespace)
        # The scheduler says it twice: in the condition and in an Event.
        self.record_event(
            name,
            "FailedScheduling",
            message,
            component="default-scheduler",
            host="",
            namespace=namespace,
        )
        return pod

    def set_waiting(
        self, name: str, reason: str, message: str = "", namespace: str = "default"
    ) -> Pod:
        """The container waits: ContainerCreating, ErrImagePull, ImagePullBackOff..."""

        def change(pod):
            if not pod["spec"].get("nodeName"):
                pod["spec"]["nodeName"] = "node-1"
            waiting = {"reason": reason}
            if message:
                waiting["message"] = message
            self._set_container_state(pod, {"waiting": waiting})

        return self.patch_pod(name, change, namespace)

    def start_container(
        self, name: str, namespace: str = "default", node: str = "node-1", ready: bool = True
    ) -> Pod:
        def change(pod):
            pod["spec"].setdefault("nodeName", node)
            pod["status"]["phase"] = "Running"
            pod["status"]["startTime"] = pod["status"].get("startTime") or now_rfc3339()
            self._set_container_state(pod, {"running": {"startedAt": now_rfc3339()}}, ready=ready)

        self._log_for((namespace, name))
        return self.patch_pod(name, change, namespace)

    def set_ready(self, name: str, ready: bool, namespace: str = "default") -> Pod | None:
        """The readiness probes' verdict (containerStatuses[0].ready)."""
        pod = self.get_pod(name, namespace)
        statuses = (pod or {}).get("status", {}).get("containerStatuses") or [{}]
        if pod is None or statuses[0].get("ready") == ready:
            return pod

        def change(pod):
            pod["status"]["containerStatuses"][0]["ready"] = ready

        return self.patch_pod(name, change, namespace)

    def log(self, name: str, *lines: str, namespace: str = "default") -> None:
        """Append lines (without newline) to the build container's log."""
        log = self._log_for((namespace, name))
        for line in lines:
            log.lines.append((time.time_ns(), line))
        log.notify()

    def log_text(self, name: str, namespace: str = "default") -> str:
        return "".join(t + "\n" for _, t in self._log_for((namespace, name)).lines)

    def finish(
        self,
        name: str,
        exit_code: int = 0,
        *,
        reason: str | None = None,
        message: str | None = None,
        namespace: str = "default",
    ) -> Pod:
        """The container ends with `exit_code`; the pod is Succeeded (0) or Failed."""

        def change(pod):
            term = {
                "exitCode": exit_code,
                "reason": reason or ("Completed" if exit_code == 0 else "Error"),
                "startedAt": pod["status"].get("startTime") or now_rfc3339(),
                "finishedAt": now_rfc3339(),
            }
            if message:
                term["message"] = message
            pod["status"]["phase"] = "Succeeded" if exit_code == 0 else "Failed"
            self._set_container_state(pod, {"terminated": term})

        pod = self.patch_pod(name, change, namespace)
        log = self._log_for((namespace, name))
        log.ended = True
        log.notify()
        return pod

    def set_phase(
        self, name: str, phase: str, reason: str = "", message: str = "", namespace: str = "default"
    ) -> Pod:
        """Set the pod phase (and pod-level reason), e.g. Failed/DeadlineExceeded."""

        def change(pod):
            pod["status"]["phase"] = phase
            if reason:
                pod["status"]["reason"] = reason
            if message:
                pod["status"]["message"] = message

        pod = self.patch_pod(name, change, namespace)
        if phase in ("Succeeded", "Failed"):
            log = self._log_for((namespace, name))
            log.ended = True
            log.notify()
        return pod

    def delete_pod(self, name: str, namespace: str = "default") -> Pod | None:
        """Delete a pod as someone else would (kubectl delete)."""
        return self._remove(namespace, name)

    # --- events ---

    def record_event(
        self,
        pod_name: str,
        reason: str,
        message: str,
        *,
        type: str = "Warning",
        component: str = "kubelet",
        host: str | None = None,
        namespace: str = "default",
    ) -> dict:
        """A core/v1 Event about a pod, as the kubelet's (or scheduler's) recorder writes
        it: a repeat of the same (object, type, reason, message, source) bumps `count` and
        `lastTimestamp` of the existing Event instead of adding one."""
        pod = self.pods.get((namespace, pod_name)) or {"metadata": {}, "spec": {}}
        meta = pod["metadata"]
        involved = {
            "kind": "Pod",
            "namespace": namespace,
            "name": pod_name,
            "uid": meta.get("uid", ""),
            "apiVersion": "v1",
            "resourceVersion": meta.get("resourceVersion", ""),
        }
        host = host if host is not None else pod["spec"].get("nodeName")
        source = {"component": component, **({"host": host} if host else {})}
        self.rv += 1
        now = now_rfc3339()
        for key, event in self.events.items():
            if (
                event["involvedObject"]["uid"] == involved["uid"]
                and event["involvedObject"]["name"] == pod_name
                and (event["type"], event["reason"], event["message"], event["source"])
                == (type, reason, message, source)
            ):
                event = copy.deepcopy(event)
                event["count"] += 1
                event["lastTimestamp"] = now
                event["metadata"]["resourceVersion"] = str(self.rv)
                self.events[key] = event
                self._emit("MODIFIED", event, "Event")
                return copy.deepcopy(event)
        # The recorder names events <object>.<hex of the time>.
        name = f"{pod_name}.{time.time_ns():x}"
        event = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {
                "name": name,
                "namespace": namespace,
                "uid": str(uuid.uuid4()),
                "resourceVersion": str(self.rv),
                "creationTimestamp": now,
            },
            "involvedObject": involved,
            "reason": reason,
            "message": message,
            "source": source,
            "firstTimestamp": now,
            "lastTimestamp": now,
            "count": 1,
            "type": type,
            "eventTime": None,
            "reportingComponent": component,
            "reportingInstance": host or "",
        }
        self.events[(namespace, name)] = event
        self._emit("ADDED", event, "Event")
        return copy.deepcopy(event)

    def events_for(self, pod_name: str, namespace: str = "default") -> list[dict]:
        """The Events about a pod, oldest first (for assertions)."""
        return [
            copy.deepcopy(e)
            for (ns, _), e in sorted(
                self.events.items(), key=lambda kv: int(kv[1]["metadata"]["resourceVersion"])
            )
            if ns == namespace and e["involvedObject"]["name"] == pod_name
        ]

    # --- service accounts and RBAC (secure) ---

    def add_object(self, doc: dict, namespace: str = "default") -> None:
        """A ServiceAccount, Role, RoleBinding, ClusterRole or ClusterRoleBinding, as
        `kubectl apply` (or `helm install`) would create it."""
        if doc["kind"] == "ServiceAccount":
            self.add_service_account(
                doc["metadata"]["name"], doc["metadata"].get("namespace") or namespace, doc
            )
        else:
            self.rbac.add(copy.deepcopy(doc), namespace)

    def add_service_account(
        self, name: str, namespace: str = "default", doc: dict | None = None
    ) -> dict:
        account = copy.deepcopy(doc) if doc else {"apiVersion": "v1", "kind": "ServiceAccount"}
        meta = account.setdefault("metadata", {})
        meta.update(name=name, namespace=namespace, uid=str(uuid.uuid4()))
        meta["creationTimestamp"] = now_rfc3339()
        self.service_accounts[(namespace, name)] = account
        return copy.deepcopy(account)

    def get_service_account(self, name: str, namespace: str = "default") -> dict | None:
        """A ServiceAccount; `default` exists in every namespace (the ServiceAccount
        controller makes it as soon as the namespace is there)."""
        if (namespace, name) not in self.service_accounts and name == "default":
            self.add_service_account(name, namespace)
        return copy.deepcopy(self.service_accounts.get((namespace, name)))

    def role(self, name: str, namespace: str = "default") -> dict:
        """The Role itself, to change in place as `kubectl edit role` would."""
        return self.rbac.roles[(namespace, name)]

    def request_token(self, pod: dict, expiration: int = kubeauth.TOKEN_EXPIRATION) -> str:
        """What the kubelet gets from TokenRequest for a pod's projected token: bound to
        the pod and its ServiceAccount."""
        ns = pod["metadata"]["namespace"]
        name = pod["spec"].get("serviceAccountName") or "default"
        account = self.get_service_account(name, ns)
        if account is None:
            raise LookupError(f'serviceaccounts "{name}" not found')
        return self.tokens.issue(ns, account, pod, expiration, pod["spec"].get("nodeName"))

    def config_map(self, name: str, namespace: str = "default") -> dict[str, str] | None:
        """ConfigMaps the cluster publishes itself: kube-root-ca.crt in every namespace."""
        if name == kubeauth.ROOT_CA_CONFIG_MAP and self.pki:
            return {"ca.crt": self.pki.ca_pem}
        return None

    def _admit_service_account(self, pod: dict, namespace: str) -> str | None:
        """The ServiceAccount admission plugin: the pod's ServiceAccount (default
        `default`) must exist; its token volume is added unless automount says no.
        Returns the Forbidden message, or None."""
        spec = pod.setdefault("spec", {})
        name = spec.get("serviceAccountName") or "default"
        spec["serviceAccountName"] = name
        spec["serviceAccount"] = name
        account = self.get_service_account(name, namespace)
        if account is None:
            return (
                f'pods "{pod["metadata"]["name"]}" is forbidden: error looking up service '
                f'account {namespace}/{name}: serviceaccount "{name}" not found'
            )
        if not kubeauth.should_automount(account, spec):
            return None
        containers = spec.get("initContainers", []) + spec.get("containers", [])
        if any(
            m.get("mountPath") == kubeauth.SA_MOUNT
            for c in containers
            for m in c.get("volumeMounts", [])
        ):
            return None  # the pod brings its own
        volume, mount = kubeauth.service_account_volume()
        spec.setdefault("volumes", []).append(volume)
        for c in containers:
            c.setdefault("volumeMounts", []).append(dict(mount))
        return None

    # --- secrets ---

    def add_secret(
        self,
        name: str,
        data: dict[str, str],
        namespace: str = "default",
        labels: dict | None = None,
    ) -> dict:
        """Put a Secret in place (as an operator would); `data` values as plain text."""
        secret = {
            "apiVersion": "v1",
            "kind": "Secret",
            "type": "Opaque",
            "metadata": {"name": name, "labels": dict(labels or {})},
            "data": {k: base64.b64encode(v.encode()).decode() for k, v in data.items()},
        }
        self._default_secret(secret, namespace)
        self.secrets[(namespace, name)] = secret
        return copy.deepcopy(secret)

    def get_secret(self, name: str, namespace: str = "default") -> dict | None:
        return copy.deepcopy(self.secrets.get((namespace, name)))

    def secret_value(self, name: str, key: str, namespace: str = "default") -> str | None:
        """The decoded value of one key, None when the Secret or the key is missing."""
        secret = self.secrets.get((namespace, name))
        if secret is None or key not in (secret.get("data") or {}):
            return None
        return base64.b64decode(secret["data"][key]).decode()

    def _default_secret(self, secret: dict, namespace: str) -> None:
        meta = secret["metadata"]
        meta["namespace"] = namespace
        meta["uid"] = str(uuid.uuid4())
        meta["creationTimestamp"] = now_rfc3339()
        self.rv += 1
        meta["resourceVersion"] = str(self.rv)
        secret.setdefault("type", "Opaque")

    def _remove_secret(self, namespace: str, name: str) -> dict | None:
        secret = self.secrets.pop((namespace, name), None)
        if secret is not None:
            self.deleted_secrets.append((namespace, name))
        return secret

    def _collect_garbage(self, namespace: str) -> None:
        """The garbage collector: Secrets owned by a pod (uid) that no longer exists go."""
        uids = {p["metadata"]["uid"] for (ns, _), p in self.pods.items() if ns == namespace}
        for (ns, name), secret in list(self.secrets.items()):
            refs = secret["metadata"].get("ownerReferences") or []
            if (
                ns == namespace
                and refs
                and not any(r.get("kind") == "Pod" and r.get("uid") in uids for r in refs)
            ):
                self._remove_secret(ns, name)

    # --- internals: storage and events ---

    def _default_pod(self, pod: Pod, namespace: str) -> None:
        meta = pod.setdefault("metadata", {})
        meta["namespace"] = namespace
        meta.setdefault("uid", str(uuid.uuid4()))
        meta.setdefault("creationTimestamp", now_rfc3339())
        pod.setdefault("apiVersion", "v1")
        pod.setdefault("kind", "Pod")
        spec = pod.setdefault("spec", {})
        spec.setdefault("restartPolicy", "Always")
        spec.setdefault("dnsPolicy", "ClusterFirst")
        spec.setdefault("schedulerName", "default-scheduler")
        for c in spec.get("containers", []):
            c.setdefault("terminationMessagePath", "/dev/termination-log")
            c.setdefault("imagePullPolicy", "IfNotPresent")
        st = pod.setdefault("status", {})
        st.setdefault("phase", "Pending")
        st.setdefault("qosClass", "BestEffort")

    def _set_container_state(self, pod: Pod, state: dict, ready: bool = False) -> None:
        container = pod["spec"]["containers"][0]
        statuses = pod["status"].setdefault("containerStatuses", [])
        if not statuses:
            statuses.append(
                {
                    "name": container["name"],
                    "image": container.get("image", ""),
                    "imageID": "",
                    "restartCount": 0,
                    "started": False,
                    "ready": False,
                }
            )
        statuses[0]["state"] = state
        statuses[0]["ready"] = ready
        statuses[0]["started"] = "running" in state

    def _store(self, type_: str, pod: Pod) -> Pod:
        self.rv += 1
        pod["metadata"]["resourceVersion"] = str(self.rv)
        key = (pod["metadata"]["namespace"], pod["metadata"]["name"])
        self.pods[key] = pod
        self._emit(type_, pod)
        return copy.deepcopy(pod)

    def _remove(self, namespace: str, name: str) -> Pod | None:
        pod = self.pods.pop((namespace, name), None)
        if pod is None:
            return None
        self.rv += 1
        pod = copy.deepcopy(pod)
        pod["metadata"]["resourceVersion"] = str(self.rv)
        pod["metadata"]["deletionTimestamp"] = now_rfc3339()
        pod["metadata"]["deletionGracePeriodSeconds"] = 0
        self._emit("DELETED", pod)
        self._collect_garbage(namespace)
        log = self._logs.pop((namespace, name), None)
        if log:
            log.ended = True
            log.notify()
        return pod

    def _emit(self, type_: str, pod: Pod, kind: str = "Pod") -> None:
        ns = pod["metadata"]["namespace"]
        self.history.append((self.rv, type_, ns, kind, pod))
        while len(self.history) > self.history_limit:
            old = self.history.popleft()
            self.compacted_rv = old[0]
        for w in self._watches:
            if w.kind == kind and (w.namespace is None or w.namespace == ns) and w.matches(pod):
                w.queue.put_nowait((type_, pod))
        if kind == "Pod":
            for q in self._listeners:
                q.put_nowait((type_, copy.deepcopy(pod)))

    def _log_for(self, key) -> _Log:
        if key not in self._logs:
            self._logs[key] = _Log()
        return self._logs[key]

    # --- HTTP ---

    @staticmethod
    def _endpoint(request: web.Request) -> str:
        route = request.match_info.route.resource
        path = route.canonical if route is not None else request.path
        if path.endswith("/log"):
            return "log"
        if "/secrets" in path:
            if path.endswith("{name}"):
                return "secret-" + request.method.lower()
            return "secret-create" if request.method == "POST" else "secret-list"
        if path.endswith("/events"):
            return "event-watch" if _true(request.query.get("watch")) else "event-list"
        if path.endswith("{name}"):
            return {"GET": "get", "DELETE": "delete"}.get(request.method, request.method)
        if path.endswith("/pods"):
            if request.method == "POST":
                return "create"
            return "watch" if _true(request.query.get("watch")) else "list"
        return path

    def _authenticate(self, request: web.Request) -> kubeauth.User | None:
        """The user a request is from; None for a token this server did not issue (or
        one whose ServiceAccount or bound pod is gone: 401)."""
        header = request.headers.get("Authorization", "")
        if not header:
            return kubeauth.ANONYMOUS
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return None
        token = token.strip()
        if token == self.admin_token:
            return kubeauth.ADMIN
        claims = self.tokens.verify(token)
        if claims is None:
            return None
        k8s = claims["kubernetes.io"]
        ns, sa = k8s["namespace"], k8s["serviceaccount"]
        account = self.service_accounts.get((ns, sa["name"]))
        if account is None or account["metadata"]["uid"] != sa["uid"]:
            return None
        if "pod" in k8s:
            pod = self.pods.get((ns, k8s["pod"]["name"]))
            if pod is None or pod["metadata"]["uid"] != k8s["pod"]["uid"]:
                return None  # "the token has been invalidated" with its pod
        return kubeauth.service_account_user(ns, sa["name"])

    def _check_access(self, request: web.Request) -> web.Response | None:
        """401 or 403 as the API server's filters answer them, or None to go on."""
        if request.path.startswith("/fake/"):
            return None  # the harness's own endpoints, not the API
        attrs = kubeauth.request_attributes(request.method, request.path, request.query)
        user = self._authenticate(request)
        if user is None:
            self.denied.append(("", attrs.verb, attrs.resource, attrs.namespace, attrs.name))
            return web.json_response(kubeauth.UNAUTHORIZED, status=401)
        if user is not kubeauth.ADMIN:
            self.users_seen.add(user.name)
        allowed, reason = self.rbac.authorize(user, attrs)
        resource = attrs.resource + (f"/{attrs.subresource}" if attrs.subresource else "")
        if allowed:
            if attrs.resource_request:
                self.allowed.add((user.name, attrs.verb, resource, attrs.namespace))
            return None
        self.denied.append((user.name, attrs.verb, resource, attrs.namespace, attrs.name))
        return web.json_response(kubeauth.forbidden_status(user, attrs, reason), status=403)

    @web.middleware
    async def _middleware(self, request: web.Request, handler):
        endpoint = self._endpoint(request)
        if self.keep_request_log:
            self.request_log.append((request.method, request.path_qs))
        if self.secure:
            refused = self._check_access(request)
            if refused is not None:
                return refused
        st = self.stats[endpoint]
        st.requests += 1
        for f in self._failures:
            if (
                f["n"] > 0
                and f["endpoint"] in (None, endpoint)
                and f["method"] in (None, request.method)
            ):
                f["n"] -= 1
                reason = "InternalError" if f["status"] == 500 else "ServiceUnavailable"
                return status_response(f["status"], reason, "injected failure")
        st.open += 1
        st.peak_open = max(st.peak_open, st.open)
        try:
            return await handler(request)
        finally:
            st.open -= 1

    async def _version(self, request):
        major, minor = self.kube_version.split(".")[:2]
        return web.json_response(
            {"major": major, "minor": minor, "gitVersion": f"v{self.kube_version}.0"}
        )

    async def _stats(self, request):
        return web.json_response(self.stats_dict())

    def stats_dict(self) -> dict:
        return {
            "endpoints": {k: vars(v) for k, v in self.stats.items()},
            "tcp_connections": self.tcp_connections,
            "tcp_peak_open": self.tcp_peak_open,
        }

    def _selected(self, namespace: str | None, matches, kind: str = "Pod") -> list[dict]:
        store = self.pods if kind == "Pod" else self.events
        return [
            p
            for (ns, _), p in sorted(store.items())
            if (namespace is None or ns == namespace) and matches(p)
        ]

    async def _list_or_watch_events(self, request: web.Request):
        return await self._list_or_watch(request, "Event")

    async def _list_or_watch(self, request: web.Request, kind: str = "Pod"):
        namespace = request.match_info.get("ns")
        try:
            matches = _selectors(request, kind)
        except ValueError as e:
            return status_response(400, "BadRequest", str(e))
        if _true(request.query.get("watch")):
            return await self._watch(request, namespace, matches, kind)
        items = []
        for p in self._selected(namespace, matches, kind):
            item = dict(p)
            # A list's items carry no kind/apiVersion, as the real API answers.
            item.pop("kind", None)
            item.pop("apiVersion", None)
            items.append(item)
        return web.json_response(
            {
                "kind": f"{kind}List",
                "apiVersion": "v1",
                "metadata": {"resourceVersion": str(self.rv)},
                "items": items,
            }
        )

    async def _watch(self, request: web.Request, namespace, matches, kind: str = "Pod"):
        rv_param = request.query.get("resourceVersion", "")
        bookmarks = _true(request.query.get("allowWatchBookmarks"))
        timeout = request.query.get("timeoutSeconds")
        deadline = time.monotonic() + float(timeout) if timeout else None

        initial: list[tuple[str, Pod]] = []
        gone = None
        if rv_param in ("", "0"):
            initial = [("ADDED", p) for p in self._selected(namespace, matches, kind)]
        else:
            try:
                since = int(rv_param)
            except ValueError:
                return status_response(400, "BadRequest", f"invalid resource version {rv_param!r}")
            if self._expire_next > 0 or since < self.compacted_rv:
                self._expire_next = max(0, self._expire_next - 1)
                gone = f"too old resource version: {since} ({self.compacted_rv + 1})"
            else:
                initial = [
                    (t, p)
                    for rv, t, ns, k, p in self.history
                    if rv > since
                    and k == kind
                    and (namespace is None or ns == namespace)
                    and matches(p)
                ]
        if gone and self.gone_as_http_status:
            return status_response(410, "Expired", gone)

        resp = web.StreamResponse(headers={"Content-Type": "application/json"})
        resp.enable_chunked_encoding()
        await resp.prepare(request)
        if gone:
            await resp.write(_line({"type": "ERROR", "object": status(410, "Expired", gone)}))
            await resp.write_eof()
            return resp

        w = _Watch(kind, namespace, matches, asyncio.Queue(), resp, request)
        for item in initial:
            w.queue.put_nowait(item)
        self._watches.add(w)
        try:
            while True:
                wait = self.bookmark_interval if bookmarks else None
                if deadline is not None:
                    left = deadline - time.monotonic()
                    if left <= 0:
                        break
                    wait = min(wait, left) if wait is not None else left
                try:
                    item = await asyncio.wait_for(w.queue.get(), wait)
                except asyncio.TimeoutError:
                    if bookmarks and w.queue.empty():
                        await resp.write(
                            _line(
                                {
                                    "type": "BOOKMARK",
                                    "object": {
                                        "kind": kind,
                                        "apiVersion": "v1",
                                        "metadata": {"resourceVersion": str(self.rv)},
                                    },
                                }
                            )
                        )
                    continue
                if item is None:  # dropped by a test
                    break
                type_, pod = item
                await resp.write(_line({"type": type_, "object": pod}))
            await resp.write_eof()
        except (ConnectionResetError, asyncio.CancelledError, RuntimeError):
            pass
        finally:
            self._watches.discard(w)
        return resp

    async def _create(self, request: web.Request):
        namespace = request.match_info["ns"]
        try:
            body = await request.json()
        except ValueError:
            return status_response(400, "BadRequest", "the body of the request was not valid JSON")
        if not isinstance(body, dict):
            return status_response(400, "BadRequest", "expected a Pod object")
        body.setdefault("apiVersion", "v1")
        body.setdefault("kind", "Pod")
        meta = body.setdefault("metadata", {})
        name = meta.get("name")
        if not name:
            return status_response(
                422, "Invalid", 'Pod "" is invalid: metadata.name: Required value'
            )
        if meta.get("namespace") not in (None, namespace):
            return status_response(
                400,
                "BadRequest",
                "the namespace of the provided object does not match the namespace sent on the request",
            )
        if self.validate:
            import kubernetes_validate

            try:
                kubernetes_validate.validate(body, self.kube_version, strict=True)
            except kubernetes_validate.ValidationError as e:
                path = ".".join(str(p) for p in e.path)
                return status_response(
                    422, "Invalid", f'Pod "{name}" is invalid: {path}: {e.message}'
                )
        if (namespace, name) in self.pods:
            return status_response(
                409,
                "AlreadyExists",
                f'pods "{name}" already exists',
                {"name": name, "kind": "pods"},
            )
        if self.secure:
            refused = self._admit_service_account(body, namespace)
            if refused:
                return status_response(403, "Forbidden", refused, {"name": name, "kind": "pods"})
        self._default_pod(body, namespace)
        return web.json_response(self._store("ADDED", body), status=201)

    async def _get(self, request: web.Request):
        ns, name = request.match_info["ns"], request.match_info["name"]
        pod = self.pods.get((ns, name))
        if pod is None:
            return status_response(
                404, "NotFound", f'pods "{name}" not found', {"name": name, "kind": "pods"}
            )
        return web.json_response(pod)

    async def _delete(self, request: web.Request):
        ns, name = request.match_info["ns"], request.match_info["name"]
        pod = self._remove(ns, name)
        if pod is None:
            return status_response(
                404, "NotFound", f'pods "{name}" not found', {"name": name, "kind": "pods"}
            )
        return web.json_response(pod)

    async def _log(self, request: web.Request):
        ns, name = request.match_info["ns"], request.match_info["name"]
        key = (ns, name)
        pod = self.pods.get(key)
        if pod is None:
            return status_response(
                404, "NotFound", f'pods "{name}" not found', {"name": name, "kind": "pods"}
            )
        container = request.query.get("container") or pod["spec"]["containers"][0]["name"]
        if container not in [c["name"] for c in pod["spec"]["containers"]]:
            return status_response(
                400, "BadRequest", f"container {container} is not valid for pod {name}"
            )
        cs = ((pod.get("status") or {}).get("containerStatuses") or [{}])[0]
        state = cs.get("state") or {}
        if not (state.get("running") or state.get("terminated")):
            reason = (state.get("waiting") or {}).get("reason") or "ContainerCreating"
            return status_response(
                400,
                "BadRequest",
                f'container "{container}" in pod "{name}" is waiting to start: {reason}',
            )
        follow = _true(request.query.get("follow"))
        timestamps = _true(request.query.get("timestamps"))
        since_ns = None
        if request.query.get("sinceTime"):
            try:
                since_ns = parse_rfc3339_ns(request.query["sinceTime"])
            except ValueError:
                return status_response(400, "BadRequest", "invalid sinceTime")
        tail = request.query.get("tailLines")
        log = self._log_for(key)
        resp = web.StreamResponse(headers={"Content-Type": "text/plain"})
        resp.enable_chunked_encoding()
        await resp.prepare(request)
        self._log_responses[key][id(request)] = request
        sent = 0
        break_after = log.breaks.popleft() if log.breaks else None
        try:
            lines = [(ts, t) for ts, t in log.lines if since_ns is None or ts >= since_ns]
            index = len(log.lines)
            if tail is not None:
                lines = lines[-int(tail) :] if int(tail) > 0 else []
            while True:
                for ts, text in lines:
                    if break_after is not None and sent >= break_after:
                        request.transport.abort()
                        return resp
                    if self.log_delay:
                        await asyncio.sleep(self.log_delay)
                    out = f"{rfc3339nano(ts)} {text}\n" if timestamps else text + "\n"
                    await resp.write(out.encode())
                    sent += 1
                if not follow or log.ended or key not in self.pods:
                    break
                changed = log.changed
                if index == len(log.lines):
                    await changed.wait()
                lines = log.lines[index:]
                index = len(log.lines)
                if not lines and (log.ended or key not in self.pods):
                    break
            await resp.write_eof()
        except (ConnectionResetError, asyncio.CancelledError, RuntimeError):
            pass
        finally:
            self._log_responses[key].pop(id(request), None)
        return resp

    # --- secrets over HTTP ---

    def _secret_not_found(self, name: str):
        return status_response(
            404, "NotFound", f'secrets "{name}" not found', {"name": name, "kind": "secrets"}
        )

    @staticmethod
    def _check_data(secret: dict) -> str | None:
        """The API decodes `data` values as base64 ([]byte in Go's JSON): an error or None."""
        data = secret.get("data") or {}
        if not isinstance(data, dict):
            return "data: expected a map"
        for key, value in data.items():
            try:
                base64.b64decode(value, validate=True)
            except (binascii.Error, TypeError, ValueError):
                return f"illegal base64 data in data[{key!r}]"
        return None

    async def _create_secret(self, request: web.Request):
        namespace = request.match_info["ns"]
        try:
            body = await request.json()
        except ValueError:
            return status_response(400, "BadRequest", "the body of the request was not valid JSON")
        if not isinstance(body, dict):
            return status_response(400, "BadRequest", "expected a Secret object")
        body.setdefault("apiVersion", "v1")
        body.setdefault("kind", "Secret")
        meta = body.setdefault("metadata", {})
        name = meta.get("name")
        if not name:
            return status_response(
                422, "Invalid", 'Secret "" is invalid: metadata.name: Required value'
            )
        if meta.get("namespace") not in (None, namespace):
            return status_response(
                400,
                "BadRequest",
                "the namespace of the provided object does not match the namespace sent on the request",
            )
        error = self._check_data(body)
        if error:
            return status_response(400, "BadRequest", error)
        if self.validate:
            import kubernetes_validate

            try:
                kubernetes_validate.validate(body, self.kube_version, strict=True)
            except kubernetes_validate.ValidationError as e:
                path = ".".join(str(p) for p in e.path)
                return status_response(
                    422, "Invalid", f'Secret "{name}" is invalid: {path}: {e.message}'
                )
        if (namespace, name) in self.secrets:
            return status_response(
                409,
                "AlreadyExists",
                f'secrets "{name}" already exists',
                {"name": name, "kind": "secrets"},
            )
        for key, value in (body.pop("stringData", None) or {}).items():
            body.setdefault("data", {})[key] = base64.b64encode(value.encode()).decode()
        self._default_secret(body, namespace)
        self.secrets[(namespace, name)] = body
        return web.json_response(body, status=201)

    async def _get_secret(self, request: web.Request):
        ns, name = request.match_info["ns"], request.match_info["name"]
        secret = self.secrets.get((ns, name))
        if secret is None:
            return self._secret_not_found(name)
        return web.json_response(secret)

    async def _list_secrets(self, request: web.Request):
        namespace = request.match_info["ns"]
        try:
            matches = parse_selector(request.query.get("labelSelector", ""))
        except ValueError as e:
            return status_response(400, "BadRequest", str(e))
        items = []
        for (ns, _), secret in sorted(self.secrets.items()):
            if ns == namespace and matches(secret["metadata"].get("labels") or {}):
                item = dict(secret)
                item.pop("kind", None)
                item.pop("apiVersion", None)
                items.append(item)
        return web.json_response(
            {
                "kind": "SecretList",
                "apiVersion": "v1",
                "metadata": {"resourceVersion": str(self.rv)},
                "items": items,
            }
        )

    async def _patch_secret(self, request: web.Request):
        ns, name = request.match_info["ns"], request.match_info["name"]
        ctype = request.headers.get("Content-Type", "").split(";")[0].strip()
        if ctype != "application/merge-patch+json":
            # The real API takes strategic merge and JSON patches too; this stand-in
            # does not, so a client that sends them finds out here.
            return status_response(
                415, "UnsupportedMediaType", f"the fake takes merge patches only, not {ctype}"
            )
        secret = self.secrets.get((ns, name))
        if secret is None:
            return self._secret_not_found(name)
        try:
            patch = await request.json()
        except ValueError:
            return status_response(400, "BadRequest", "the body of the request was not valid JSON")
        patched = _merge_patch(copy.deepcopy(secret), patch)
        for fixed in ("name", "namespace", "uid", "creationTimestamp"):
            if patched["metadata"].get(fixed) != secret["metadata"].get(fixed):
                return status_response(
                    422,
                    "Invalid",
                    f'Secret "{name}" is invalid: metadata.{fixed}: field is immutable',
                )
        error = self._check_data(patched)
        if error:
            return status_response(400, "BadRequest", error)
        self.rv += 1
        patched["metadata"]["resourceVersion"] = str(self.rv)
        self.secrets[(ns, name)] = patched
        # An owner that does not exist (any more): the collector deletes the dependent.
        self._collect_garbage(ns)
        return web.json_response(patched)

    async def _delete_secret(self, request: web.Request):
        ns, name = request.match_info["ns"], request.match_info["name"]
        secret = self._remove_secret(ns, name)
        if secret is None:
            return self._secret_not_found(name)
        return web.json_response(
            {
                "kind": "Status",
                "apiVersion": "v1",
                "metadata": {},
                "status": "Success",
                "details": {"name": name, "kind": "secrets", "uid": secret["metadata"]["uid"]},
            }
        )


def _merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch: objects merge, null deletes, anything else replaces."""
    if not isinstance(patch, dict):
        return patch
    if not isinstance(target, dict):
        target = {}
    for key, value in patch.items():
        if value is None:
            target.pop(key, None)
        else:
            target[key] = _merge_patch(target.get(key), value)
    return target


def _line(obj: dict) -> bytes:
    return (json.dumps(obj) + "\n").encode()
