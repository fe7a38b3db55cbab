"""Build records through the real service process: history after memory forgets it and
after restarts, who may read what, restart in the middle of a build, filters and pages,
database trouble, and two replicas on one PostgreSQL.

Stand-ins (tests/support/standins.py) for GitHub, the Docker engine, the hub's user API
and the builder; real sqlite files and a real PostgreSQL server.
"""

from __future__ import annotations

import asyncio
import json
import signal
import sqlite3
import subprocess
import time

import aiohttp
import pytest

from tests.support.postgres import PostgresServer
from tests.support.sse import read_events
from tests.support.standins import fakes, start_service  # noqa: F401 (a fixture)

ALICE = {"Authorization": "Bearer alice-token"}
CAROL = {"Authorization": "Bearer carol-token"}
BOB = {"Authorization": "Bearer bob-token"}
ROOT = {"Authorization": "Bearer root-token"}
STOPPED = "The service stopped during this build. Request it again to build anew.\n"


@pytest.fixture(scope="module")
def postgres():
    server = PostgresServer()
    yield server
    server.remove()


@pytest.fixture(params=["sqlite", "postgresql"])
def db_config(request, postgres):
    """The service's records: its sqlite file (the default), or a fresh PostgreSQL database."""
    if request.param == "sqlite":
        return ""
    return f"c.R2DService.db_url = {postgres.create_database()!r}\n"


@pytest.fixture(autouse=True)
def github_budget(fakes):
    """Each test gets the GitHub stand-in's hourly budget (60 calls) afresh: this module
    restarts services, and each new one resolves its specs again."""
    fakes.forge.rate_remaining = fakes.forge.rate_limit


class Service:
    """One service's working folder (its sqlite file) across restarts."""

    def __init__(self, workdir, fakes, extra: str = ""):
        self.workdir, self.fakes, self.extra = workdir, fakes, extra
        self.proc = None

    def start(self):
        self.proc = start_service(
            self.workdir,
            self.fakes,
            'c.R2DService.base_url = "/"\nc.HubOAuth.cache_max_age = 0\n'
            "c.BuildManager.finished_build_retention = 0.5\n" + self.extra,
            env={
                "JUPYTERHUB_SERVICE_NAME": "binder",
                "JUPYTERHUB_API_TOKEN": "service-secret",
                "JUPYTERHUB_API_URL": self.fakes.hub_api_url,
            },
        )
        return self

    def stop(self):
        if self.proc is not None:
            self.proc.stop()

    def kill(self):
        self.proc.proc.send_signal(signal.SIGKILL)
        self.proc.proc.wait()
        self.proc._log.close()

    def restart(self):
        self.stop()
        return self.start()

    @property
    def url(self):
        return self.proc.url

    def log(self):
        return self.proc.log()


@pytest.fixture
async def http():
    async with aiohttp.ClientSession() as session:
        yield session


async def call(http, svc, method, path, headers, **kw):
    async with http.request(method, svc.url + path.lstrip("/"), headers=headers, **kw) as r:
        body = await r.read()
        try:
            return r.status, json.loads(body)
        except ValueError:
            return r.status, body.decode()


async def events_of(http, svc, build_id, headers, after=None):
    h = dict(headers)
    if after is not None:
        h["Last-Event-ID"] = str(after)
    return await read_events(http, f"{svc.url}api/builds/{build_id}/events", headers=h, timeout=60)


async def timed_call(http, svc, method, path, headers, **kw):
    """call(), and the seconds its answer took."""
    began = time.monotonic()
    status, body = await call(http, svc, method, path, headers, **kw)
    return status, body, time.monotonic() - began


async def until(predicate, timeout=15, interval=0.1):
    deadline = time.monotonic() + timeout
    while True:
        result = await predicate()
        if result or time.monotonic() > deadline:
            return result
        await asyncio.sleep(interval)


async def test_history_outlives_memory_and_restarts_for_its_requesters_only(
    tmp_path, fakes, http, db_config
):
    svc = Service(tmp_path, fakes, db_config).start()
    try:
        status, built = await call(
            http, svc, "POST", "api/builds", ALICE, json={"spec": "gh/octo/quick/main"}
        )
        assert status == 201, built
        live = await events_of(http, svc, built["id"], ALICE)
        assert live.last["phase"] == "ready"
        status, failed = await call(
            http, svc, "POST", "api/builds", CAROL, json={"spec": "gh/octo/fail/main"}
        )
        assert (await events_of(http, svc, failed["id"], CAROL)).last["phase"] == "failed"
        await asyncio.sleep(1.5)  # past finished_build_retention: gone from memory
        for _ in range(2):  # before and after a restart
            status, got = await call(http, svc, "GET", f"api/builds/{built['id']}", ALICE)
            assert (
                status == 200
                and got["state"] == "ready"
                and got["last_event_id"] == len(live.events)
            )
            assert got["links"]["events"].endswith(f"/api/builds/{built['id']}/events")
            replay = await events_of(http, svc, built["id"], ALICE)
            assert [(e["_id"], e["phase"], e["message"]) for e in replay.events] == [
                (e["_id"], e["phase"], e["message"]) for e in live.events
            ]
            rest = await events_of(http, svc, built["id"], ALICE, after=3)
            assert [e["_id"] for e in rest.events] == [e["_id"] for e in live.events[3:]]
            status, text = await call(http, svc, "GET", f"api/builds/{built['id']}/log", ALICE)
            assert status == 200 and text == "".join(e["message"] for e in live.events)
            # The requester, and an admin, and nobody else.
            assert (await call(http, svc, "GET", f"api/builds/{built['id']}", BOB))[0] == 404
            assert (await call(http, svc, "GET", f"api/builds/{built['id']}/log", CAROL))[0] == 404
            assert (await call(http, svc, "GET", f"api/builds/{built['id']}", ROOT))[0] == 200
            _, mine = await call(http, svc, "GET", "api/builds", ALICE)
            assert [b["id"] for b in mine["builds"]] == [built["id"]]
            _, everyone = await call(http, svc, "GET", "api/builds", ROOT)
            assert [b["id"] for b in everyone["builds"]] == [failed["id"], built["id"]]
            _, theirs = await call(http, svc, "GET", "api/builds", CAROL)
            assert [b["id"] for b in theirs["builds"]] == [failed["id"]]
            assert theirs["builds"][0]["state"] == "failed"
            svc.restart()
        # A fresh request finds the image and builds nothing.
        status, again = await call(
            http, svc, "POST", "api/builds", ALICE, json={"spec": "gh/octo/built/main"}
        )
        assert status == 200 and again["state"] == "ready"
    finally:
        svc.stop()


@pytest.mark.parametrize("how", ["stop", "crash"])
async def test_a_build_running_when_the_service_stops_is_recorded_failed(
    tmp_path, fakes, http, how, db_config
):
    svc = Service(
        tmp_path, fakes, "c.BuildManager.concurrent_build_limit = 1\n" + db_config
    ).start()
    try:
        _, slow = await call(
            http, svc, "POST", "api/builds", ALICE, json={"spec": "gh/octo/slow/main"}
        )
        _, queued = await call(
            http, svc, "POST", "api/builds", ALICE, json={"spec": "gh/octo/slow2/main"}
        )
        assert (slow["state"], queued["state"]) == ("running", "queued")
        seen = await read_events(
            http, f"{svc.url}build/gh/octo/slow/main", headers=ALICE, stop_after=3, timeout=30
        )
        await asyncio.sleep(1)  # the records writer has the events
        if how == "stop":
            svc.stop()
        else:
            svc.kill()
        svc.start()
        _, after = await call(http, svc, "GET", f"api/builds/{slow['id']}", ALICE)
        assert after["state"] == "failed" and after["message"] == STOPPED
        _, dropped = await call(http, svc, "GET", f"api/builds/{queued['id']}", ALICE)
        if how == "stop":
            assert dropped["state"] == "cancelled" and "shutting down" in dropped["message"]
        else:
            assert (
                dropped["state"] == "failed" and "before this build started" in dropped["message"]
            )
        # The viewer whose stream broke reconnects where it was, and learns why.
        last = int(seen.events[-1]["_id"])
        got = await read_events(
            http,
            f"{svc.url}build/gh/octo/slow/main",
            headers={**ALICE, "Last-Event-ID": str(last)},
            timeout=30,
        )
        assert got.events[-1]["phase"] == "failed" and got.events[-1]["message"] == STOPPED
        assert int(got.events[0]["_id"]) == last + 1
        assert int(got.events[-1]["_id"]) == after["last_event_id"]
        # A new request (no Last-Event-ID) builds it again.
        status, anew = await call(
            http, svc, "POST", "api/builds", ALICE, json={"spec": "gh/octo/slow/main"}
        )
        assert status == 201 and anew["id"] != slow["id"]
        await call(http, svc, "POST", f"api/builds/{anew['id']}/cancel", ROOT)
    finally:
        svc.stop()


async def test_filters_and_pages(tmp_path, fakes, http, db_config):
    svc = Service(
        tmp_path, fakes, "c.BuildManager.concurrent_build_limit = 0\n" + db_config
    ).start()
    try:
        ids = {}
        t0 = time.time()
        for name, who in (("quick", ALICE), ("fail", ALICE), ("fail2", CAROL), ("slow", ALICE)):
            _, b = await call(
                http, svc, "POST", "api/builds", who, json={"spec": f"gh/octo/{name}/main"}
            )
            ids[name] = b["id"]
            if name != "slow":
                await events_of(http, svc, b["id"], who)
            await asyncio.sleep(0.05)
        q = "api/builds?"
        _, r = await call(http, svc, "GET", q + "state=failed", ALICE)
        assert [b["id"] for b in r["builds"]] == [ids["fail"]]
        _, r = await call(http, svc, "GET", q + "state=failed&state=running", ALICE)
        assert [b["id"] for b in r["builds"]] == [ids["slow"], ids["fail"]]
        _, r = await call(http, svc, "GET", q + "spec=OCTO/QU", ALICE)
        assert [b["id"] for b in r["builds"]] == [ids["quick"]]
        _, one = await call(http, svc, "GET", f"api/builds/{ids['quick']}", ALICE)
        _, r = await call(http, svc, "GET", q + "image=" + one["image_name"], ALICE)
        assert [b["id"] for b in r["builds"]] == [ids["quick"]]
        _, r = await call(http, svc, "GET", q + f"since={t0 + 1000}", ALICE)
        assert r["builds"] == [] and r["next"] is None
        iso = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t0 - 60))
        _, r = await call(http, svc, "GET", q + f"since={iso}&until={time.time() + 60}", ALICE)
        assert len(r["builds"]) == 3
        # Pages of one, following `next`, newest first, stable while a build is added.
        seen, path = [], q + "limit=1"
        while path:
            status, page = await call(http, svc, "GET", path, ROOT)
            assert status == 200 and len(page["builds"]) <= 1
            seen += [b["id"] for b in page["builds"]]
            if len(seen) == 2:
                await call(
                    http, svc, "POST", "api/builds", CAROL, json={"spec": "gh/octo/slow2/main"}
                )
            path = page["next"]
        assert seen == [ids["slow"], ids["fail2"], ids["fail"], ids["quick"]]
        # Admins filter by user; others may name only themselves.
        _, r = await call(http, svc, "GET", q + "user=carol", ROOT)
        assert {b["spec"] for b in r["builds"]} == {"octo/fail2/main", "octo/slow2/main"}
        assert (await call(http, svc, "GET", q + "user=carol", ALICE))[0] == 403
        assert (await call(http, svc, "GET", q + "user=alice", ALICE))[0] == 200
        for bad in ("limit=0", "limit=x", "state=nope", "since=yesterday", "cursor=garbage"):
            status, err = await call(http, svc, "GET", q + bad, ALICE)
            assert status == 400 and err["message"], (bad, err)
        await call(http, svc, "POST", f"api/builds/{ids['slow']}/cancel", ROOT)
    finally:
        svc.stop()


async def test_a_locked_database_pauses_new_builds_and_history_not_existing_images(
    tmp_path, fakes, http
):
    svc = Service(
        tmp_path, fakes, "c.BuildStore.timeout = 1\nc.BuildStore.retry_interval = 0.2\n"
    ).start()
    try:
        _, b = await call(
            http, svc, "POST", "api/builds", ALICE, json={"spec": "gh/octo/quick/main"}
        )
        await events_of(http, svc, b["id"], ALICE)
        db = sqlite3.connect(tmp_path / "r2dservice.sqlite", timeout=5, isolation_level=None)
        db.execute("BEGIN EXCLUSIVE")
        try:
            status, err = await call(http, svc, "GET", "api/builds", ALICE)
            assert status == 503 and "records" in err["message"]
            status, err = await call(http, svc, "GET", f"api/builds/{b['id']}/log", ALICE)
            assert status in (200, 503)  # live in memory for a moment; never a 500
            # An image that exists is still answered, without the database.
            got = await read_events(
                http, f"{svc.url}build/gh/octo/built/main", headers=ALICE, timeout=30
            )
            assert got.phases == ["ready"]

            # A new build waits for the records.
            async def paused():
                status, err = await call(
                    http, svc, "POST", "api/builds", ALICE, json={"spec": "gh/octo/fail/main"}
                )
                return status == 503 and "paused" in err["message"]

            assert await until(paused, 15)
            status, health = await call(http, svc, "GET", "health", {})
            assert (
                status == 200
                and {"service": "records", "ok": False}.items()
                <= next(c for c in health["checks"] if c["service"] == "records").items()
            )
        finally:
            db.execute("ROLLBACK")
            db.close()

        async def back():
            status, _ = await call(http, svc, "GET", "api/builds", ALICE)
            return status == 200

        assert await until(back, 30), svc.log()[-3000:]
        status, new = await call(
            http, svc, "POST", "api/builds", ALICE, json={"spec": "gh/octo/fail/main"}
        )
        assert status == 201, new
        assert "Traceback" not in svc.log() or "Internal Server Error" not in svc.log()
    finally:
        svc.stop()


def immutable(paths, on: bool) -> None:
    """chattr +i / -i. The tests run as root, whom file modes do not stop; an immutable file
    refuses root's writes too (EPERM), so SQLite opens it read-only and answers "attempt to
    write a readonly database", as it does for a service user whose database file lost its
    write permission (chmod a-w, a backup restored with the wrong owner). Its folder stays
    writable: SQLite makes the WAL's -shm file there (without it, a read-only WAL database
    cannot even be read: "unable to open database file", a store that does not answer)."""
    subprocess.run(["chattr", "+i" if on else "-i", *map(str, paths)], check=True)


async def test_a_read_only_database_pauses_new_builds_and_history_not_existing_images(
    tmp_path, fakes, http
):
    folder = tmp_path / "records"
    db = folder / "r2dservice.sqlite"
    svc = Service(
        tmp_path,
        fakes,
        # the default c.BuildStore.timeout (5 s): a history call must not wait for it
        f"c.R2DService.db_url = {'sqlite:///' + str(db)!r}\nc.BuildStore.retry_interval = 0.2\n",
    ).start()
    frozen = []
    try:
        _, b = await call(
            http, svc, "POST", "api/builds", ALICE, json={"spec": "gh/octo/quick/main"}
        )
        assert (await events_of(http, svc, b["id"], ALICE)).last["phase"] == "ready"

        async def recorded():
            status, listed = await call(http, svc, "GET", "api/builds", ALICE)
            return status == 200 and [x["id"] for x in listed["builds"]] == [b["id"]]

        assert await until(recorded, 15)
        # A running build: its end will wait to be written.
        _, running = await call(
            http, svc, "POST", "api/builds", ALICE, json={"spec": "gh/octo/slow/main"}
        )

        async def recorded_running():
            status, listed = await call(http, svc, "GET", "api/builds", ALICE)
            return status == 200 and running["id"] in [x["id"] for x in listed["builds"]]

        assert await until(recorded_running, 15)
        frozen = [db]
        immutable(frozen, True)
        with pytest.raises(sqlite3.OperationalError, match="readonly"):
            sqlite3.connect(db).execute("DELETE FROM builds")

        # An image that exists is still answered, without the database.
        got = await read_events(
            http, f"{svc.url}build/gh/octo/built/main", headers=ALICE, timeout=30
        )
        assert got.phases == ["ready"]

        # The store's probe notices, with no build asked for: none starts unrecorded.
        took = await records_fail_within(http, svc, 10)
        assert took < 2 + 3, f"/health said the records fail after {took:.1f}s"

        # New builds wait for the records.
        async def paused():
            status, err = await call(
                http, svc, "POST", "api/builds", ALICE, json={"spec": "gh/octo/fail/main"}
            )
            return status == 503 and err["message"]

        message = await until(paused, 15)
        assert message and "read-only" in message and "try again" in message, message
        # The running build ends: its end waits to be written, and a history call (which
        # reads this process's writes) answers 503 at once, not after the store's timeout.
        status, _ = await call(http, svc, "POST", f"api/builds/{running['id']}/cancel", ALICE)
        assert status == 202
        status, err, took = await timed_call(http, svc, "GET", "api/builds", ALICE)
        assert status == 503 and "read-only" in err["message"], err
        assert took < 1, f"503 after {took:.2f}s"
        status, health = await call(http, svc, "GET", "health", {})
        records = next(c for c in health["checks"] if c["service"] == "records")
        assert status == 200 and records["ok"] is False and "read-only" in records["message"]
        # The operator's log says which file.
        assert "readonly database" in svc.log()

        immutable(frozen, False)
        frozen = []

        async def back():
            status, _ = await call(http, svc, "GET", "api/builds", ALICE)
            return status == 200

        assert await until(back, 30), svc.log()[-3000:]
        status, new = await call(
            http, svc, "POST", "api/builds", ALICE, json={"spec": "gh/octo/fail/main"}
        )
        assert status in (200, 201), new
        assert (await events_of(http, svc, new["id"], ALICE)).last["phase"] == "failed"

        async def listed_all():
            status, listed = await call(http, svc, "GET", "api/builds", ALICE)
            return status == 200 and new["id"] in [x["id"] for x in listed["builds"]]

        assert await until(listed_all, 15)
        assert "Internal Server Error" not in svc.log()
    finally:
        if frozen:
            immutable(frozen, False)
        svc.stop()


async def test_a_stopped_postgresql_pauses_new_builds_and_history_not_existing_images(
    tmp_path, fakes, http
):
    pg = PostgresServer()  # its own server: stopping the module's would disturb other tests
    svc = Service(
        tmp_path,
        fakes,
        # the default c.BuildStore.timeout (5 s): a history call must not wait for it
        f"c.R2DService.db_url = {pg.create_database()!r}\nc.BuildStore.retry_interval = 0.2\n",
    ).start()
    try:
        _, b = await call(
            http, svc, "POST", "api/builds", ALICE, json={"spec": "gh/octo/quick/main"}
        )
        assert (await events_of(http, svc, b["id"], ALICE)).last["phase"] == "ready"
        # A running build: its record and log keep writes queued through the outage.
        _, running = await call(
            http, svc, "POST", "api/builds", ALICE, json={"spec": "gh/octo/slow/main"}
        )

        async def listed(build_id):
            status, got = await call(http, svc, "GET", "api/builds", ALICE)
            return status == 200 and build_id in [x["id"] for x in got["builds"]]

        assert await until(lambda: listed(b["id"]), 15)
        assert await until(lambda: listed(running["id"]), 15)
        await asyncio.sleep(1)  # past finished_build_retention: b's log is read from the store
        pg.stop()

        # An image that exists is still answered, without the database.
        got = await read_events(
            http, f"{svc.url}build/gh/octo/built/main", headers=ALICE, timeout=30
        )
        assert got.phases == ["ready"]

        async def paused():
            status, err = await call(
                http, svc, "POST", "api/builds", ALICE, json={"spec": "gh/octo/fail/main"}
            )
            return status == 503 and err["message"]

        message = await until(paused, 15)
        assert message and "does not answer" in message and "try again" in message, message
        # The running build ends: its end waits to be written (once the database is back),
        # and history calls answer 503 at once, not after the store's timeout.
        status, _ = await call(http, svc, "POST", f"api/builds/{running['id']}/cancel", ALICE)
        assert status == 202
        for path in ("api/builds", f"api/builds/{b['id']}/log", f"api/builds/{b['id']}"):
            status, err, took = await timed_call(http, svc, "GET", path, ALICE)
            assert status == 503 and "try again" in err["message"], (path, err)
            assert took < 1, f"{path}: 503 after {took:.2f}s"
        status, health = await call(http, svc, "GET", "health", {})
        records = next(c for c in health["checks"] if c["service"] == "records")
        assert status == 200 and records["ok"] is False and records["message"], health

        pg.start()

        async def back():
            status, _ = await call(http, svc, "GET", "api/builds", ALICE)
            return status == 200

        assert await until(back, 30), svc.log()[-3000:]
        status, new = await call(
            http, svc, "POST", "api/builds", ALICE, json={"spec": "gh/octo/fail/main"}
        )
        assert status in (200, 201), new
        assert (await events_of(http, svc, new["id"], ALICE)).last["phase"] == "failed"
        assert await until(lambda: listed(new["id"]), 15)

        async def cancelled():
            status, got = await call(http, svc, "GET", f"api/builds/{running['id']}", ALICE)
            return status == 200 and got["state"] == "cancelled"

        assert await until(cancelled, 15)
        status, health = await call(http, svc, "GET", "health", {})
        assert all(c["ok"] for c in health["checks"]), health
        assert svc.proc.proc.poll() is None and "Internal Server Error" not in svc.log()
    finally:
        svc.stop()
        pg.remove()


async def records_check(http, svc) -> dict:
    status, health = await call(http, svc, "GET", "health", {})
    assert status == 200, health
    return next(c for c in health["checks"] if c["service"] == "records")


async def records_fail_within(http, svc, timeout) -> float:
    """Seconds until /health says the records fail (polling /health reads no record)."""
    began = time.monotonic()

    async def failing():
        return not (await records_check(http, svc))["ok"]

    assert await until(failing, timeout), svc.log()[-3000:]
    return time.monotonic() - began


async def test_the_probe_notices_an_outage_and_its_end_with_no_traffic(tmp_path, fakes, http):
    """Nothing reads or writes the records (the replicas' shared counts are read hourly
    here): the store's periodic probe (every c.BuildStore.health_interval, 2 s by default)
    pauses new builds when PostgreSQL stops, and resumes them when it is back."""
    pg = PostgresServer()  # its own server: stopping the module's would disturb other tests
    svc = Service(
        tmp_path,
        fakes,
        f"c.R2DService.db_url = {pg.create_database()!r}\nc.SharedLimits.refresh_interval = 3600\n",
    ).start()
    try:
        assert (await records_check(http, svc))["ok"]
        pg.stop()
        took = await records_fail_within(http, svc, 10)
        assert took < 2 + 1, f"/health said the records fail after {took:.1f}s"
        message = (await records_check(http, svc))["message"]
        assert "does not answer" in message and "127.0.0.1" not in message, message
        status, err = await call(
            http, svc, "POST", "api/builds", ALICE, json={"spec": "gh/octo/quick/main"}
        )
        assert status == 503 and "does not answer" in err["message"], err

        pg.start()
        began = time.monotonic()

        async def ok():
            return (await records_check(http, svc))["ok"]

        assert await until(ok, 15), svc.log()[-3000:]
        took = time.monotonic() - began
        assert took < 2 + 1, f"/health said the records work after {took:.1f}s"
        status, b = await call(
            http, svc, "POST", "api/builds", ALICE, json={"spec": "gh/octo/quick/main"}
        )
        assert status == 201, b
        assert (await events_of(http, svc, b["id"], ALICE)).last["phase"] == "ready"
        await asyncio.sleep(1)  # past finished_build_retention: read from the store
        status, got = await call(http, svc, "GET", f"api/builds/{b['id']}", ALICE)
        assert status == 200 and got["state"] == "ready", got
        assert svc.proc.proc.poll() is None and "Internal Server Error" not in svc.log()
    finally:
        svc.stop()
        pg.remove()


async def test_two_replicas_share_one_history(tmp_path, fakes, http, postgres):
    url = postgres.create_database("replicas")
    extra = f"c.R2DService.db_url = {url!r}\n"
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    a = Service(tmp_path / "a", fakes, extra).start()
    b = Service(tmp_path / "b", fakes, extra).start()
    try:
        _, done = await call(
            http, a, "POST", "api/builds", ALICE, json={"spec": "gh/octo/quick/main"}
        )
        live = await events_of(http, a, done["id"], ALICE)
        _, slow = await call(
            http, a, "POST", "api/builds", ALICE, json={"spec": "gh/octo/slow/main"}
        )

        # Through the other replica (within a second: records are written behind):
        # listed, read, replayed.
        async def listed():
            _, listing = await call(http, b, "GET", "api/builds", ALICE)
            return {done["id"], slow["id"]} <= {x["id"] for x in listing["builds"]}

        assert await until(listed, 5)
        replay = await events_of(http, b, done["id"], ALICE)
        assert [e["_id"] for e in replay.events] == [e["_id"] for e in live.events]
        _, running = await call(http, b, "GET", f"api/builds/{slow['id']}", ALICE)
        assert running["state"] == "running"
        # A viewer of the running build on the other replica follows it through the
        # records until it ends; a cancel there says where the build runs.
        follower = asyncio.create_task(events_of(http, b, slow["id"], ALICE))
        status, err = await call(http, b, "POST", f"api/builds/{slow['id']}/cancel", ALICE)
        assert status == 409 and "another replica" in err["message"]
        await asyncio.sleep(1.5)
        await call(http, a, "POST", f"api/builds/{slow['id']}/cancel", ALICE)
        followed = await asyncio.wait_for(follower, 30)
        assert followed.events[-1]["phase"] == "failed" and followed.events[-1]["cancelled"] is True
        ids = [int(e["_id"]) for e in followed.events]
        assert ids == list(range(1, ids[-1] + 1))
    finally:
        a.stop()
        b.stop()


async def test_per_user_limits_count_the_users_builds_on_every_replica(
    tmp_path, fakes, http, postgres
):
    url = postgres.create_database("limits")
    extra = (
        f"c.R2DService.db_url = {url!r}\n"
        "c.BuildManager.per_user_build_limit = 1\n"
        "c.BuildManager.per_user_queue_limit = 1\n"
        "c.SharedLimits.refresh_interval = 1\n"
    )
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    a = Service(tmp_path / "a", fakes, extra).start()
    b = Service(tmp_path / "b", fakes, extra).start()
    try:
        # alice reaches her limits through replica A: one running, one waiting.
        _, slow = await call(
            http, a, "POST", "api/builds", ALICE, json={"spec": "gh/octo/slow/main"}
        )
        _, slow2 = await call(
            http, a, "POST", "api/builds", ALICE, json={"spec": "gh/octo/slow2/main"}
        )
        assert (slow["state"], slow2["state"]) == ("running", "queued")
        # Through replica B at once (its records reach the database within a moment):
        # refused, naming the builds that use her share, wherever they run.
        t0 = time.monotonic()
        status, err = await call(
            http, b, "POST", "api/builds", ALICE, json={"spec": "gh/octo/slow3/main"}
        )
        refused_in = time.monotonic() - t0
        assert status == 429, err
        assert f"gh/octo/slow2/main (queued, build {slow2['id']})" in err["message"]
        assert f"gh/octo/slow/main (running, build {slow['id']})" in err["message"]
        assert "(1)" in err["message"] and "1 running" in err["message"]
        got = await read_events(http, f"{b.url}build/gh/octo/slow3/main", headers=ALICE)
        assert got.phases == ["failed"] and got.last["status"] == 429
        # Other users are not limited by her.
        status, carols = await call(
            http, b, "POST", "api/builds", CAROL, json={"spec": "gh/octo/quick/main"}
        )
        assert status == 201 and carols["state"] in ("running", "ready"), carols
        # Her waiting build withdrawn: B queues her next one, held back by her build
        # running on A, and starts it within a refresh once that one ends.
        await call(http, a, "POST", f"api/builds/{slow2['id']}/cancel", ROOT)

        async def accepted(svc, spec):
            """The build, once `svc` accepts it (the other replica's last change written)."""

            async def attempt():
                status, body = await call(
                    http, svc, "POST", "api/builds", ALICE, json={"spec": spec}
                )
                assert status in (201, 429), body
                return body if status == 201 else None

            return await until(attempt, 5)

        held = await accepted(b, "gh/octo/slow3/main")
        assert held and held["state"] == "queued", held
        seen = await read_events(
            http, f"{b.url}api/builds/{held['id']}/events", headers=ALICE, stop_after=1
        )
        assert "it waits for one of those to end" in seen.events[-1]["message"]
        await call(http, a, "POST", f"api/builds/{slow['id']}/cancel", ROOT)
        t1 = time.monotonic()

        async def started():
            _, now = await call(http, b, "GET", f"api/builds/{held['id']}", ALICE)
            return now["state"] == "running"

        assert await until(started, 10)
        started_in = time.monotonic() - t1

        # And A now counts the build that runs on B (once B's records writer has its start).
        async def recorded_running():
            _, now = await call(http, a, "GET", f"api/builds/{held['id']}", ALICE)
            return now["state"] == "running"

        assert await until(recorded_running, 5)
        status, err = await call(
            http, a, "POST", "api/builds", ALICE, json={"spec": "gh/octo/slow/main"}
        )
        assert status == 201 and err["state"] == "queued"
        status, err = await call(
            http, a, "POST", "api/builds", ALICE, json={"spec": "gh/octo/slow2/main"}
        )
        assert status == 429 and held["id"] in err["message"], err
        print(f"refused through B in {refused_in:.3f}s; held build started {started_in:.2f}s after")
        # Once they have finished, B accepts again.
        for svc in (a, b):
            _, mine = await call(http, svc, "GET", "api/builds?state=queued&state=running", ROOT)
            for x in mine["builds"]:
                await call(http, svc, "POST", f"api/builds/{x['id']}/cancel", ROOT)
        ok = await accepted(b, "gh/octo/slow2/main")
        assert ok and ok["state"] == "running", ok
        await call(http, b, "POST", f"api/builds/{ok['id']}/cancel", ROOT)
    finally:
        a.stop()
        b.stop()
