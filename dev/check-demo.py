"""Check the demo hub of `dev/run.sh` as a user would: log in as alice, take a token,
build and launch the demo's notebook repository through the hub, and open the server.

    python3 dev/check-demo.py [hub URL] [passwords.env]

Only the standard library: it runs with any Python 3, in or out of the venv. Exit 0 when
the server of the built image answers; otherwise 1 and what went wrong.
"""

from __future__ import annotations

import http.cookiejar
import json
import os
import re
import sys
import time
import urllib.parse
import urllib.request

HUB = sys.argv[1] if len(sys.argv) > 1 else "http://127.0.0.1:8000"
STATE = os.environ.get("R2DSERVICE_DEV_STATE", "/var/lib/r2dservice-dev")
PASSWORDS = sys.argv[2] if len(sys.argv) > 2 else f"{STATE}/demo-hub/passwords.env"
GIT_PORT = os.environ.get("R2D_DEMO_GIT_PORT", "9418")
SPEC = "git/" + urllib.parse.quote(f"git://127.0.0.1:{GIT_PORT}/notebook", safe="") + "/main"


def password() -> str:
    with open(PASSWORDS) as f:
        for line in f:
            if line.startswith("R2D_DEMO_USER_PASSWORD="):
                return line.split("=", 1)[1].strip()
    sys.exit(f"no R2D_DEMO_USER_PASSWORD in {PASSWORDS}")


def token_for_alice() -> str:
    jar = http.cookiejar.CookieJar()
    web = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
    page = web.open(f"{HUB}/hub/login").read().decode()
    xsrf = re.search(r'name="_xsrf" value="([^"]+)"', page).group(1)
    form = {"username": "alice", "password": password(), "_xsrf": xsrf}
    web.open(f"{HUB}/hub/login", urllib.parse.urlencode(form).encode())
    cookie = next(c.value for c in jar if c.name == "_xsrf")
    made = web.open(
        urllib.request.Request(
            f"{HUB}/hub/api/users/alice/tokens",
            data=json.dumps({"note": "dev/check-demo.py", "expires_in": 3600}).encode(),
            headers={"X-XSRFToken": cookie, "Content-Type": "application/json"},
        )
    )
    return json.load(made)["token"]


def build_and_launch(token: str) -> dict:
    """The event stream without build_only: build, then launch in alice's server."""
    stream = urllib.request.urlopen(
        urllib.request.Request(
            f"{HUB}/services/binder/build/{SPEC}",
            headers={"Authorization": f"Bearer {token}", "Accept": "text/event-stream"},
        ),
        timeout=900,
    )
    t0 = time.monotonic()
    phase = ""
    for raw in stream:
        line = raw.decode().strip()
        if not line.startswith("data:"):
            continue
        event = json.loads(line[5:])
        if event["phase"] != phase:
            phase = event["phase"]
            print(f"[check-demo {time.monotonic() - t0:5.0f}s] {phase}: {event['message'].strip()}")
        if phase in ("ready", "failed"):
            return event
    return {"phase": "failed", "message": "the stream ended without ready or failed"}


def main() -> int:
    token = token_for_alice()
    last = build_and_launch(token)
    if last["phase"] != "ready" or not last.get("url"):
        print(f"[check-demo] FAILED: {last.get('message', last)}")
        return 1
    status = urllib.request.urlopen(
        urllib.request.Request(
            last["url"] + "api/status", headers={"Authorization": f"token {token}"}
        ),
        timeout=60,
    )
    print(f"[check-demo] {last['url']}api/status answered {status.status}")
    return 0 if status.status == 200 else 1


if __name__ == "__main__":
    sys.exit(main())
