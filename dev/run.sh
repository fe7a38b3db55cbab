#!/usr/bin/env bash
# The README's run command: a real JupyterHub (sqlite, configurable-http-proxy, demo users)
# with r2dservice as the hub-managed service `binder`, building with the local repo2docker
# builder and pushing to the local registry on 127.0.0.1:5000. Prints the URL to open and
# how to log in; Ctrl-C stops the hub, and the hub stops r2dservice.
#
# Safe to run again: dev/services.sh installs and starts only what is missing (Docker,
# the registry, the base image, configurable-http-proxy, this package in the virtual
# environment $R2DSERVICE_DEV_STATE/venv), and the hub's state (database, cookie secret,
# demo passwords) is kept in $R2DSERVICE_DEV_STATE/demo-hub. The hub and r2dservice run
# with the venv's Python; the system Python is never installed into.
#
# Environment (defaults in brackets):
#   R2D_HUB_PORT           the hub's port on 127.0.0.1 [8000]
#   R2D_SERVICE_NAME       the service's name [binder]
#   R2DSERVICE_DEV_STATE   state folder [/var/lib/r2dservice-dev]
#   PYTHON                 the Python the venv is made from [python3]
#   R2DSERVICE_PYTHON      the Python that runs r2dservice [the venv's]
set -euo pipefail
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
STATE=${R2DSERVICE_DEV_STATE:-/var/lib/r2dservice-dev}
HUB_STATE=$STATE/demo-hub
export R2D_HUB_STATE=$HUB_STATE
export R2D_HUB_IP=127.0.0.1
export R2D_HUB_PORT=${R2D_HUB_PORT:-8000}
export R2D_HUB_API_PORT=${R2D_HUB_API_PORT:-8081}
export R2D_PROXY_API_PORT=${R2D_PROXY_API_PORT:-8001}
export R2D_SERVICE_PORT=${R2D_SERVICE_PORT:-8585}
export R2D_SERVICE_NAME=${R2D_SERVICE_NAME:-binder}
GIT_PORT=${R2D_DEMO_GIT_PORT:-9418}

log() { printf '[run] %s\n' "$*" >&2; }
die() { printf '[run] ERROR: %s\n' "$*" >&2; exit 1; }

bash "$REPO/dev/services.sh"
# shellcheck source=/dev/null
. "$STATE/env.sh"
# The venv's Python (R2D_PYTHON, from env.sh) runs the hub and the service; its bin folder
# comes first on PATH, as if activated.
PY=$R2D_PYTHON
export PATH="${R2D_PYTHON%/*}:$PATH"
export R2DSERVICE_PYTHON=${R2DSERVICE_PYTHON:-$R2D_PYTHON}
mkdir -p "$HUB_STATE"

# Ports in use stop the hub halfway with a less clear message: say it first. (A hub killed
# with SIGKILL leaves its proxy behind; the hub itself stops a proxy named in its pid file.)
for port in "$R2D_HUB_PORT" "$R2D_HUB_API_PORT" "$R2D_SERVICE_PORT"; do
    if "$PY" -c 'import socket,sys; s=socket.socket(); s.settimeout(1); sys.exit(s.connect_ex(("127.0.0.1", int(sys.argv[1]))) != 0)' "$port"; then
        die "127.0.0.1:$port is in use (see: ss -ltnp 'sport = :$port'); stop that process or set R2D_HUB_PORT / R2D_HUB_API_PORT / R2D_SERVICE_PORT"
    fi
done

# Demo passwords: made once, kept readable by root only.
if [ ! -s "$HUB_STATE/passwords.env" ]; then
    (umask 077 && "$PY" -c 'import secrets
print("R2D_DEMO_USER_PASSWORD=demo-" + secrets.token_hex(4))
print("R2D_DEMO_ADMIN_PASSWORD=" + secrets.token_hex(16))' >"$HUB_STATE/passwords.env")
fi
set -a
# shellcheck source=/dev/null
. "$HUB_STATE/passwords.env"
set +a

# A repository to build offline: a Dockerfile on the local base image, served by git daemon.
REPOS=$HUB_STATE/repos
if [ ! -d "$REPOS/demo/.git" ]; then
    mkdir -p "$REPOS/demo"
    printf 'FROM %s\nRUN echo "built by r2dservice" > /built-by-r2dservice.txt\n' "$R2D_BASE_IMAGE" >"$REPOS/demo/Dockerfile"
    git -C "$REPOS/demo" init -q --initial-branch main
    git -C "$REPOS/demo" add Dockerfile
    git -C "$REPOS/demo" -c user.name=r2dservice -c user.email=demo@localhost commit -q -m "demo repository"
fi
# Launch: users' servers are containers of the images built (R2DDockerSpawner), and they
# reach the hub at the Docker bridge's gateway. Without one, the demo builds images only.
R2D_DEMO_HUB_CONNECT_IP=$("$PY" "$REPO/dev/bridge-gateway.py" 2>/dev/null || true)
export R2D_DEMO_HUB_CONNECT_IP
# A repository whose image runs a notebook server: JupyterHub's singleuser server (the
# hub's version) from PyPI on the local base image. Its first build takes a few minutes.
if [ -n "$R2D_DEMO_HUB_CONNECT_IP" ] && [ ! -d "$REPOS/notebook/.git" ]; then
    mkdir -p "$REPOS/notebook"
    # pip inside the build trusts what pip trusts here
    cp "${R2D_TEST_CA_BUNDLE:-/etc/ssl/certs/ca-certificates.crt}" "$REPOS/notebook/ca-bundle.crt"
    JUPYTERHUB_VERSION=$("$PY" -c 'import jupyterhub; print(jupyterhub.__version__)')
    cat >"$REPOS/notebook/Dockerfile" <<DOCKERFILE
FROM $R2D_BASE_IMAGE
COPY ca-bundle.crt /etc/r2d-demo-ca-bundle.crt
ENV PIP_CERT=/etc/r2d-demo-ca-bundle.crt PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
RUN apt-get update \\
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends python3-venv \\
 && rm -rf /var/lib/apt/lists/*
RUN python3 -m venv /opt/venv \\
 && /opt/venv/bin/pip install "jupyterhub==$JUPYTERHUB_VERSION" jupyter_server
RUN useradd --create-home --uid 1000 jovyan \\
 && echo "print('built by r2dservice')" > /home/jovyan/hello.py
ENV PATH=/opt/venv/bin:\$PATH
USER 1000
WORKDIR /home/jovyan
CMD ["jupyterhub-singleuser"]
DOCKERFILE
    git -C "$REPOS/notebook" init -q --initial-branch main
    git -C "$REPOS/notebook" add Dockerfile ca-bundle.crt
    git -C "$REPOS/notebook" -c user.name=r2dservice -c user.email=demo@localhost commit -q -m "notebook repository"
fi
GIT_PIDFILE=$HUB_STATE/git-daemon.pid
if [ -s "$GIT_PIDFILE" ] && kill -0 "$(cat "$GIT_PIDFILE")" 2>/dev/null &&
    grep -q git-daemon "/proc/$(cat "$GIT_PIDFILE")/cmdline" 2>/dev/null; then
    kill "$(cat "$GIT_PIDFILE")" || true   # ours, from a run that was killed
    sleep 0.5
fi
git daemon --reuseaddr --export-all --base-path="$REPOS" --listen=127.0.0.1 --port="$GIT_PORT" \
    --pid-file="$GIT_PIDFILE" 2>>"$HUB_STATE/git-daemon.log" &
GIT_PID=$!
# `git daemon` runs git-daemon as its child, whose own pid is in the pid file; started
# with & by a script, both ignore Ctrl-C's SIGINT: stop them on the way out.
stop_git_daemon() {
    kill "$GIT_PID" 2>/dev/null || true
    [ -s "$GIT_PIDFILE" ] && kill "$(cat "$GIT_PIDFILE")" 2>/dev/null || true
}
trap stop_git_daemon EXIT
trap 'exit 130' INT TERM

URL="http://127.0.0.1:$R2D_HUB_PORT/services/$R2D_SERVICE_NAME/"
cat >&2 <<EOF

==========================================================================================
 r2dservice on JupyterHub: open  $URL
 Log in as
   alice  (may build)                          password: $R2D_DEMO_USER_PASSWORD
   bob    (gets existing images, no builds)    password: $R2D_DEMO_USER_PASSWORD
   admin  (sees and cancels every build)       password: $R2D_DEMO_ADMIN_PASSWORD
 Then build the demo repository (served by git daemon on 127.0.0.1:$GIT_PORT):
   git/git%3A%2F%2F127.0.0.1%3A$GIT_PORT%2Fdemo/main
$(if [ -n "$R2D_DEMO_HUB_CONNECT_IP" ]; then
    printf ' Build and launch a notebook server (as alice; the first build takes minutes):\n'
    printf '   git/git%%3A%%2F%%2F127.0.0.1%%3A%s%%2Fnotebook/main  -> "Build and launch"\n' "$GIT_PORT"
else
    printf ' (No Docker bridge gateway found: images only, no launch.)\n'
fi)
 From a script, with a token from http://127.0.0.1:$R2D_HUB_PORT/hub/token :
   curl -N -H "Authorization: Bearer <token>" \\
     '${URL}build/git/git%3A%2F%2F127.0.0.1%3A$GIT_PORT%2Fdemo/main?build_only=true'
 Hub state: $HUB_STATE (delete it to start over). Ctrl-C stops everything.
==========================================================================================

EOF
cd "$HUB_STATE"
"$PY" -m jupyterhub -f "$REPO/dev/jupyterhub_config.py"
