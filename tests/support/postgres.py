"""A real PostgreSQL server for tests: Debian's binaries, a temp folder, a free port.

initdb refuses to run as root, so as root (the tests' usual user) the server runs as the
`postgres` system user the Debian package creates; its folder is owned by that user.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
import tempfile
import uuid

from .service import free_port

MISSING = (
    "PostgreSQL's server binaries (initdb, pg_ctl) are missing under /usr/lib/postgresql/*/bin: "
    "run dev/services.sh (it installs Debian's postgresql package)"
)


def postgres_bin() -> str:
    """The newest installed PostgreSQL's bin folder; RuntimeError (saying what to do) if none."""
    found = [d for d in glob.glob("/usr/lib/postgresql/*/bin") if os.path.exists(f"{d}/pg_ctl")]
    if not found:
        raise RuntimeError(MISSING)
    return max(found, key=lambda d: int(d.split("/")[-2].split(".")[0]))


class PostgresServer:
    """initdb + pg_ctl into a temp folder; listens on 127.0.0.1:<free port> and a socket there."""

    def __init__(self, user: str = "postgres"):
        self.bin = postgres_bin()
        self.port = free_port()
        self.dir = tempfile.mkdtemp(prefix="r2d-pg-")
        self.data = os.path.join(self.dir, "data")
        self.logfile = os.path.join(self.dir, "server.log")
        self.run_as = None
        if os.geteuid() == 0:
            try:
                pw = pwd.getpwnam(user)
            except KeyError:
                raise RuntimeError(
                    f"no {user!r} system user to run PostgreSQL as: {MISSING}"
                ) from None
            self.run_as = pw.pw_uid
            os.chown(self.dir, pw.pw_uid, pw.pw_gid)
        self._run(
            "initdb", "-D", self.data, "-U", "postgres", "-A", "trust", "-E", "UTF8", "--no-sync"
        )
        self.start()

    def _run(self, tool: str, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        r = subprocess.run(
            [os.path.join(self.bin, tool), *args],
            capture_output=True,
            text=True,
            user=self.run_as,
            cwd=self.dir,
            timeout=60,
        )
        if check and r.returncode:
            raise RuntimeError(
                f"{tool} failed ({r.returncode}):\n{r.stdout}\n{r.stderr}\n{self.log()}"
            )
        return r

    def log(self) -> str:
        try:
            with open(self.logfile) as f:
                return f.read()[-4000:]
        except OSError:
            return ""

    def start(self) -> None:
        options = f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 -F"
        self._run("pg_ctl", "-D", self.data, "-l", self.logfile, "-o", options, "-w", "start")

    def stop(self) -> None:
        self._run("pg_ctl", "-D", self.data, "-m", "fast", "-w", "stop")

    def psql(self, sql: str, database: str = "postgres") -> str:
        r = self._run(
            "psql", "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", "-d", database,
            "-v", "ON_ERROR_STOP=1", "-Atc", sql,
        )  # fmt: skip
        return r.stdout

    def create_database(self, name: str | None = None) -> str:
        """A new, empty database; returns its URL."""
        name = name or f"r2d_{uuid.uuid4().hex[:12]}"
        self.psql(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def url(self, database: str) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def remove(self) -> None:
        self._run("pg_ctl", "-D", self.data, "-m", "immediate", "-w", "stop", check=False)
        shutil.rmtree(self.dir, ignore_errors=True)
