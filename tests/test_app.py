"""The command line: config files, --generate-config, clear errors, clean shutdown."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
import urllib.request

import pytest

from tests.support.service import ServiceProcess


def r2dservice(*args, cwd, timeout=30):
    return subprocess.run(
        [sys.executable, "-m", "r2dservice", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_generate_config_is_commented_and_loadable(tmp_path):
    out = r2dservice("--generate-config", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    text = (tmp_path / "r2dservice_config.py").read_text()
    for setting in (
        "c.R2DService.image_prefix",
        "c.BuildManager.concurrent_build_limit",
        "c.LocalBuilder.repo2docker_extra_args",
        "c.RegistryImageChecker.docker_config_path",
        "c.Resolver.cache_ttl",
        "c.GitHubRepoProvider.access_token",
        "c.KubernetesBuilder.build_image",
    ):
        assert f"# {setting} = " in text, setting
    # Refuses to overwrite.
    again = r2dservice("--generate-config", cwd=tmp_path)
    assert again.returncode != 0 and "exists already" in again.stderr


def test_help_all_lists_options(tmp_path):
    out = r2dservice("--help-all", cwd=tmp_path)
    assert out.returncode == 0
    assert "--R2DService.image_prefix" in out.stdout


@pytest.mark.parametrize(
    "config, message",
    [
        ('c.R2DService.image_prefix = "Bad Prefix/"', "image_prefix"),
        ('c.R2DService.builder_class = "nosuch.module.Builder"', "builder_class"),
        ('c.R2DService.builder_class = "collections.OrderedDict"', "Builder subclass"),
        ("c.BuildManager.concurrent_build_limit = 'many'", "concurrent_build_limit"),
    ],
)
def test_bad_config_is_a_clear_error(tmp_path, config, message):
    (tmp_path / "c.py").write_text("c.R2DService.auth_enabled = False\n" + config + "\n")
    out = r2dservice("-f", "c.py", cwd=tmp_path)
    assert out.returncode != 0
    assert message in out.stderr
    assert "Traceback" not in out.stderr


def test_missing_config_file_is_an_error(tmp_path):
    out = r2dservice("-f", "nope.py", "--no-auth", cwd=tmp_path)
    assert out.returncode != 0 and "nope.py" in out.stderr


def test_no_auth_warns_loudly_and_sigterm_stops_cleanly(tmp_path):
    svc = ServiceProcess(str(tmp_path), "c.R2DService.auth_enabled = False\n").start()
    with urllib.request.urlopen(svc.url + "versions") as r:
        assert r.status == 200
    t0 = time.monotonic()
    assert svc.stop() == 0
    assert time.monotonic() - t0 < 5
    assert "ANYONE" in svc.log()


def test_sigint_stops_even_if_inherited_ignored(tmp_path):
    """A hub-managed service may inherit an ignored SIGINT; ours is installed anyway."""
    svc = ServiceProcess(str(tmp_path), "c.R2DService.auth_enabled = False\n")
    old = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        svc.start()
    finally:
        signal.signal(signal.SIGINT, old)
    svc.proc.send_signal(signal.SIGINT)
    svc.proc.wait(10)
    assert svc.proc.returncode == 0
    svc._log.close()


def test_python_m_and_console_script_agree(tmp_path):
    out = subprocess.run(["r2dservice", "--version"], capture_output=True, text=True)
    assert out.returncode == 0
    assert out.stdout.strip() == r2dservice("--version", cwd=tmp_path).stdout.strip()


def test_error_in_config_file_stops_with_file_and_line(tmp_path):
    (tmp_path / "c.py").write_text("c.R2DService.auth_enabled = False\nundefined_name + 1\n")
    out = r2dservice("-f", "c.py", cwd=tmp_path)
    assert out.returncode == 1
    assert "c.py, line 2: NameError" in out.stderr
    assert "Traceback" not in out.stderr


def test_the_local_builder_pushes_with_the_registry_checkers_config(tmp_path):
    """README's promise, through the config file: c.RegistryImageChecker.docker_config_path
    is the file the local builder's push uses too (one config.json for check and push)."""
    docker_config = tmp_path / "registry" / "config.json"
    docker_config.parent.mkdir()
    docker_config.write_text("{}")
    config = tmp_path / "r2dservice_config.py"
    config.write_text(
        "c.R2DService.auth_enabled = False\n"
        'c.R2DService.image_prefix = "127.0.0.1:5000/r2d-"\n'
        "c.R2DService.use_registry = True\n"
        f"c.RegistryImageChecker.docker_config_path = {str(docker_config)!r}\n"
    )
    out = initialized(config, "print(type(app.builder).__name__, app.builder.docker_config_path)\n")
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["LocalBuilder", str(docker_config)]


def initialized(config, then: str) -> subprocess.CompletedProcess:
    """A fresh Python that initializes the app from `config` (as `r2dservice -f` does),
    then runs `then` with it as `app`."""
    script = (
        "import sys\n"
        "from r2dservice.app import R2DService\n"
        "app = R2DService()\n"
        "app.initialize(['-f', sys.argv[1]])\n" + then
    )
    return subprocess.run(
        [sys.executable, "-c", script, str(config)],
        cwd=config.parent,
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.parametrize(
    "builder, expected",
    [("local", "LocalBuilder False"), ("kubernetes", "KubernetesBuilder True")],
)
def test_kubernetes_asyncio_is_loaded_only_by_the_kubernetes_builder(tmp_path, builder, expected):
    """kubernetes_asyncio costs ~80 MB of memory: a service with another builder never
    imports it (r2dservice.builders.kubernetes and the modules behind it are imported
    only when that builder is configured, or to document it)."""
    config = tmp_path / "r2dservice_config.py"
    config.write_text(
        "c.R2DService.auth_enabled = False\n"
        f"c.R2DService.builder_class = {builder!r}\n"
        'c.KubernetesBuilder.namespace = "builds"\n'
        'c.KubernetesBuilder.k8s_api_url = "http://127.0.0.1:9"\n'
    )
    out = initialized(
        config,
        "loaded = sorted(m for m in sys.modules if m.split('.')[0] == 'kubernetes_asyncio')\n"
        "print(type(app.builder).__name__, bool(loaded))\n",
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == expected
