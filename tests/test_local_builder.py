"""LocalBuilder with a stand-in repo2docker script: a real subprocess and process
group, so output relaying, failures, timeouts and kills are tested for real. Then real
repo2docker on the real engine: a private repository over smart HTTP (credentials never
on a command line or in image labels) and a push to a registry with htpasswd auth
(credentials only in the Docker config.json the registry check uses)."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import subprocess
import sys
import textwrap
import threading
import uuid

import pytest
from traitlets.config import Config

from r2dservice.builders.base import BuildFailed, BuildRequest, make_build_request
from r2dservice.builders.kubernetes import KubernetesBuilder
from r2dservice.builders.local import LocalBuilder, credential_env
from r2dservice.builders.repo2docker import TRUNCATED, Repo2DockerBuilder, repo2docker_args
from r2dservice.events import Event

REQUEST = BuildRequest(
    name="build-x",
    image_name="127.0.0.1:5000/r2d-x:abc",
    repo_url="https://example.org/x",
    ref="abc",
    push=True,
)

FAKE = textwrap.dedent(
    """
    import json, os, subprocess, sys, time
    mode = os.environ.get("FAKE_MODE", "ok")
    def say(**d):
        print(json.dumps(d), file=sys.stderr, flush=True)
    with open(os.environ["FAKE_OUT"], "w") as f:
        autogroup = ""
        if os.path.exists("/proc/self/autogroup"):
            with open("/proc/self/autogroup") as g:
                autogroup = g.read().strip()  # empty in init's session, as CI runs us
        json.dump({"argv": sys.argv[1:], "env": dict(os.environ), "nice": os.nice(0),
                   "pid": os.getpid(), "pgid": os.getpgid(0), "sid": os.getsid(0),
                   "autogroup": autogroup}, f)
    say(message="Picked Git content provider.\\n")
    say(phase="fetching", message="Cloning into ...\\n")
    print("a plain line", file=sys.stderr, flush=True)
    say(phase="building", message="Step 1/2\\n")
    if mode == "fail":
        say(phase="failed", message="Error during build: RUN false returned 1", exc_info="Traceback...")
        sys.exit(1)
    if mode == "exit3":
        sys.exit(3)
    if mode == "buildkit":
        print("#5 [2/2] RUN exit 3", file=sys.stderr, flush=True)
        print('ERROR: failed to solve: process "/bin/sh -c exit 3" did not complete successfully: exit code: 3',
              file=sys.stderr, flush=True)
        say(phase="failed", message="Error during build: Command '['docker', 'buildx', 'build']' "
            "returned non-zero exit status 1.")
        sys.exit(1)
    if mode == "longline":
        chunk = "x" * (1024 * 1024)
        for _ in range(100):  # 100 MB, no newline
            sys.stderr.write(chunk)
        sys.stderr.write("\\n")
        sys.stderr.flush()
        say(phase="building", message="after the long line\\n")
    if mode == "docker-config":
        with open(os.path.join(os.environ["DOCKER_CONFIG"], "config.json")) as f:
            say(phase="building", message="config: " + f.read() + "\\n")
    if mode == "hang":
        child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(300)"])
        with open(os.environ["FAKE_OUT"] + ".child", "w") as f:
            f.write(str(child.pid))
        say(phase="building", message="child started\\n")
        time.sleep(300)
    say(phase="building", message="done\\n")
    """
)


@pytest.fixture
def fake(tmp_path, monkeypatch):
    script = tmp_path / "fake_repo2docker.py"
    script.write_text(FAKE)
    out = tmp_path / "out.json"
    monkeypatch.setenv("FAKE_OUT", str(out))
    monkeypatch.setenv("JUPYTERHUB_API_TOKEN", "hub-secret-token")

    def make(mode="ok", **traits):
        monkeypatch.setenv("FAKE_MODE", mode)
        builder = LocalBuilder(
            repo2docker_command=[sys.executable, str(script)],
            environment=["FAKE_OUT", "FAKE_MODE"],
            kill_grace=1,
            **traits,
        )
        return builder

    make.out = out
    return make


async def run(builder, request=REQUEST):
    events = []
    await builder.build(request, events.append)
    return events


def test_repo2docker_args():
    args = repo2docker_args(
        REQUEST, user_id=1000, user_name="jovyan", extra_args=["--config", "c.py"]
    )
    assert args[:2] == ["--json-logs", "--no-run"]
    assert "--user-id=1000" in args and "--user-name=jovyan" in args
    assert f"--image-name={REQUEST.image_name}" in args
    assert "--ref=abc" in args
    assert "--push" in args
    assert args[-3:] == ["--config", "c.py", "https://example.org/x"]
    no_push = BuildRequest(**{**REQUEST.__dict__, "push": False})
    assert "--push" not in repo2docker_args(no_push, user_id=1000, user_name="jovyan")


async def test_repo2docker_runs_at_a_lower_cpu_priority_than_the_service(fake):
    """Builds starting together must not starve the event loop that answers viewers."""
    await run(fake("ok"))
    assert json.loads(fake.out.read_text())["nice"] == min(os.nice(0) + 10, 19)
    await run(fake("ok", niceness=0))
    assert json.loads(fake.out.read_text())["nice"] == os.nice(0)


@pytest.mark.skipif(sys.version_info < (3, 11), reason="process_group needs Python 3.11")
async def test_repo2docker_stays_in_the_services_session_so_its_nice_counts(fake):
    """Linux's autogroup scheduling shares the CPUs equally between sessions and applies
    nice only within one: in a session of its own, each build weighed as much as the
    service, and 4 builds starting together delayed 2,000 viewers' first events by
    0.3-0.7 s. Its own process group still lets a stop kill all of it."""
    await run(fake("ok"))
    got = json.loads(fake.out.read_text())
    assert got["sid"] == os.getsid(0)
    assert got["pgid"] == got["pid"] != os.getpgid(0)
    if os.path.exists("/proc/self/autogroup"):
        with open("/proc/self/autogroup") as f:
            assert got["autogroup"] == f.read().strip()


async def test_local_builder_refuses_a_repository_that_looks_like_an_option(fake):
    """Both builders refuse it (repo2docker would read it as an option)."""
    bad = BuildRequest(**{**REQUEST.__dict__, "repo_url": "--help"})
    with pytest.raises(ValueError, match="starts with '-'"):
        await run(fake("ok"), bad)
    assert not fake.out.exists()  # repo2docker never ran


async def test_local_failure_names_buildkit_reason(fake):
    """As in pods: repo2docker only says `docker buildx build` failed; BuildKit said why."""
    with pytest.raises(BuildFailed) as e:
        await run(fake("buildkit"))
    assert e.value.message == (
        'Error during build: failed to solve: process "/bin/sh -c exit 3" did not complete '
        "successfully: exit code: 3"
    )


async def test_a_100_mb_line_is_cut_and_the_build_goes_on(fake):
    events = await run(fake("longline"))
    long = [e for e in events if e.message.startswith("xxxx")]
    assert len(long) == 1 and long[0].message.endswith(TRUNCATED)
    assert len(long[0].message) < 2 * 1024 * 1024
    assert "after the long line\n" in [e.message for e in events]
    assert events[-1].phase == "pushing"


async def test_an_error_while_relaying_kills_the_whole_group(fake):
    """Anything but timeout or cancel (here: emit fails) leaves nothing running unread."""
    builder = fake("hang")

    def emit(event: Event):
        if event.message == "child started\n":
            raise RuntimeError("subscriber broke")

    with pytest.raises(RuntimeError, match="subscriber broke"):
        await asyncio.wait_for(builder.build(REQUEST, emit), 20)
    child = await wait_for_child(fake)
    for _ in range(50):
        if not pid_alive(child):
            break
        await asyncio.sleep(0.1)
    assert not pid_alive(child)


async def test_push_uses_the_registry_checkers_docker_config(fake, tmp_path):
    """DOCKER_CONFIG names a folder whose config.json is the checker's file."""
    config = tmp_path / "registry-config.json"
    config.write_text('{"auths": {"r.example": {"auth": "eDp5"}}}')
    builder = fake("docker-config")
    builder.docker_config_path = str(config)
    events = await run(builder)
    assert 'config: {"auths": {"r.example": {"auth": "eDp5"}}}\n' in [e.message for e in events]
    seen = json.loads(fake.out.read_text())
    folder = seen["env"]["DOCKER_CONFIG"]
    assert not os.path.exists(folder)  # a private folder per build, gone after it


async def test_credentials_reach_git_through_the_environment_only(fake):
    secret_request = make_build_request(
        image_name="127.0.0.1:5000/r2d-x:abc",
        repo_url="https://alice:pa55-word@git.example/x",
        ref="abc",
        provider="git",
        spec="https://alice:pa55-word@git.example/x/HEAD",
        push=False,
    )
    events = await run(fake("ok"), secret_request)
    seen = json.loads(fake.out.read_text())
    assert seen["argv"][-1] == "https://git.example/x"
    assert not any("pa55-word" in a or "alice" in a for a in seen["argv"])
    env = seen["env"]
    assert env["GIT_CONFIG_COUNT"] == "1" and env["GIT_CONFIG_KEY_0"] == "credential.helper"
    assert "pa55-word" not in env["GIT_CONFIG_VALUE_0"]  # the helper's text, no secret
    assert "password=pa55-word" in env["R2DSERVICE_GIT_CREDENTIALS"]
    assert not any("pa55-word" in e.message for e in events)


def test_credential_helper_answers_git_for_its_host_only(tmp_path):
    """The helper, run by real git: it answers for the URL's host and for no other."""
    env = {
        "PATH": os.environ["PATH"],
        "HOME": str(tmp_path),
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_TERMINAL_PROMPT": "0",
        **credential_env("protocol=https\nhost=git.example\nusername=alice\npassword=pa55-word\n"),
    }

    def fill(host: str) -> str:
        proc = subprocess.run(
            ["git", "credential", "fill"],
            input=f"protocol=https\nhost={host}\n\n",
            capture_output=True,
            text=True,
            env=env,
            timeout=10,
        )
        return proc.stdout

    assert "password=pa55-word" in fill("git.example")
    assert "pa55-word" not in fill("evil.example")
    assert credential_env("") == {}


async def test_events_relayed_with_phases_filled_in(fake):
    events = await run(fake("ok", repo2docker_extra_args=["--config", "x.py"]))
    phases = [e.phase for e in events]
    assert phases[0] == "fetching"  # ours, then repo2docker's first line without phase
    assert events[1].message == "Picked Git content provider.\n" and events[1].phase == "fetching"
    assert "unknown" in phases  # the plain line
    assert phases[-1] == "pushing"
    assert not any(e.terminal for e in events)
    seen = json.loads(fake.out.read_text())
    assert seen["argv"][-3:] == ["--config", "x.py", "https://example.org/x"]
    # The service's own secrets do not reach repo2docker.
    assert "JUPYTERHUB_API_TOKEN" not in seen["env"]
    assert seen["env"]["GIT_TERMINAL_PROMPT"] == "0"


async def test_failure_carries_repo2docker_message(fake):
    with pytest.raises(BuildFailed) as e:
        await run(fake("fail"))
    assert e.value.message == "Error during build: RUN false returned 1"


async def test_exit_code_without_message(fake):
    with pytest.raises(BuildFailed, match="exited with code 3"):
        await run(fake("exit3"))


def pid_alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split()[2] != "Z"
    except FileNotFoundError:
        return False


async def wait_for_child(fake):
    path = str(fake.out) + ".child"
    for _ in range(100):
        if os.path.exists(path) and open(path).read():
            return int(open(path).read())
        await asyncio.sleep(0.05)
    raise AssertionError("the fake repo2docker did not start its child")


async def test_timeout_kills_the_whole_group(fake):
    builder = fake("hang", build_timeout=1.5)
    with pytest.raises(BuildFailed, match="timed out after 1.5 seconds"):
        await run(builder)
    child = int(open(str(fake.out) + ".child").read())
    await asyncio.sleep(0.2)
    assert not pid_alive(child)


async def test_cancel_kills_the_whole_group(fake):
    task = asyncio.create_task(run(fake("hang")))
    child = await wait_for_child(fake)
    assert pid_alive(child)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await asyncio.sleep(0.2)
    assert not pid_alive(child)


def test_shared_traits_one_home_for_both_builders():
    c = Config()
    c.Repo2DockerBuilder.user_id = 1234
    c.Repo2DockerBuilder.build_timeout = 90.5
    c.LocalBuilder.user_name = "local-user"
    c.KubernetesBuilder.user_name = "pod-user"
    c.KubernetesBuilder.repo2docker_extra_args = ["--appendix=RUN true"]
    local, pods = LocalBuilder(config=c), KubernetesBuilder(config=c, namespace="x")
    assert isinstance(local, Repo2DockerBuilder) and isinstance(pods, Repo2DockerBuilder)
    assert local.user_id == pods.user_id == 1234
    assert local.build_timeout == pods.build_timeout == 90.5  # one type: float seconds
    assert (local.user_name, pods.user_name) == ("local-user", "pod-user")
    assert pods.pod_config().user_name == "pod-user"
    assert pods.pod_config().repo2docker_extra_args == ["--appendix=RUN true"]
    # declared once, not re-declared by either subclass
    for name in ("repo2docker_extra_args", "user_id", "user_name", "build_timeout"):
        assert name not in vars(LocalBuilder) and name not in vars(KubernetesBuilder), name


def test_fingerprint_covers_the_same_for_both_builders():
    for cls, extra in ((LocalBuilder, {}), (KubernetesBuilder, {"namespace": "x"})):
        base = cls(**extra).fingerprint()
        assert base == cls(**extra).fingerprint()
        assert base != cls(user_id=1001, **extra).fingerprint(), cls
        assert base != cls(user_name="other", **extra).fingerprint(), cls
        assert base != cls(repo2docker_extra_args=["--x"], **extra).fingerprint(), cls
    assert (
        KubernetesBuilder(namespace="x").fingerprint()
        != KubernetesBuilder(namespace="x", build_image="other:1").fingerprint()
    )


def test_fingerprint_follows_build_affecting_config():
    a = LocalBuilder(repo2docker_extra_args=["--config", "a.py"]).fingerprint()
    assert a == LocalBuilder(repo2docker_extra_args=["--config", "a.py"]).fingerprint()
    assert a != LocalBuilder(repo2docker_extra_args=["--config", "b.py"]).fingerprint()
    assert (
        a != LocalBuilder(repo2docker_extra_args=["--config", "a.py"], user_id=1001).fingerprint()
    )


# --- real repo2docker on the real engine --------------------------------------------------


def descendants_cmdlines() -> list[str]:
    """The command line of every process on this machine (what `ps` shows anyone)."""
    out = []
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            try:
                with open(f"/proc/{pid}/cmdline", "rb") as f:
                    out.append(f.read().replace(b"\0", b" ").decode(errors="replace"))
            except OSError:
                pass
    return out


class CmdlineWatch:
    """Reads every process's command line every few milliseconds while a build runs."""

    def __init__(self, needle: str):
        self.needle = needle
        self.seen: list[str] = []
        self.samples = 0
        self.saw_repo2docker = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self._stop.is_set():
            for line in descendants_cmdlines():
                if "repo2docker" in line and "--json-logs" in line:
                    self.saw_repo2docker = True
                if self.needle in line:
                    self.seen.append(line)
            self.samples += 1
            self._stop.wait(0.005)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()


@pytest.fixture
def private_git(tmp_path):
    from tests.fakes.gitserver import GitHTTPServer

    login = ("builder", f"pw-{uuid.uuid4().hex}")
    server = GitHTTPServer(tmp_path / "git", auth=login).start()
    server.login = login
    yield server
    server.stop()


def image_labels(image: str) -> str:
    return subprocess.run(
        ["docker", "image", "inspect", "-f", "{{json .Config.Labels}}", image],
        capture_output=True,
        text=True,
        check=True,
    ).stdout


@pytest.mark.docker
async def test_real_private_repository_credentials_never_on_a_command_line(
    infra, private_git, run_id
):
    from tests.fakes.gitserver import make_repo

    marker = uuid.uuid4().hex
    sha = make_repo(
        private_git.root / "private",
        {"Dockerfile": f"FROM {infra['base_image']}\nRUN echo {marker} > /built.txt\n"},
    )
    password = private_git.login[1]
    image = f"r2dtest-{run_id}-private:{sha[:12]}"
    request = make_build_request(
        image_name=image,
        repo_url=private_git.url("private", auth=True),
        ref=sha,
        provider="git",
        spec=private_git.url("private", auth=True) + "/main",
        push=False,
    )
    assert password not in request.repo_url and password in request.credentials
    builder = LocalBuilder(
        repo2docker_extra_args=["--config", infra["r2d_config"]], build_timeout=600
    )
    events = []
    try:
        with CmdlineWatch(password) as watch:
            await builder.build(request, events.append)
        assert watch.saw_repo2docker and watch.samples > 10
        assert watch.seen == [], watch.seen
        labels = image_labels(image)
        assert password not in labels and private_git.login[0] not in labels
        assert json.loads(labels)["repo2docker.repo"] == private_git.url("private")
        assert not any(password in e.message for e in events)
    finally:
        subprocess.run(["docker", "image", "rm", "-f", image], capture_output=True)


@pytest.mark.docker
async def test_real_private_repository_without_credentials_fails(infra, private_git, run_id):
    from tests.fakes.gitserver import make_repo

    sha = make_repo(private_git.root / "private", {"Dockerfile": f"FROM {infra['base_image']}\n"})
    request = make_build_request(
        image_name=f"r2dtest-{run_id}-nocreds:{sha[:12]}",
        repo_url=private_git.url("private"),
        ref=sha,
        provider="git",
        spec="private",
        push=False,
    )
    builder = LocalBuilder(
        repo2docker_extra_args=["--config", infra["r2d_config"]], build_timeout=300
    )
    with pytest.raises(BuildFailed):
        await builder.build(request, lambda e: None)


@pytest.fixture(scope="module")
def auth_registry(tmp_path_factory):
    from tests.support.registry import AuthRegistry

    reg = AuthRegistry(str(tmp_path_factory.mktemp("authreg")), {"pusher": "push-s3cret"})
    yield reg
    reg.stop()


@pytest.mark.docker
async def test_real_push_with_credentials_only_in_the_checkers_config(
    infra, auth_registry, tmp_path, run_id
):
    """README's promise: one config.json serves the registry check and the push."""
    from r2dservice.registry import RegistryImageChecker
    from tests.fakes.gitserver import GitDaemon, make_repo

    config = tmp_path / "docker" / "config.json"
    config.parent.mkdir()
    entry = base64.b64encode(b"pusher:push-s3cret").decode()
    config.write_text(json.dumps({"auths": {auth_registry.host: {"auth": entry}}}))
    root = tmp_path / "git"
    marker = uuid.uuid4().hex
    sha = make_repo(
        root / "pushed", {"Dockerfile": f"FROM {infra['base_image']}\nRUN echo {marker}\n"}
    )
    image = f"{auth_registry.host}/r2dtest-{run_id}/pushed:{sha[:12]}"
    checker = RegistryImageChecker(docker_config_path=str(config))
    with GitDaemon(root) as daemon:
        request = make_build_request(
            image_name=image,
            repo_url=daemon.url("pushed"),
            ref=sha,
            provider="git",
            spec="pushed",
            push=True,
        )
        builder = LocalBuilder(
            repo2docker_extra_args=["--config", infra["r2d_config"]], build_timeout=600
        )
        # the service's own DOCKER_CONFIG (if any) holds no login for this registry
        builder.docker_config_path = checker.docker_config_path
        try:
            assert await checker.exists(image) is False
            events = []
            await builder.build(request, events.append)
            assert await checker.exists(image) is True
        finally:
            await checker.close()
            subprocess.run(["docker", "image", "rm", "-f", image], capture_output=True)
