"""A kubelet for the stand-in API server: runs the pods it is given on the local Docker engine.

For every pod created in a FakeKubeAPI, DockerKubelet does what a node would, in the
order a kubelet's SyncPod does it: mount the volumes (hostPath with its `type` check,
secret volumes as files, emptyDir as a temporary folder), make sure the image is there,
make the container's configuration (env incl. secretKeyRef, command/args, runAsUser),
`docker run` it, report Running, stream the container's real output into the pod log,
and report its real exit code. Deleting the pod kills the container. So a test exercises
the pod spec the service generated, for real. Each step records the Events a kubelet
records (Pulled, Created, Started; FailedMount, Failed, BackOff).

It is as unkind as a real kubelet, because a kinder stand-in hides bugs:

- a volume that cannot be set up (a hostPath that is not there or of the wrong type, a
  missing Secret or key) leaves the pod in ContainerCreating with a FailedMount Event
  ('MountVolume.SetUp failed for volume "v" : hostPath type check failed: /x is not a
  socket file', for a missing path as for one of another type), retried and
  counted, never a waiting reason of its own (kubernetes pkg/volume/hostpath checkType;
  the kubelet waits in WaitForAttachAndMount before any container is made);
- an env var from a missing Secret (or key) leaves the container waiting with
  CreateContainerConfigError ('secret "x" not found', "couldn't find key k in Secret
  ns/x") and a Failed Event 'Error: ...';
- a missing image is ErrImagePull then ImagePullBackOff (ErrImageNeverPull with
  imagePullPolicy Never), with the kubelet's Failed and BackOff Events.

On a `secure` stand-in API it gives pods what a kubelet gives them to reach their API
server: the `KUBERNETES_SERVICE_HOST`/`_PORT` variables (every pod, as the kubelet does
whatever enableServiceLinks says) and the projected volume the ServiceAccount admission
plugin added (a token from TokenRequest bound to the pod, the kube-root-ca.crt
ConfigMap's ca.crt, the namespace) at /var/run/secrets/kubernetes.io/serviceaccount. A
pod (or ServiceAccount) with automountServiceAccountToken false has no such volume, so
it gets no token. Tokens are not refreshed (they last an hour; these tests do not).

The kubelet retries every `retry_interval`, and the container starts once what was
missing is there. Pods use the host's network (the registry, git servers), except those
`own_network` selects: they get a network namespace of their own (Docker's bridge), as a
real kubelet gives every pod without hostNetwork, shared by the pod's containers. A pod's
containers start in order; an exec readinessProbe is run every periodSeconds and the
pod is ready once every container is (containers without a probe: when running). The
pod log is its first container's; `container_names` gives the others' for `docker logs`.

`privileged: true` is `docker run --privileged` -- unless this machine's capability
bounding set lacks capabilities Docker would grant (runc then fails "unable to apply
caps", as it would for a real kubelet on such a node): then the same privileges less
those capabilities (all others, no seccomp/AppArmor, unmasked /proc, every device, the
cgroup hierarchy writable), printed as a warning, so the test still runs the pod.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import re
import shutil
import stat
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

from .kubeapi import FakeKubeAPI

LABEL = "r2dservice-test-kubelet"


class DockerKubelet:
    def __init__(
        self,
        api: FakeKubeAPI,
        *,
        node: str = "docker-node",
        docker: str = "docker",
        retry_interval: float = 0.5,
        own_network: Callable[[dict], bool] | None = None,
    ):
        self.api = api
        self.retry_interval = retry_interval
        self.node = node
        self.docker = docker
        self.own_network = own_network or (lambda pod: False)
        self.containers: dict[tuple[str, str], list[str]] = {}  # (ns, pod) -> Docker names
        self.docker_args: dict[
            str, list[str]
        ] = {}  # pod name -> its first container's `docker run`
        # (pod name, container name) -> Docker container name, and its `docker run`
        self.container_names: dict[tuple[str, str], str] = {}
        self.container_args: dict[tuple[str, str], list[str]] = {}
        self._tasks: dict[tuple[str, str], asyncio.Task] = {}
        self._loop_task: asyncio.Task | None = None
        self._tmp = Path(tempfile.mkdtemp(prefix="fake-kubelet-"))
        # PersistentVolumeClaims bound to this node: (namespace, claim) -> folder
        self.claims: dict[tuple[str, str], Path] = {}
        # ConfigMaps (the stand-in API has none): (namespace, name) -> data
        self.config_maps: dict[tuple[str, str], dict[str, str]] = {}
        self._pods_by_volume_dir: dict[Path, dict] = {}

    def add_claim(self, name: str, namespace: str = "default") -> Path:
        """A bound PersistentVolumeClaim (a folder that outlives the pods using it)."""
        path = self._tmp / "claims" / namespace / name
        path.mkdir(parents=True, exist_ok=True)
        self.claims[(namespace, name)] = path
        return path

    def add_config_map(self, name: str, data: dict[str, str], namespace: str = "default") -> None:
        """A ConfigMap as the API server would hand it to the kubelet."""
        self.config_maps[(namespace, name)] = dict(data)

    async def start(self) -> DockerKubelet:
        queue = self.api.listen()
        self._loop_task = asyncio.create_task(self._loop(queue))
        return self

    async def stop(self) -> None:
        if self._loop_task:
            self._loop_task.cancel()
        for key in list(self.containers):
            await self._kill(key)
        for t in self._tasks.values():
            t.cancel()
        await asyncio.gather(*self._tasks.values(), return_exceptions=True)
        shutil.rmtree(self._tmp, ignore_errors=True)

    async def __aenter__(self):
        return await self.start()

    async def __aexit__(self, *exc):
        await self.stop()

    async def _loop(self, queue: asyncio.Queue) -> None:
        while True:
            type_, pod = await queue.get()
            key = (pod["metadata"]["namespace"], pod["metadata"]["name"])
            if type_ == "ADDED" and key not in self._tasks:
                self._tasks[key] = asyncio.create_task(self._run_pod(pod))
            elif type_ == "DELETED":
                await self._kill(key)

    async def _docker(self, *args: str, check: bool = True) -> str:
        proc = await asyncio.create_subprocess_exec(
            self.docker, *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
        )
        out, err = await proc.communicate()
        if check and proc.returncode:
            raise RuntimeError(f"docker {' '.join(args[:2])} failed: {err.decode().strip()}")
        return out.decode()

    async def _docker_run(self, cname: str, args: list[str]) -> list[str]:
        """`docker run -d`; the arguments it ran with. An older engine (Debian's
        docker.io 20.10) does not know the newest capabilities (CAP_PERFMON, ...): it
        grants none of them with ALL, so there is nothing to drop for them."""
        while True:
            try:
                await self._docker("run", "-d", "--name", cname, "--label", LABEL, *args)
                return args
            except RuntimeError as e:
                unknown = re.search(r'unknown capability: "CAP_(\w+)"', str(e))
                if not unknown or f"--cap-drop={unknown[1]}" not in args:
                    raise
                args = [a for a in args if a != f"--cap-drop={unknown[1]}"]
                await self._docker("rm", "-f", cname, check=False)

    async def _image_exists(self, image: str) -> bool:
        proc = await asyncio.create_subprocess_exec(
            self.docker,
            "image",
            "inspect",
            image,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
        )
        return await proc.wait() == 0

    async def _kill(self, key) -> None:
        for cname in reversed(self.containers.pop(key, [])):
            await self._docker("rm", "-f", cname, check=False)

    async def _run_pod(self, pod: dict) -> None:
        ns, name = pod["metadata"]["namespace"], pod["metadata"]["name"]
        key = (ns, name)
        containers = pod["spec"]["containers"]
        missing = [
            v["persistentVolumeClaim"]["claimName"]
            for v in pod["spec"].get("volumes", [])
            if "persistentVolumeClaim" in v
            and (ns, v["persistentVolumeClaim"]["claimName"]) not in self.claims
        ]
        if missing:
            # The scheduler does not place a pod whose claim does not exist.
            self.api.set_unschedulable(
                name,
                f'0/1 nodes are available: persistentvolumeclaim "{missing[0]}" not found.',
                namespace=ns,
            )
            return
        self.api.schedule(name, self.node, namespace=ns)
        pod = self.api.get_pod(name, ns) or pod
        reported = None
        backoff = False
        while True:
            if self.api.get_pod(name, ns) is None:
                return
            try:
                run_args = []
                for i, container in enumerate(containers):
                    mounts = self._mounts(pod, container)
                    await self._ensure_image(pod, container, backoff)
                    network = self._network(pod, i)
                    run_args.append(self._run_args(pod, container, mounts, network))
                break
            except _MountFailed as e:
                # No waiting reason of its own: the pod just stays ContainerCreating.
                state = ("ContainerCreating", "")
                self._event(pod, "FailedMount", str(e))
            except _PullFailed as e:
                state = (e.reason, str(e))
                backoff = e.reason != "ErrImageNeverPull"
            except _ConfigError as e:
                state = ("CreateContainerConfigError", str(e))
                self._event(pod, "Failed", f"Error: {e}")
            if state != reported and self.api.get_pod(name, ns) is not None:
                self.api.set_waiting(name, *state, namespace=ns)
                reported = state
            await asyncio.sleep(self.retry_interval)
        self.containers[key] = []
        for i, (container, args) in enumerate(zip(containers, run_args, strict=True)):
            cname = _docker_name(name, container["name"], i)
            await self._docker("rm", "-f", cname, check=False)
            self.container_names[(name, container["name"])] = cname
            try:
                args = await self._docker_run(cname, args)
            except RuntimeError as e:
                # As a kubelet whose runtime refuses the container: the pod waits with
                # the runtime's error (a real kubelet then retries with back-off).
                message = str(e)
                self._event(pod, "Failed", f"Error: {message}")
                self.api.set_waiting(name, "RunContainerError", message, namespace=ns)
                await self._kill(key)
                return
            if i == 0:
                self.docker_args[name] = args
            self.container_args[(name, container["name"])] = args
            self.containers[key].append(cname)
            if self.api.get_pod(name, ns) is None:  # deleted while we started it
                await self._kill(key)
                return
            self._event(pod, "Created", f"Created container {container['name']}", "Normal")
            self._event(pod, "Started", f"Started container {container['name']}", "Normal")
        probed = [c for c in containers if "exec" in (c.get("readinessProbe") or {})]
        self.api.start_container(name, namespace=ns, node=self.node, ready=not probed)
        probes = [asyncio.create_task(self._probe(pod, probed))] if probed else []
        cname = self.containers[key][0]
        logs = await asyncio.create_subprocess_exec(
            self.docker,
            "logs",
            "-f",
            cname,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        # The kubelet's log interleaves stdout and stderr as they come.
        await asyncio.gather(self._pump(logs.stdout, name, ns), self._pump(logs.stderr, name, ns))
        await logs.wait()
        for t in probes:
            t.cancel()
        if key not in self.containers or self.api.get_pod(name, ns) is None:
            return  # deleted: the API already forgot it
        state = json.loads(await self._docker("inspect", "-f", "{{json .State}}", cname))
        await self._kill(key)
        reason = "OOMKilled" if state.get("OOMKilled") else None
        self.api.finish(name, state.get("ExitCode", 1), reason=reason, namespace=ns)

    def _service_env(self) -> dict[str, str]:
        """The `kubernetes` Service of the default namespace, as the kubelet puts it in
        every container's environment (before the container's own env, which wins)."""
        if not self.api.secure:
            return {}
        host, port = self.api.host, self.api.port
        return {
            "KUBERNETES_SERVICE_HOST": host,
            "KUBERNETES_SERVICE_PORT": str(port),
            "KUBERNETES_SERVICE_PORT_HTTPS": str(port),
            "KUBERNETES_PORT": f"tcp://{host}:{port}",
            f"KUBERNETES_PORT_{port}_TCP": f"tcp://{host}:{port}",
            f"KUBERNETES_PORT_{port}_TCP_PROTO": "tcp",
            f"KUBERNETES_PORT_{port}_TCP_PORT": str(port),
            f"KUBERNETES_PORT_{port}_TCP_ADDR": host,
        }

    def _network(self, pod: dict, index: int) -> str:
        """The pod's network namespace: the host's, or its own (made with the first
        container, joined by the others)."""
        if pod["spec"].get("hostNetwork") or not self.own_network(pod):
            return "host"
        if index == 0:
            return "bridge"
        name = pod["metadata"]["name"]
        return f"container:{_docker_name(name, pod['spec']['containers'][0]['name'], 0)}"

    async def _probe(self, pod: dict, containers: list[dict]) -> None:
        """The exec readinessProbes, every periodSeconds (after initialDelaySeconds):
        the pod is ready while all of them succeed."""
        name, ns = pod["metadata"]["name"], pod["metadata"]["namespace"]
        ready: dict[str, bool] = {}
        next_at = {
            c["name"]: (c["readinessProbe"].get("initialDelaySeconds") or 0) for c in containers
        }
        loop = asyncio.get_running_loop()
        start = loop.time()
        while True:
            now = loop.time() - start
            for c in containers:
                if now < next_at[c["name"]]:
                    continue
                probe = c["readinessProbe"]
                next_at[c["name"]] = now + (probe.get("periodSeconds") or 10)
                cname = self.container_names[(name, c["name"])]
                proc = await asyncio.create_subprocess_exec(
                    self.docker,
                    "exec",
                    cname,
                    *probe["exec"]["command"],
                    stdout=asyncio.subprocess.DEVNULL,
                    stderr=asyncio.subprocess.PIPE,
                )
                try:
                    _, err = await asyncio.wait_for(
                        proc.communicate(), probe.get("timeoutSeconds") or 1
                    )
                    ok = proc.returncode == 0
                except asyncio.TimeoutError:
                    proc.kill()
                    ok, err = False, b"command timed out"
                if not ok:
                    self._event(pod, "Unhealthy", f"Readiness probe failed: {err.decode().strip()}")
                ready[c["name"]] = ok
            all_ready = len(ready) == len(containers) and all(ready.values())
            if self.api.get_pod(name, ns) is None:
                return
            self.api.set_ready(name, all_ready, namespace=ns)
            await asyncio.sleep(min(self.retry_interval, 1))

    async def _pump(self, stream, name: str, ns: str) -> None:
        while True:
            line = await stream.readline()
            if not line:
                return
            if self.api.get_pod(name, ns) is None:
                continue
            self.api.log(name, line.decode(errors="replace").rstrip("\n"), namespace=ns)

    def _event(self, pod: dict, reason: str, message: str, type_: str = "Warning") -> None:
        name, ns = pod["metadata"]["name"], pod["metadata"]["namespace"]
        if self.api.get_pod(name, ns) is not None:
            self.api.record_event(name, reason, message, type=type_, host=self.node, namespace=ns)

    async def _ensure_image(self, pod: dict, container: dict, backoff: bool) -> None:
        """The kubelet's image manager: the image is on the node, or a pull error."""
        image = container["image"]
        present = await self._image_exists(image)
        policy = container.get("imagePullPolicy") or "IfNotPresent"
        if present and policy != "Always":
            self._event(
                pod, "Pulled", f'Container image "{image}" already present on machine', "Normal"
            )
            return
        if policy == "Never":
            message = f'Container image "{image}" is not present with pull policy of Never'
            self._event(pod, "ErrImageNeverPull", message)
            raise _PullFailed("ErrImageNeverPull", message)
        if backoff:
            self._event(pod, "BackOff", f'Back-off pulling image "{image}"', "Normal")
            self._event(pod, "Failed", "Error: ImagePullBackOff")
            raise _PullFailed("ImagePullBackOff", f'Back-off pulling image "{image}"')
        # This node pulls from nowhere: what is not here cannot be pulled.
        self._event(pod, "Pulling", f'Pulling image "{image}"', "Normal")
        message = f'pull access denied for "{image}": not on this node'
        self._event(pod, "Failed", f'Failed to pull image "{image}": {message}')
        self._event(pod, "Failed", "Error: ErrImagePull")
        raise _PullFailed("ErrImagePull", message)

    def _mounts(self, pod: dict, container: dict) -> list[str]:
        """`-v` arguments for the container's volume mounts; _MountFailed as a kubelet's
        volume manager fails (every volume of the pod is set up, used or not)."""
        workdir = self._tmp / pod["metadata"]["name"]
        self._pods_by_volume_dir[workdir] = pod
        ns = pod["metadata"]["namespace"]
        volumes = {v["name"]: v for v in pod["spec"].get("volumes", [])}
        sources = {name: self._volume_source(v, workdir, ns) for name, v in volumes.items()}
        args = []
        # Docker mounts in order of the target path, so a file inside a folder mount works.
        for m in sorted(container.get("volumeMounts", []), key=lambda m: m["mountPath"]):
            source = sources[m["name"]]
            if m.get("subPath"):
                source = os.path.join(source, m["subPath"])
            mode = ":ro" if m.get("readOnly") else ""
            args += ["-v", f"{source}:{m['mountPath']}{mode}"]
        return args

    def _run_args(
        self, pod: dict, container: dict, mounts: list[str], network: str = "host"
    ) -> list[str]:
        """`docker run` arguments (after `run -d --name`) for one of the pod's containers."""
        spec = pod["spec"]
        args = ["--network", network]
        for name, value in self._service_env().items():
            args += ["-e", f"{name}={value}"]
        for e in container.get("env", []):
            if "value" in e:
                args += ["-e", f"{e['name']}={e['value']}"]
            elif "fieldRef" in e.get("valueFrom", {}):
                value = _field(pod, e["valueFrom"]["fieldRef"]["fieldPath"], self.node)
                args += ["-e", f"{e['name']}={value}"]
            elif "secretKeyRef" in e.get("valueFrom", {}):
                ref = e["valueFrom"]["secretKeyRef"]
                ns = pod["metadata"]["namespace"]
                if self.api.get_secret(ref["name"], ns) is None:
                    raise _ConfigError(f'secret "{ref["name"]}" not found')
                value = self.api.secret_value(ref["name"], ref["key"], ns)
                if value is None:
                    raise _ConfigError(
                        f"couldn't find key {ref['key']} in Secret {ns}/{ref['name']}"
                    )
                args += ["-e", f"{e['name']}={value}"]
        args += mounts
        args += _security_args(
            spec.get("securityContext") or {}, container.get("securityContext") or {}
        )
        if container.get("workingDir"):
            args += ["-w", container["workingDir"]]
        command = container.get("command") or []
        if command:
            args += ["--entrypoint", command[0]]
        args.append(container["image"])
        args += command[1:] + list(container.get("args", []))
        return args

    def _config_map(self, name: str, namespace: str) -> dict[str, str] | None:
        data = self.config_maps.get((namespace, name))
        return data if data is not None else self.api.config_map(name, namespace)

    def _projected(self, vol: dict, workdir: Path, namespace: str) -> str:
        """A projected volume: the sources' files side by side, with defaultMode."""
        pod = self._pods_by_volume_dir[workdir]
        path = workdir / "projected" / vol["name"]
        path.mkdir(parents=True, exist_ok=True)
        mode = vol["projected"].get("defaultMode", 0o644)

        def fail(problem: str):
            raise _MountFailed(f'MountVolume.SetUp failed for volume "{vol["name"]}" : {problem}')

        files: dict[str, str] = {}
        for source in vol["projected"].get("sources") or []:
            if "serviceAccountToken" in source:
                sat = source["serviceAccountToken"]
                try:
                    token = self.api.request_token(pod, sat.get("expirationSeconds") or 3600)
                except LookupError as e:
                    fail(f"failed to fetch token: {e}")
                files[sat["path"]] = token
            elif "configMap" in source:
                name = source["configMap"]["name"]
                data = self._config_map(name, namespace)
                if data is None:
                    fail(f'configmap "{name}" not found')
                for item in source["configMap"].get("items") or [
                    {"key": k, "path": k} for k in data
                ]:
                    files[item["path"]] = data[item["key"]]
            elif "downwardAPI" in source:
                for item in source["downwardAPI"]["items"]:
                    files[item["path"]] = _field(pod, item["fieldRef"]["fieldPath"], self.node)
            elif "secret" in source:
                name = source["secret"]["name"]
                secret = self.api.get_secret(name, namespace)
                if secret is None:
                    fail(f'secret "{name}" not found')
                data = {k: base64.b64decode(v).decode() for k, v in secret["data"].items()}
                for item in source["secret"].get("items") or [{"key": k, "path": k} for k in data]:
                    files[item["path"]] = data[item["key"]]
            else:
                raise NotImplementedError(f"projected volume source {sorted(source)}")
        for rel, text in files.items():
            target = path / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(text)
            target.chmod(mode)
        return str(path)

    def _volume_source(self, vol: dict, workdir: Path, namespace: str) -> str:
        if "hostPath" in vol:
            path = vol["hostPath"]["path"]
            problem = host_path_problem(path, vol["hostPath"].get("type") or "")
            if problem:
                raise _MountFailed(
                    f'MountVolume.SetUp failed for volume "{vol["name"]}" : {problem}'
                )
            return path
        if "emptyDir" in vol:
            path = workdir / "empty" / vol["name"]
            path.mkdir(parents=True, exist_ok=True)
            path.chmod(0o777)  # as the kubelet makes them: any user of the pod writes
            return str(path)
        if "persistentVolumeClaim" in vol:
            path = self.claims[(namespace, vol["persistentVolumeClaim"]["claimName"])]
            # fsGroup: the kubelet gives the volume to the pod's group (setgid, g+rwx).
            # Without root here to chown, the folder is opened to all instead.
            path.chmod(0o2777)
            return str(path)
        if "projected" in vol:
            return self._projected(vol, workdir, namespace)
        if "configMap" in vol:
            cm_name = vol["configMap"]["name"]
            data = self._config_map(cm_name, namespace)
            if data is None:
                raise _MountFailed(
                    f'MountVolume.SetUp failed for volume "{vol["name"]}" : configmap "{cm_name}" not found'
                )
            path = workdir / "configmaps" / vol["name"]
            path.mkdir(parents=True, exist_ok=True)
            for item in vol["configMap"].get("items") or [{"key": k, "path": k} for k in data]:
                (path / item["path"]).write_text(data[item["key"]])
            return str(path)
        if "secret" in vol:
            secret_name = vol["secret"]["secretName"]
            secret = self.api.get_secret(secret_name, namespace)
            if secret is None:
                raise _MountFailed(
                    f'MountVolume.SetUp failed for volume "{vol["name"]}" : secret "{secret_name}" not found'
                )
            data = {k: base64.b64decode(v).decode() for k, v in (secret.get("data") or {}).items()}
            path = workdir / "secrets" / vol["name"]
            path.mkdir(parents=True, exist_ok=True)
            items = vol["secret"].get("items") or [{"key": k, "path": k} for k in data]
            for item in items:
                if item["key"] not in data:
                    raise _MountFailed(
                        f'MountVolume.SetUp failed for volume "{vol["name"]}" : '
                        f"references non-existent secret key: {item['key']}"
                    )
                (path / item["path"]).write_text(data[item["key"]])
            return str(path)
        raise NotImplementedError(
            f"volume {vol['name']}: only hostPath, emptyDir, claims, configMap and secret"
        )


# hostPath types and what the kubelet calls them in its errors (pkg/volume/hostpath,
# checkTypeInternal): one message whether the path is missing or of another type.
_HOST_PATH_TYPES = {
    "Directory": (stat.S_ISDIR, "directory"),
    "File": (stat.S_ISREG, "file"),
    "Socket": (stat.S_ISSOCK, "socket file"),
    "CharDevice": (stat.S_ISCHR, "character device"),
    "BlockDevice": (stat.S_ISBLK, "block device"),
}


def host_path_problem(path: str, type_: str) -> str | None:
    """The kubelet's hostPath type check (checkType): its error, or None when it mounts.
    The *OrCreate types make what is missing; "" checks nothing."""
    if type_ == "DirectoryOrCreate" and not os.path.exists(path):
        os.makedirs(path, exist_ok=True)
    if type_ == "FileOrCreate" and not os.path.exists(path):
        Path(path).touch()
    type_ = type_.replace("OrCreate", "")
    if not type_:
        return None
    check, description = _HOST_PATH_TYPES[type_]
    try:
        if check(os.stat(path).st_mode):
            return None
    except FileNotFoundError:
        pass
    return f"hostPath type check failed: {path} is not a {description}"


def _docker_name(pod: str, container: str, index: int) -> str:
    """The first container keeps the pod's name (what tests and leftovers look for)."""
    return (f"fake-kubelet-{pod}" if index == 0 else f"fake-kubelet-{pod}-{container}")[:120]


def _missing_capabilities() -> list[str]:
    """Capabilities Docker grants a privileged container that this machine's bounding
    set does not have (names as `--cap-drop` takes them)."""
    bounding = 0
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("CapBnd:"):
            bounding = int(line.split()[1], 16)
    last = int(Path("/proc/sys/kernel/cap_last_cap").read_text())
    return [_CAP_NAMES[i] for i in range(min(last + 1, len(_CAP_NAMES))) if not bounding >> i & 1]


# Linux capability numbers 0..40 (include/uapi/linux/capability.h).
_CAP_NAMES = (
    "CHOWN DAC_OVERRIDE DAC_READ_SEARCH FOWNER FSETID KILL SETGID SETUID SETPCAP "
    "LINUX_IMMUTABLE NET_BIND_SERVICE NET_BROADCAST NET_ADMIN NET_RAW IPC_LOCK IPC_OWNER "
    "SYS_MODULE SYS_RAWIO SYS_CHROOT SYS_PTRACE SYS_PACCT SYS_ADMIN SYS_BOOT SYS_NICE "
    "SYS_RESOURCE SYS_TIME SYS_TTY_CONFIG MKNOD LEASE AUDIT_WRITE AUDIT_CONTROL SETFCAP "
    "MAC_OVERRIDE MAC_ADMIN SYSLOG WAKE_ALARM BLOCK_SUSPEND AUDIT_READ PERFMON BPF "
    "CHECKPOINT_RESTORE"
).split()


def _privileged_args() -> list[str]:
    missing = _missing_capabilities()
    if not missing:
        return ["--privileged"]
    print(
        f"fake kubelet: this machine cannot grant {', '.join(missing)}: privileged without it",
        file=sys.stderr,
    )
    return [
        "--cap-add=ALL",
        *[f"--cap-drop={c}" for c in missing],
        "--security-opt=seccomp=unconfined",
        "--security-opt=apparmor=unconfined",
        "--security-opt=systempaths=unconfined",
        "--device-cgroup-rule=a *:* rwm",
        # --privileged mounts the cgroup hierarchy writable (cgroup v1); without it a
        # dockerd in the container cannot make its containers' cgroups.
        "-v=/sys/fs/cgroup:/sys/fs/cgroup:rw",
    ]


def _field(pod: dict, path: str, node: str) -> str:
    """The downward API's fieldRef values."""
    values = {
        "metadata.name": pod["metadata"]["name"],
        "metadata.namespace": pod["metadata"]["namespace"],
        "metadata.uid": pod["metadata"].get("uid", ""),
        "spec.nodeName": node,
        "spec.serviceAccountName": pod["spec"].get("serviceAccountName", "default"),
        "status.podIP": "127.0.0.1",  # host network
        "status.hostIP": "127.0.0.1",
    }
    if path not in values:
        raise NotImplementedError(f"fieldRef {path}")
    return values[path]


def _security_args(pod_ctx: dict, ctx: dict) -> list[str]:
    """`docker run` flags for the pod's and the container's securityContext (the
    container's wins), so a container that needs more than it asked for fails here too."""
    args = []
    user = ctx.get("runAsUser", pod_ctx.get("runAsUser"))
    group = ctx.get("runAsGroup", pod_ctx.get("runAsGroup"))
    if user is not None:
        args += ["--user", f"{user}:{group}" if group is not None else str(user)]
    for gid in [pod_ctx.get("fsGroup"), *pod_ctx.get("supplementalGroups", [])]:
        if gid is not None:
            args += ["--group-add", str(gid)]
    if ctx.get("readOnlyRootFilesystem"):
        args.append("--read-only")
    if ctx.get("privileged"):
        args += _privileged_args()
    if ctx.get("allowPrivilegeEscalation") is False:
        args += ["--security-opt", "no-new-privileges"]
    caps = ctx.get("capabilities") or {}
    args += [f"--cap-drop={c}" for c in caps.get("drop", [])]
    args += [f"--cap-add={c}" for c in caps.get("add", [])]
    return args


class _PullFailed(Exception):
    """The image is not on the node: ErrImagePull, ImagePullBackOff, ErrImageNeverPull."""

    def __init__(self, reason: str, message: str):
        super().__init__(message)
        self.reason = reason


class _ConfigError(Exception):
    """The container's configuration cannot be made (CreateContainerConfigError)."""


class _MountFailed(Exception):
    """A volume cannot be set up: the pod stays ContainerCreating (FailedMount)."""


async def remove_leftover_containers(docker: str = "docker") -> None:
    """Containers of an earlier run that died before cleaning up."""
    proc = await asyncio.create_subprocess_exec(
        docker, "ps", "-aq", "--filter", f"label={LABEL}", stdout=asyncio.subprocess.PIPE
    )
    out, _ = await proc.communicate()
    ids = out.decode().split()
    if ids:
        await (await asyncio.create_subprocess_exec(docker, "rm", "-f", *ids)).wait()
