"""A kubelet for the stand-in API server: runs the pods it is given on the local Docker engine.

For every pod created in a FakeKubeAPI, DockerKubelet does what a node would: check the
image is there (ErrImagePull otherwise), turn the pod spec into `docker run` (image,
command/args, env incl. secretKeyRef, hostPath volumes as bind mounts, secret volumes
as files, emptyDir as a temporary folder, runAsUser), report Running, stream the
container's real output into the pod log, and report its real exit code. Deleting the
pod kills the container. So a test exercises the pod spec the service generated, for real.

Secrets come from the fake API (FakeKubeAPI.add_secret, or what the service creates), read
when the container is made, as a real kubelet does: an env var from a missing Secret (or
key) leaves the container waiting with CreateContainerConfigError ('secret "x" not
found', "couldn't find key k in Secret ns/x"); a missing Secret volume leaves it in
ContainerCreating (a real kubelet's FailedMount). Either way the kubelet retries, and the
container starts once the Secret is there.
Containers use the host's network (the registry on 127.0.0.1:5000, git servers).
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import shutil
import tempfile
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
    ):
        self.api = api
        self.retry_interval = retry_interval
        self.node = node
        self.docker = docker
        self.containers: dict[tuple[str, str], str] = {}  # (ns, pod) -> container name
        self.docker_args: dict[str, list[str]] = {}  # pod name -> the `docker run` it used
        self._tasks: dict[tuple[str, str], asyncio.Task] = {}
        self._loop_task: asyncio.Task | None = None
        self._tmp = Path(tempfile.mkdtemp(prefix="fake-kubelet-"))

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
        cname = self.containers.pop(key, None)
        if cname:
            await self._docker("rm", "-f", cname, check=False)

    async def _run_pod(self, pod: dict) -> None:
        ns, name = pod["metadata"]["namespace"], pod["metadata"]["name"]
        key = (ns, name)
        [container] = pod["spec"]["containers"]
        self.api.schedule(name, self.node, namespace=ns)
        image = container["image"]
        if not await self._image_exists(image):
            self.api.set_waiting(
                name,
                "ErrImagePull",
                f'pull access denied for "{image}": not on this node',
                namespace=ns,
            )
            return
        reported = None
        while True:
            try:
                run_args = self._run_args(pod, container)
                break
            except _MountFailed:
                state = ("ContainerCreating", "")  # with a FailedMount Event, not a reason
            except _ConfigError as e:
                state = ("CreateContainerConfigError", str(e))
            if self.api.get_pod(name, ns) is None:
                return
            if state != reported:
                self.api.set_waiting(name, *state, namespace=ns)
                reported = state
            await asyncio.sleep(self.retry_interval)
        cname = f"fake-kubelet-{name}"[:120]
        await self._docker("rm", "-f", cname, check=False)
        self.docker_args[name] = run_args
        await self._docker("run", "-d", "--name", cname, "--label", LABEL, *run_args)
        self.containers[key] = cname
        if self.api.get_pod(name, ns) is None:  # deleted while we started it
            await self._kill(key)
            return
        self.api.start_container(name, namespace=ns, node=self.node)
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
        if key not in self.containers or self.api.get_pod(name, ns) is None:
            return  # deleted: the API already forgot it
        state = json.loads(await self._docker("inspect", "-f", "{{json .State}}", cname))
        await self._kill(key)
        reason = "OOMKilled" if state.get("OOMKilled") else None
        self.api.finish(name, state.get("ExitCode", 1), reason=reason, namespace=ns)

    async def _pump(self, stream, name: str, ns: str) -> None:
        while True:
            line = await stream.readline()
            if not line:
                return
            if self.api.get_pod(name, ns) is None:
                continue
            self.api.log(name, line.decode(errors="replace").rstrip("\n"), namespace=ns)

    def _run_args(self, pod: dict, container: dict) -> list[str]:
        """`docker run` arguments (after `run -d --name`) for the pod's one container."""
        spec = pod["spec"]
        args = ["--network", "host"]
        for e in container.get("env", []):
            if "value" in e:
                args += ["-e", f"{e['name']}={e['value']}"]
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
        workdir = self._tmp / pod["metadata"]["name"]
        volumes = {v["name"]: v for v in spec.get("volumes", [])}
        # Docker mounts in order of the target path, so a file inside a folder mount works.
        for m in sorted(container.get("volumeMounts", []), key=lambda m: m["mountPath"]):
            vol = volumes[m["name"]]
            source = self._volume_source(vol, workdir, pod["metadata"]["namespace"])
            if m.get("subPath"):
                source = os.path.join(source, m["subPath"])
            mode = ":ro" if m.get("readOnly") else ""
            args += ["-v", f"{source}:{m['mountPath']}{mode}"]
        user = (container.get("securityContext") or {}).get("runAsUser")
        if user is None:
            user = (spec.get("securityContext") or {}).get("runAsUser")
        if user is not None:
            args += ["--user", str(user)]
        if container.get("workingDir"):
            args += ["-w", container["workingDir"]]
        command = container.get("command") or []
        if command:
            args += ["--entrypoint", command[0]]
        args.append(container["image"])
        args += command[1:] + list(container.get("args", []))
        return args

    def _volume_source(self, vol: dict, workdir: Path, namespace: str) -> str:
        if "hostPath" in vol:
            return vol["hostPath"]["path"]
        if "emptyDir" in vol:
            path = workdir / "empty" / vol["name"]
            path.mkdir(parents=True, exist_ok=True)
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
        raise NotImplementedError(f"volume {vol['name']}: only hostPath, emptyDir and secret")


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
