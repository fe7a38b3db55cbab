"""schemathesis against r2dservice/openapi.yaml: a real service process, auth on.

The service runs as operators run it (`python -m r2dservice -f ...`, build records in
a sqlite file in its working folder) against the stand-ins of tests/support/standins.py:
GitHub's API, a Docker engine's image endpoint and JupyterHub's `/hub/api/user`, so
nothing leaves 127.0.0.1 and no Docker is needed.

schemathesis generates requests for every operation of the document (its examples,
coverage and fuzzing phases, positive and negative data; a fixed seed and Hypothesis
derandomized, so CI sends the same requests every run) and each one is sent with each
of six credentials, as `Authorization: Bearer ...` headers:

- alice: may use the service and build;
- bob: may use the service, no build scope;
- root: admin;
- anonymous: no credentials;
- bad-token: a token the hub does not know;
- mallory: a token the hub knows, without the scope to use the service.

Generation is steered towards the stand-ins' repositories (`gh/octo/quick/main`,
`.../built/...` whose image exists, `.../broken/...` where the engine fails, ...) and
towards the ids of real builds (ready, failed, running, cancelled), so the answers
are not only 400s and 404s. test_known_requests_conform sends each of those through
every operation that takes one, whatever the fuzzing drew, and reads the history a
page at a time; test_stateful_links lets schemathesis follow the document's links.

Every answer must:

- never be a 500; any other 5xx must be one the document lists for the operation
  (the engine's 500 for "broken*" repositories is a 503);
- have a status the document lists for the operation, a documented content type and
  a body that validates against the documented schema (event streams: every event's
  `data` is a `BuildEvent`), documented headers that fit their schemas, and 405 with
  `Allow` for a method the path does not have;
- start within MAX_RESPONSE_SECONDS;
- refuse callers who may not use the service (403 on every operation that needs
  credentials), never start a build (201) for a caller without the build scope, and
  hide a build from every non-admin who did not request it (404).

Event streams (`/build/{provider}/{spec}`, `/api/builds/{build_id}/events`) are not
excluded: a running or queued build streams until it ends, so they are read for at
most STREAM_SECONDS (schemathesis reads an event stream until it ends or its request
timeout passes in total) and the complete events read by then are validated.

R2D_SCHEMATHESIS_LOG=<file> appends every request and answer to that file.
"""

from __future__ import annotations

import os
import time

import pytest
import requests

try:
    import schemathesis
    from hypothesis import HealthCheck, settings
    from hypothesis import strategies as st
    from schemathesis.core.failures import FailureGroup
    from schemathesis.core.parameters import EncodedPath
    from schemathesis.generation.meta import REQUEST_SHAPE_PROBES
    from schemathesis.specs.openapi import checks as openapi_checks
except ImportError as e:  # pragma: no cover - a clear failure, never a skip
    raise ImportError(
        f"{e}: tests/test_schemathesis.py needs schemathesis 4; install the test extra "
        "(pip install -e '.[test]')"
    ) from None

from tests.support.service import REPO
from tests.support.standins import FakeServers, start_service

OPENAPI_FILE = os.path.join(REPO, "r2dservice", "openapi.yaml")

SEED = 20261129
# fuzzing phase, per operation and credential (benchmarks/bench_fuzz.py asks for more)
MAX_EXAMPLES = int(os.environ.get("R2D_FUZZ_EXAMPLES", "50"))
MAX_RESPONSE_SECONDS = 3.0  # until the status line and headers
REQUEST_TIMEOUT = 10.0  # a request that does not answer at all fails before this
STREAM_SECONDS = 1.0  # how long an event stream is read

CREDENTIALS = {
    "alice": {"Authorization": "Bearer alice-token"},
    "bob": {"Authorization": "Bearer bob-token"},
    "root": {"Authorization": "Bearer root-token"},
    "anonymous": {},
    "bad-token": {"Authorization": "Bearer not-a-token-the-hub-knows"},
    "mallory": {"Authorization": "Bearer mallory-token"},  # known to the hub, not allowed here
}
SERVICE_TOKEN = "service-secret"
SECRETS = [h["Authorization"].split()[1] for h in CREDENTIALS.values() if h] + [SERVICE_TOKEN]
BUILDERS = {"alice", "root"}
ADMINS = {"root"}
REFUSED = {"anonymous", "bad-token", "mallory"}

# The stand-in forge's repositories (tests/support/standins.py), with their fates:
# quick builds, built exists already, broken makes the engine fail (503), fail's
# build fails, slow's runs for an hour; nope and nobranch do not exist (404).
KNOWN_SPECS = [
    "octo/quick/main",
    "octo/built/main",
    "octo/broken/main",
    "octo/fail/main",
    "octo/slow/main",
    "octo/nope/main",
    "octo/quick/nobranch",
]
# Ids of real builds, filled in by the `service` fixture before any request is generated.
KNOWN_BUILDS: list[str] = []
# Those among them whose requesters cannot change (they ended, and a new request for
# their image starts a new build): id -> the one user who requested it.
PRIVATE_BUILDS: dict[str, str] = {}

schema = schemathesis.openapi.from_path(
    OPENAPI_FILE,
    config=schemathesis.Config.from_dict(
        {
            "seed": SEED,
            "generation": {
                "mode": "all",
                "max-examples": MAX_EXAMPLES,
                "deterministic": True,
                # credentials are the test's own (CREDENTIALS), never generated ones
                "with-security-parameters": False,
            },
        }
    ),
)


@schema.hook
def flatmap_path_parameters(context, path_parameters):
    """Sometimes a real build's id, or a spec of the stand-in forge, sent as BinderHub
    clients send it: its slashes are path separators."""
    if not path_parameters:
        return st.just(path_parameters)
    known = []
    if "build_id" in path_parameters:
        known = [{**path_parameters, "build_id": b} for b in KNOWN_BUILDS]
    if "spec" in path_parameters:
        known = [{**path_parameters, "provider": "gh", "spec": EncodedPath(s)} for s in KNOWN_SPECS]
    if not known:
        return st.just(path_parameters)
    return st.one_of(st.just(path_parameters), st.sampled_from(known))


@schema.hook
def flatmap_body(context, body):
    """Sometimes a spec of the stand-in forge, in either of BuildRequest's shapes."""
    if not isinstance(body, dict) or "spec" not in body:
        return st.just(body)
    return st.one_of(
        st.just(body),
        st.sampled_from(
            [{"spec": "gh/" + s} for s in KNOWN_SPECS]
            + [{"provider": "gh", "spec": s} for s in KNOWN_SPECS]
        ),
    )


# --- the service --------------------------------------------------------------------


@pytest.fixture(scope="module")
def fakes():
    servers = FakeServers()
    # thousands of requests resolve refs: GitHub's hourly limit must not run out
    servers.forge.rate_limit = servers.forge.rate_remaining = 1_000_000
    servers.start()
    yield servers
    servers.stop()


def wait_for_state(svc, build_id: str, states: set[str], timeout: float = 15) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        r = requests.get(
            f"{svc.url}api/builds/{build_id}", headers=CREDENTIALS["root"], timeout=REQUEST_TIMEOUT
        )
        r.raise_for_status()
        build = r.json()
        if build["state"] in states:
            return build
        assert time.monotonic() < deadline, f"build {build_id} stays {build['state']}, not {states}"
        time.sleep(0.05)


@pytest.fixture(scope="module")
def service(tmp_path_factory, fakes):
    """Auth on against the stand-in hub, as tests/test_openapi.py's `auth_service`,
    with builds in every state to find: ready, failed, running, cancelled."""
    svc = start_service(
        tmp_path_factory.mktemp("schemathesis-service"),
        fakes,
        'c.R2DService.base_url = "/"\n'
        "c.HubOAuth.cache_max_age = 0\n"
        # room for the hour-long builds of "slow*" that requests start and cancel
        "c.BuildManager.concurrent_build_limit = 4\n",
        env={
            "JUPYTERHUB_SERVICE_NAME": "binder",
            "JUPYTERHUB_API_TOKEN": SERVICE_TOKEN,
            "JUPYTERHUB_API_URL": fakes.hub_api_url,
        },
    )
    try:
        KNOWN_BUILDS.clear()
        PRIVATE_BUILDS.clear()
        for who, name, states in [
            ("alice", "quick", {"ready"}),
            ("alice", "fail", {"failed"}),
            ("root", "fail2", {"failed"}),  # fail2 is no KNOWN_SPEC: nobody joins it
            ("root", "slow", {"running"}),
            ("alice", "slow2", {"running"}),
        ]:
            r = requests.post(
                f"{svc.url}api/builds",
                json={"spec": f"gh/octo/{name}/main"},
                headers=CREDENTIALS[who],
                timeout=REQUEST_TIMEOUT,
            )
            assert r.status_code == 201, r.text
            build = wait_for_state(svc, r.json()["id"], states)
            KNOWN_BUILDS.append(build["id"])
            if build["state"] != "running":
                PRIVATE_BUILDS[build["id"]] = who
        r = requests.post(
            f"{svc.url}api/builds/{KNOWN_BUILDS[-1]}/cancel",
            headers=CREDENTIALS["alice"],
            timeout=REQUEST_TIMEOUT,
        )
        assert r.status_code in (200, 202), r.text
        wait_for_state(svc, KNOWN_BUILDS[-1], {"failed", "cancelled"})
        PRIVATE_BUILDS[KNOWN_BUILDS[-1]] = "alice"
        yield svc
    finally:
        KNOWN_BUILDS.clear()
        PRIVATE_BUILDS.clear()
        svc.stop()


# --- checks beyond schemathesis's conformance checks ---------------------------------


def no_internal_error(ctx, response, case):
    """500 never; another 5xx only where the document lists it (status_code_conformance
    checks that with the statuses listed)."""
    assert response.status_code != 500, (
        "500 Internal Server Error: the service log has the traceback"
    )


def answers_quickly(ctx, response, case):
    assert response.elapsed <= MAX_RESPONSE_SECONDS, (
        f"{response.elapsed:.2f}s to the status line, more than {MAX_RESPONSE_SECONDS}s"
    )


def needs_credentials(operation) -> bool:
    security = operation.definition.raw.get("security", schema.raw_schema["security"])
    return bool(security) and {} not in security


def checks_for(who: str):
    def refuses_the_unidentified(ctx, response, case):
        # Not for the coverage phase's malformed requests on purpose (undocumented
        # methods, broken or unsupported content types): 405 or 400 before anyone is asked.
        scenario = getattr(case.meta.phase.data, "scenario", None) if case.meta else None
        if scenario in REQUEST_SHAPE_PROBES:
            return
        if who in REFUSED and needs_credentials(case.operation):
            assert response.status_code == 403, (
                f"{who} (may not use the service) got {response.status_code}; the document says 403"
            )

    def builds_only_with_the_build_scope(ctx, response, case):
        assert who in BUILDERS or response.status_code != 201, (
            f"{who} (no build scope) got 201 Created: a build was started"
        )

    def hides_other_peoples_builds(ctx, response, case):
        owner = PRIVATE_BUILDS.get(case.path_parameters.get("build_id"))
        if who in REFUSED or who in ADMINS or owner is None or owner == who:
            return
        assert response.status_code == 404, (
            f"{who} asked for a build only {owner} requested and got {response.status_code}; "
            "the document says 404 (only admins see everyone's builds)"
        )

    def tells_no_secret(ctx, response, case):
        # The callers' tokens and the service's own: never echoed, in any answer.
        body = response.content
        for secret in SECRETS:
            assert secret.encode() not in body, f"the answer contains the secret {secret!r}"
            assert secret.encode() not in str(response.headers).encode(), (
                f"a header contains the secret {secret!r}"
            )

    return [
        tells_no_secret,
        openapi_checks.status_code_conformance,
        openapi_checks.content_type_conformance,
        openapi_checks.response_schema_conformance,
        openapi_checks.response_headers_conformance,
        openapi_checks.unsupported_method,  # coverage's other methods: 405 with `Allow`
        openapi_checks.allow_header_conformance,
        no_internal_error,
        answers_quickly,
        refuses_the_unidentified,
        builds_only_with_the_build_scope,
        hides_other_peoples_builds,
    ]


STREAMS = {"/build/{provider}/{spec}", "/api/builds/{build_id}/events"}
REQUEST_LOG = os.environ.get("R2D_SCHEMATHESIS_LOG")  # a file to append every request to

HYPOTHESIS_SETTINGS = dict(
    derandomize=True,  # with SEED: the same requests on every run
    deadline=None,  # a request's time is checked by answers_quickly
    database=None,  # no replays of an earlier run's examples
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.filter_too_much,
        HealthCheck.data_too_large,
        HealthCheck.function_scoped_fixture,
    ],
)


def send(service, who: str, case, phase: str = ""):
    """The case with `who`'s credentials; an event stream is read for STREAM_SECONDS."""
    response = case.call(
        base_url=service.url.rstrip("/"),
        headers=CREDENTIALS[who],
        timeout=STREAM_SECONDS if case.operation.path in STREAMS else REQUEST_TIMEOUT,
    )
    if REQUEST_LOG:
        if case.meta:
            phase = f"{case.meta.phase.name.value}/{case.meta.generation.mode.value}"
        with open(REQUEST_LOG, "a") as f:
            f.write(
                f"{phase}\t{who}\t{response.request.method}\t{response.request.url}"
                f"\t{case.body!r}\t{response.status_code}\t{response.elapsed:.3f}"
                f"\t{response.content[:300]!r}\n"
            )
    return response


@pytest.mark.parametrize("who", list(CREDENTIALS))
@schema.parametrize()
@settings(**HYPOTHESIS_SETTINGS)
def test_openapi_conformance(service, who, case):
    """schemathesis's examples, coverage and fuzzing phases, every operation."""
    response = send(service, who, case)
    case.validate_response(response, checks=checks_for(who))


def known_cases():
    """Every stand-in repository through every operation that takes a spec, and every
    real build through every operation that takes an id (cancel last), whatever the
    fuzzing happened to draw."""
    for spec in KNOWN_SPECS:
        yield schema["/api/builds"]["POST"].Case(body={"spec": "gh/" + spec})
        yield schema["/api/builds"]["POST"].Case(body={"provider": "gh", "spec": spec})
        params = {"provider": "gh", "spec": EncodedPath(spec)}
        yield schema["/api/images/{provider}/{spec}"]["GET"].Case(path_parameters=params)
        yield schema["/build/{provider}/{spec}"]["GET"].Case(path_parameters=params)
    for path in (
        "/api/builds/{build_id}",
        "/api/builds/{build_id}/log",
        "/api/builds/{build_id}/events",
    ):
        for build_id in KNOWN_BUILDS:
            yield schema[path]["GET"].Case(path_parameters={"build_id": build_id})
    for build_id in KNOWN_BUILDS:
        yield schema["/api/builds/{build_id}/cancel"]["POST"].Case(
            path_parameters={"build_id": build_id}
        )


def failure_text(e: BaseException) -> str:
    # schemathesis raises a FailureGroup (an exception group) with its report as message
    return getattr(e, "message", None) or str(e)


@pytest.mark.parametrize("who", list(CREDENTIALS))
def test_known_requests_conform(service, who):
    """The same checks on the requests of known_cases(), then on the build history read
    a page at a time following `cursor`; every failure is reported, not the first."""
    failures = []
    for case in known_cases():
        response = send(service, who, case, "known")
        try:
            case.validate_response(response, checks=checks_for(who))
        except (AssertionError, FailureGroup) as e:
            failures.append(failure_text(e))
    cursor = None
    for _page in range(8):
        case = schema["/api/builds"]["GET"].Case(
            query={"limit": 1, **({"cursor": cursor} if cursor else {})}
        )
        response = send(service, who, case, "pages")
        try:
            case.validate_response(response, checks=checks_for(who))
        except (AssertionError, FailureGroup) as e:
            failures.append(failure_text(e))
            break
        if response.status_code != 200:
            break
        cursor = response.json()["cursor"]
        if cursor is None:
            break
    assert not failures, "\n\n".join(failures)


@pytest.mark.parametrize("who", ["alice", "root"])
def test_stateful_links(service, who):
    """schemathesis's state machine follows the document's links: a build created
    (POST /api/builds) is then fetched, streamed, logged and cancelled through its id."""

    class Workflow(schema.as_state_machine()):
        def call(self, case, **kwargs):
            return send(service, who, case, "stateful")

        def validate_response(self, response, case, additional_checks=None, **kwargs):
            case.validate_response(
                response,
                checks=[
                    *checks_for(who),
                    openapi_checks.ensure_resource_availability,
                    openapi_checks.use_after_free,
                ],
                recorder=getattr(self, "recorder", None),
            )

    Workflow.run(settings=settings(max_examples=15, stateful_step_count=6, **HYPOTHESIS_SETTINGS))
