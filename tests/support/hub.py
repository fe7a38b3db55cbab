"""A real JupyterHub for tests: dev/jupyterhub_config.py (the operators' example) plus a few
test additions, the npm configurable-http-proxy, free ports, a temporary folder.

    hub = Hub(workdir, service_config="c.R2DService.image_prefix = ...").start()
    token, token_id = hub.token_for("alice", scopes=[...], expires_in=60)
    hub.url("services/binder/")   # through the proxy
    hub.stop(); hub.start()      # same database, same tokens

r2dservice runs as the managed service `binder` (the hub starts it), or with
`external=True` as an external service (`url` + `api_token`) that the test starts itself
with `hub.external_service(...)`, so that it outlives hub restarts.

Users (from dev/jupyterhub_config.py): alice may build, bob may use the service but not
build, admin administers it; the tests add mallory, who may log in to the hub but not use
the service. A test-only service `r2d-tester` has a token to mint and revoke users' tokens.
"""

from __future__ import annotations

import fcntl
import json
import os
import secrets
import signal
import subprocess
import sys
import textwrap
import time
import urllib.error
import urllib.request

from tests.support.service import REPO, ServiceProcess, free_port

DEV_CONFIG = os.path.join(REPO, "dev", "jupyterhub_config.py")
SERVICE = "binder"
BUILD_SCOPE = "custom:r2dservice:build"
ADMIN_SCOPE = "custom:r2dservice:admin"
ACCESS_SCOPE = f"access:services!service={SERVICE}"


def jupyterhub_python(major: int) -> str:
    """A Python with JupyterHub <major>.x: this one if it has it, else a venv made once
    under the dev state folder (pip, about 15 s) and reused."""
    import jupyterhub

    if jupyterhub.__version__.split(".")[0] == str(major):
        return sys.executable
    state = os.environ.get("R2DSERVICE_DEV_STATE", "/var/lib/r2dservice-dev")
    venv = os.path.join(state, "venvs", f"jupyterhub{major}")
    python = os.path.join(venv, "bin", "python")
    check = [
        python,
        "-c",
        f"import jupyterhub, sys; sys.exit(jupyterhub.__version__.split('.')[0] != '{major}')",
    ]
    os.makedirs(os.path.dirname(venv), exist_ok=True)
    with open(venv + ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # one maker at a time
        if os.path.exists(python) and subprocess.run(check).returncode == 0:
            return python
        # 5.3 is the first with the shared-password authenticator the demo config uses.
        want = "jupyterhub>=5.3,<6" if major == 5 else f"jupyterhub>={major},<{major + 1}"
        for cmd in (
            [sys.executable, "-m", "venv", "--clear", venv],
            [python, "-m", "pip", "install", "-q", "--disable-pip-version-check", want],
        ):
            out = subprocess.run(cmd, capture_output=True, text=True)
            if out.returncode:
                raise RuntimeError(f"{' '.join(cmd)} failed:\n{out.stdout}{out.stderr}")
        if subprocess.run(check).returncode:
            raise RuntimeError(f"{venv} has no JupyterHub {major}.x after installing {want}")
    return python


def request(method: str, url: str, body=None, headers=None, timeout: float = 10):
    """(status, parsed JSON or text) of one HTTP request; never raises on HTTP errors."""
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            status, raw = r.status, r.read()
    except urllib.error.HTTPError as e:
        status, raw = e.code, e.read()
    try:
        return status, json.loads(raw)
    except ValueError:
        return status, raw.decode(errors="replace")


class Hub:
    def __init__(
        self,
        workdir: str,
        service_config: str,
        *,
        external: bool = False,
        python: str | None = None,
        chp: str | None = None,
    ):
        self.workdir = workdir
        self.state = os.path.join(workdir, "state")
        self.external = external
        self.python = python or sys.executable
        self.chp = chp or os.environ.get("R2D_TEST_CHP") or "configurable-http-proxy"
        self.port = free_port()
        self.api_port = free_port()
        self.proxy_api_port = free_port()
        self.service_port = free_port()
        self.user_password = "test-" + secrets.token_hex(6)
        self.admin_password = secrets.token_hex(16)
        self.tester_token = secrets.token_hex(32)
        self.service_token = secrets.token_hex(32)  # external mode: shared with r2dservice
        self.secrets_handed_out: list[str] = []  # tokens that must never appear in logs
        self.proc: subprocess.Popen | None = None
        self.log_path = os.path.join(workdir, "jupyterhub.log")
        self.service_config_path = os.path.join(workdir, "r2dservice_config.py")
        with open(self.service_config_path, "w") as f:
            f.write(textwrap.dedent(service_config))
        self.config_path = os.path.join(workdir, "jupyterhub_config.py")
        with open(self.config_path, "w") as f:
            f.write(self._config())

    def _config(self) -> str:
        external = ""
        if self.external:
            external = f"""
            # External: the test starts r2dservice; the hub only knows its URL and token.
            svc = c.JupyterHub.services[0]
            del svc["command"], svc["environment"]
            svc["api_token"] = {self.service_token!r}
            """
        return textwrap.dedent(
            f"""
            # Written by tests/support/hub.py: the operators' example plus test additions.
            load_subconfig({DEV_CONFIG!r})
            c.ConfigurableHTTPProxy.command = [{self.chp!r}]
            c.Authenticator.allowed_users = {{"alice", "bob", "mallory"}}
            # Mints and revokes the users' tokens for the tests.
            c.JupyterHub.services.append({{"name": "r2d-tester", "api_token": {self.tester_token!r}}})
            c.JupyterHub.load_roles.append(
                {{"name": "r2d-tester", "scopes": ["admin:users", "tokens"], "services": ["r2d-tester"]}}
            )
            """
        ) + textwrap.dedent(external)

    @property
    def env(self) -> dict:
        return {
            **os.environ,
            "R2D_HUB_STATE": self.state,
            "R2D_HUB_IP": "127.0.0.1",
            "R2D_HUB_PORT": str(self.port),
            "R2D_HUB_API_PORT": str(self.api_port),
            "R2D_PROXY_API_PORT": str(self.proxy_api_port),
            "R2D_SERVICE_PORT": str(self.service_port),
            "R2D_SERVICE_NAME": SERVICE,
            "R2D_SERVICE_CONFIG": self.service_config_path,
            "R2DSERVICE_PYTHON": sys.executable,
            "R2D_DEMO_USER_PASSWORD": self.user_password,
            "R2D_DEMO_ADMIN_PASSWORD": self.admin_password,
        }

    # --- URLs ----------------------------------------------------------------
    def url(self, path: str = "") -> str:
        """Through the proxy, as people and tools see it."""
        return f"http://127.0.0.1:{self.port}/{path.lstrip('/')}"

    @property
    def service_url(self) -> str:
        return self.url(f"services/{SERVICE}/")

    @property
    def api_url(self) -> str:
        """The hub's own API address (what services use)."""
        return f"http://127.0.0.1:{self.api_port}/hub/api"

    def password(self, user: str) -> str:
        return self.admin_password if user == "admin" else self.user_password

    # --- process -------------------------------------------------------------
    def start(self, timeout: float = 60) -> Hub:
        self._log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            [self.python, "-m", "jupyterhub", "-f", self.config_path],
            cwd=self.workdir,
            env=self.env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + timeout
        ready = [self.url("hub/api/")] + ([] if self.external else [self.service_url + "versions"])
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"jupyterhub exited {self.proc.returncode}:\n{self.log()[-5000:]}"
                )
            if all(self._answers(u) for u in ready):
                return self
            time.sleep(0.2)
        raise RuntimeError(f"jupyterhub did not get ready in {timeout}s:\n{self.log()[-5000:]}")

    @staticmethod
    def _answers(url: str) -> bool:
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                return r.status == 200
        except OSError:
            return False

    def stop(self, timeout: float = 30) -> float:
        """SIGTERM, as a service manager stops it; returns the seconds it took."""
        t0 = time.monotonic()
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if getattr(self, "_log", None):
            self._log.close()
        return time.monotonic() - t0

    def log(self) -> str:
        with open(self.log_path, errors="replace") as f:
            return f.read()

    def managed_service_pids(self) -> list[int]:
        out = subprocess.run(
            ["pgrep", "-f", f"r2dservice -f {self.service_config_path}"],
            capture_output=True,
            text=True,
        ).stdout
        return [int(p) for p in out.split()]

    # --- hub API ---------------------------------------------------------------
    def api(self, method: str, path: str, body=None, token: str | None = None):
        headers = {"Authorization": f"token {token or self.tester_token}"}
        return request(method, f"{self.api_url}/{path.lstrip('/')}", body, headers)

    def token_for(self, user: str, scopes: list[str] | None = None, expires_in: int | None = None):
        """A new API token of `user`, minted through the hub API -> (token, token id)."""
        body = {"note": "r2dservice tests"}
        if scopes is not None:
            body["scopes"] = scopes
        if expires_in is not None:
            body["expires_in"] = expires_in
        status, reply = self.api("POST", f"users/{user}/tokens", body)
        assert status == 201, (status, reply)
        self.secrets_handed_out.append(reply["token"])
        return reply["token"], reply["id"]

    def revoke(self, user: str, token_id: str) -> None:
        status, reply = self.api("DELETE", f"users/{user}/tokens/{token_id}")
        assert status == 204, (status, reply)

    # --- external mode -----------------------------------------------------------
    def external_service(self, workdir: str, config: str | None = None) -> ExternalService:
        """r2dservice as the hub's external service: the environment an operator gives it."""
        env = {
            "JUPYTERHUB_SERVICE_NAME": SERVICE,
            "JUPYTERHUB_API_TOKEN": self.service_token,
            "JUPYTERHUB_API_URL": self.api_url,
            "JUPYTERHUB_BASE_URL": "/",
        }
        self.secrets_handed_out.append(self.service_token)
        with open(self.service_config_path) as f:
            base = f.read()
        return ExternalService(workdir, base + (config or ""), env=env, port=self.service_port)


class ExternalService(ServiceProcess):
    """ServiceProcess on a given port, serving under /services/<name>/."""

    def __init__(self, workdir, config, env, port):
        super().__init__(workdir, config, env=env)
        self.port = port
        with open(self.config_path, "a") as f:
            f.write(f"\nc.R2DService.port = {port}\n")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/services/{SERVICE}/"
