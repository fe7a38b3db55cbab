"""LocalBuilder with a stand-in repo2docker script: a real subprocess and process
group, so output relaying, failures, timeouts and kills are tested for real."""
from __future__ import annotations

import asyncio
import json
import os
import sys
import textwrap

import pytest

from r2dservice.builders.base import BuildFailed, BuildRequest
from r2dservice.builders.local import LocalBuilder, repo2docker_args

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
        json.dump({"argv": sys.argv[1:], "env": dict(os.environ)}, f)
    say(message="Picked Git content provider.\\n")
    say(phase="fetching", message="Cloning into ...\\n")
    print("a plain line", file=sys.stderr, flush=True)
    say(phase="building", message="Step 1/2\\n")
    if mode == "fail":
        say(phase="failed", message="Error during build: RUN false returned 1", exc_info="Traceback...")
        sys.exit(1)
    if mode == "exit3":
        sys.exit(3)
    if mode == "hang":
        child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(300)"])
        with open(os.environ["FAKE_OUT"] + ".child", "w") as f:
            f.write(str(child.pid))
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
    args = repo2docker_args(REQUEST, 1000, "jovyan", ["--config", "c.py"])
    assert args[:2] == ["--json-logs", "--no-run"]
    assert args[args.index("--user-id") + 1] == "1000"
    assert args[args.index("--user-name") + 1] == "jovyan"
    assert args[args.index("--image-name") + 1] == REQUEST.image_name
    assert args[args.index("--ref") + 1] == "abc"
    assert "--push" in args
    assert args[-3:] == ["--config", "c.py", "https://example.org/x"]
    no_push = BuildRequest(**{**REQUEST.__dict__, "push": False})
    assert "--push" not in repo2docker_args(no_push, 1000, "jovyan", [])


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


def test_fingerprint_follows_build_affecting_config():
    a = LocalBuilder(repo2docker_extra_args=["--config", "a.py"]).fingerprint()
    assert a == LocalBuilder(repo2docker_extra_args=["--config", "a.py"]).fingerprint()
    assert a != LocalBuilder(repo2docker_extra_args=["--config", "b.py"]).fingerprint()
    assert a != LocalBuilder(repo2docker_extra_args=["--config", "a.py"], user_id=1001).fingerprint()
