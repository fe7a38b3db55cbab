"""Real git repositories and real git servers on 127.0.0.1, for tests.

    sha = make_repo(root / "demo", {"Dockerfile": "FROM scratch\\n"})
    with GitDaemon(root) as daemon:          # git://127.0.0.1:<port>/demo
        url = daemon.url("demo")
    with GitHTTPServer(root) as server:      # smart HTTP through `git http-backend`
        url = server.url("demo")

Pytest fixtures (import them into a test module or conftest to use them):
`git_root` (a folder to make repositories in), `git_daemon`, `git_http_server`.
"""

from __future__ import annotations

import base64
import os
import shutil
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import quote

import pytest

# commits made here must not depend on the machine's git config or clock
_GIT_ENV = {
    "GIT_AUTHOR_NAME": "Test Author",
    "GIT_AUTHOR_EMAIL": "author@example.org",
    "GIT_COMMITTER_NAME": "Test Committer",
    "GIT_COMMITTER_EMAIL": "committer@example.org",
    "GIT_CONFIG_NOSYSTEM": "1",
    "GIT_CONFIG_GLOBAL": os.devnull,
    "GIT_TERMINAL_PROMPT": "0",
}


def git(cwd: str | os.PathLike, *args: str, input: bytes | None = None) -> str:
    """Run git in `cwd`; return its stdout; raise with git's stderr on failure."""
    env = {**os.environ, **_GIT_ENV}
    proc = subprocess.run(
        ["git", *args], cwd=cwd, env=env, input=input, capture_output=True, timeout=60
    )
    if proc.returncode:
        stderr = proc.stderr.decode(errors="replace")
        raise RuntimeError(f"git {' '.join(args)} failed ({proc.returncode}): {stderr}")
    return proc.stdout.decode()


def make_repo(
    path: str | os.PathLike,
    files: Mapping[str, str | bytes | None],
    *,
    message: str = "commit",
    branch: str = "main",
    tag: str | None = None,
    annotated_tag: str | None = None,
) -> str:
    """Commit `files` on `branch` of the repository at `path`; return the commit sha.

    Creates the repository (default branch `branch`) on first use; later calls add
    commits, so history and several branches can be built up. A value of None deletes
    that file. `tag` / `annotated_tag` tag the new commit.
    """
    path = Path(path)
    if not (path / ".git").exists():
        path.mkdir(parents=True, exist_ok=True)
        git(path, "init", "--quiet", "--initial-branch", branch)
    else:
        branches = git(path, "branch", "--list", "--format=%(refname:short)").split()
        if branches and branch not in branches:
            git(path, "checkout", "--quiet", "-b", branch)
        elif branches:
            git(path, "checkout", "--quiet", branch)
    for name, content in files.items():
        target = path / name
        if content is None:
            target.unlink(missing_ok=True)
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            target.write_bytes(content)
        else:
            target.write_text(content)
    git(path, "add", "--all")
    git(path, "commit", "--quiet", "--allow-empty", "-m", message)
    if tag:
        git(path, "tag", tag)
    if annotated_tag:
        git(path, "tag", "-a", annotated_tag, "-m", f"release {annotated_tag}")
    return git(path, "rev-parse", "HEAD").strip()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_for_port(port: int, proc: subprocess.Popen | None = None, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode} before listening")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on 127.0.0.1:{port} after {timeout} s")


class GitDaemon:
    """`git daemon` serving every repository under `root` on git://127.0.0.1:<port>/."""

    def __init__(self, root: str | os.PathLike):
        self.root = Path(root)
        self.port = 0
        self._proc: subprocess.Popen | None = None

    def url(self, name: str) -> str:
        return f"git://127.0.0.1:{self.port}/{name}"

    def start(self) -> GitDaemon:
        self.root.mkdir(parents=True, exist_ok=True)
        for _attempt in range(3):  # the free port may be taken before the daemon binds it
            self.port = free_port()
            self._proc = subprocess.Popen(
                [
                    "git",
                    "daemon",
                    "--reuseaddr",
                    "--export-all",
                    "--informative-errors",
                    f"--base-path={self.root}",
                    "--listen=127.0.0.1",
                    f"--port={self.port}",
                ],
                env={**os.environ, **_GIT_ENV},
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                start_new_session=True,  # so stop() ends the per-connection children too
            )
            try:
                _wait_for_port(self.port, self._proc)
                return self
            except RuntimeError:
                self.stop()
        raise RuntimeError("git daemon did not start")

    def stop(self) -> None:
        if self._proc is None:
            return
        try:
            os.killpg(self._proc.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        try:
            self._proc.wait(5)
        except subprocess.TimeoutExpired:
            os.killpg(self._proc.pid, signal.SIGKILL)
            self._proc.wait()
        self._proc = None

    def __enter__(self) -> GitDaemon:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


class GitHTTPServer:
    """git's smart HTTP protocol (`git http-backend`) for every repository under `root`.

    With `auth=(user, password)` every request needs that HTTP Basic login, which is
    how a private repository behaves; url(name, auth=True) embeds it in the URL.
    """

    def __init__(self, root: str | os.PathLike, auth: tuple[str, str] | None = None):
        self.root = Path(root)
        self.auth = auth
        self.port = 0
        self.requests: list[str] = []
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    def url(self, name: str, auth: bool = False) -> str:
        userinfo = ""
        if auth and self.auth:
            # %-encoded, as in any URL: a password may hold "@", ":", "/" or spaces
            userinfo = f"{quote(self.auth[0], safe='')}:{quote(self.auth[1], safe='')}@"
        return f"http://{userinfo}127.0.0.1:{self.port}/{name}"

    def start(self) -> GitHTTPServer:
        self.root.mkdir(parents=True, exist_ok=True)
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> GitHTTPServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def _handler_class(self):
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.0"  # one request per connection: no keep-alive state

            def log_message(self, *args):
                pass

            def do_GET(self):
                self._cgi()

            def do_POST(self):
                self._cgi()

            def _authorized(self) -> bool:
                if server.auth is None:
                    return True
                expected = base64.b64encode(":".join(server.auth).encode()).decode()
                return self.headers.get("Authorization") == f"Basic {expected}"

            def _read_body(self) -> bytes:
                if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                    body = b""
                    while True:
                        size = int(self.rfile.readline().split(b";")[0].strip(), 16)
                        if size == 0:
                            self.rfile.readline()
                            return body
                        body += self.rfile.read(size)
                        self.rfile.readline()
                return self.rfile.read(int(self.headers.get("Content-Length") or 0))

            def _cgi(self):
                server.requests.append(f"{self.command} {self.path}")
                if not self._authorized():
                    self.send_response(401)
                    self.send_header("WWW-Authenticate", 'Basic realm="git"')
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                path, _, query = self.path.partition("?")
                env = {
                    **os.environ,
                    "GIT_PROJECT_ROOT": str(server.root),
                    "GIT_HTTP_EXPORT_ALL": "1",
                    "GATEWAY_INTERFACE": "CGI/1.1",
                    "REQUEST_METHOD": self.command,
                    "PATH_INFO": path,
                    "QUERY_STRING": query,
                    "CONTENT_TYPE": self.headers.get("Content-Type", ""),
                    "REMOTE_ADDR": self.client_address[0],
                    "REMOTE_USER": server.auth[0] if server.auth else "",
                    "GIT_PROTOCOL": self.headers.get("Git-Protocol", ""),
                    "HTTP_CONTENT_ENCODING": self.headers.get("Content-Encoding", ""),
                }
                body = self._read_body() if self.command == "POST" else b""
                env["CONTENT_LENGTH"] = str(len(body))
                proc = subprocess.run(
                    ["git", "http-backend"], input=body, env=env, capture_output=True, timeout=60
                )
                head, _, payload = proc.stdout.partition(b"\r\n\r\n")
                if not _:
                    head, _, payload = proc.stdout.partition(b"\n\n")
                status, headers = 200, []
                for line in head.decode("latin-1").splitlines():
                    key, _, value = line.partition(":")
                    if key.lower() == "status":
                        status = int(value.split()[0])
                    elif key:
                        headers.append((key, value.strip()))
                self.send_response(status)
                for key, value in headers:
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

        return Handler


class BlackHole:
    """A TCP server that accepts connections and never answers: for timeouts."""

    def __init__(self):
        self._sock = socket.socket()
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(16)  # the kernel completes handshakes; nobody ever reads
        self.port = self._sock.getsockname()[1]

    def close(self) -> None:
        self._sock.close()

    def __enter__(self) -> BlackHole:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


@pytest.fixture
def git_root(tmp_path) -> Path:
    root = tmp_path / "git-repos"
    root.mkdir()
    return root


@pytest.fixture
def git_daemon(git_root):
    with GitDaemon(git_root) as daemon:
        yield daemon


@pytest.fixture
def git_http_server(git_root):
    with GitHTTPServer(git_root) as server:
        yield server


def have_git() -> bool:
    return shutil.which("git") is not None
