"""Run r2dservice as a real process, the way an operator does."""

from __future__ import annotations

import os
import random
import socket
import subprocess
import sys
import textwrap
import time
import urllib.request

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


# Ports for test servers come from below the kernel's ephemeral range (32768 and up by
# default): a port bind(0) picked and released can be taken again at once by any
# outgoing connection's local end, and a server started later on it fails (EADDRINUSE).
PORT_RANGE = (20000, 32000)


def free_port() -> int:
    for _ in range(1000):
        port = random.randint(*PORT_RANGE)
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError(f"no free port in {PORT_RANGE}")


class ServiceProcess:
    """`python -m r2dservice -f <config>` on a free port; stop() sends SIGTERM."""

    def __init__(self, workdir: str, config: str, env: dict | None = None, args=()):
        self.port = free_port()
        self.workdir = workdir
        self.config_path = os.path.join(workdir, "r2dservice_config.py")
        with open(self.config_path, "w") as f:
            f.write(textwrap.dedent(config))
            f.write(f"\nc.R2DService.port = {self.port}\n")
        self.log_path = os.path.join(workdir, "r2dservice.log")
        self.env = {**os.environ, **(env or {})}
        self.args = list(args)
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/"

    def start(self, timeout: float = 30) -> ServiceProcess:
        self._log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "r2dservice", "-f", self.config_path, *self.args],
            cwd=self.workdir,
            env=self.env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"r2dservice exited {self.proc.returncode}:\n{self.log()}")
            try:
                urllib.request.urlopen(self.url + "versions", timeout=2)
                return self
            except OSError:
                time.sleep(0.1)
        raise RuntimeError(f"r2dservice did not answer in {timeout}s:\n{self.log()}")

    def log(self) -> str:
        with open(self.log_path, errors="replace") as f:
            return f.read()

    def stop(self, timeout: float = 20) -> int:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()
        return self.proc.returncode
