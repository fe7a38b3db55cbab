#!/usr/bin/env bash
# The README's two commands on a fresh, plain Debian 12, checked for real (CI runs this
# after dev/test.sh; see .ci/run):
#
#   bash dev/fresh-debian.sh                        # the whole check (15-30 min)
#   bash dev/fresh-debian.sh tests/test_spec.py     # quicker: arguments go to the inner dev/test.sh
#   bash dev/fresh-debian.sh --run-only             # quicker: only dev/run.sh and its health check
#
# What it does, as root on the host (which needs the Docker engine, debootstrap and git;
# dev/services.sh installs them when missing):
#   1. an image of plain Debian 12: `debootstrap --variant=minbase bookworm` from the Debian
#      archive the host's apt uses, plus what a plain Debian 12 has and minbase lacks that
#      matters here: its system python3 (externally managed, no pip, no venv module) and
#      ca-certificates. No pip, no Node.js, no Docker. The host's CA bundle goes into the
#      image's trust store (HTTPS from here may pass a local CA); nothing else of the host
#      does: no pip configuration, no wheels, no environment variables. Cached as
#      r2dservice-fresh-debian:bookworm, made again when its recipe or the CA bundle changes;
#   2. a fresh `git clone` of this checkout's HEAD (committed work only, no state);
#   3. a --privileged container of that image with its own network namespace (Docker's
#      bridge, no published ports) and a volume for /var/lib/docker (the Docker engine
#      inside it cannot put overlay2 on the container's overlay root). Where the host
#      itself lacks a capability, runc refuses --privileged; then the container gets the
#      same powers piece by piece (see below);
#   4. inside it, as the README says: `bash dev/run.sh` in the background until
#      http://127.0.0.1:8000/services/binder/health answers 200 (or 15 minutes pass), then
#      `dev/check-demo.py` (alice builds and launches the demo notebook through the hub),
#      then stops it; then `bash dev/test.sh` (the whole suite unless arguments say otherwise);
#   5. removes the container and its volume (also on failure or Ctrl-C), prints the
#      timings and pytest's summary line, and exits non-zero when either command failed.
#
# Environment:
#   R2DSERVICE_FRESH_IMAGE         the image's tag [r2dservice-fresh-debian:bookworm]
#   R2DSERVICE_FRESH_RUN_TIMEOUT   seconds dev/run.sh has to answer the health check [900]
#   R2DSERVICE_FRESH_TEST_TIMEOUT  the inner dev/test.sh's time limit in seconds [2400]
#   R2DSERVICE_FRESH_KEEP=1        leave the container running for a look inside
#   R2DSERVICE_DEBIAN_ARCHIVE      the Debian archive (default: from the host's apt sources)
# Inside the container R2DSERVICE_IN_FRESH_CHECK=1 is set; this script refuses to run
# where it is set, so a check never starts another one inside itself.

# All of it in one { } block: bash reads a script as it runs, and an edit made meanwhile
# (a git pull, say) would otherwise run half of each version.
{
set -euo pipefail
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
IMAGE=${R2DSERVICE_FRESH_IMAGE:-r2dservice-fresh-debian:bookworm}
RUN_TIMEOUT=${R2DSERVICE_FRESH_RUN_TIMEOUT:-900}
TEST_TIMEOUT=${R2DSERVICE_FRESH_TEST_TIMEOUT:-2400}
# Bump when the recipe of the image changes, so a cached image is made again.
RECIPE=1
HOST_CA=/etc/ssl/certs/ca-certificates.crt
HEALTH_URL=http://127.0.0.1:8000/services/binder/health

STARTED=$SECONDS
log() { printf '[fresh-debian %4ss] %s\n' "$((SECONDS - STARTED))" "$*" >&2; }
die() { printf '[fresh-debian] ERROR: %s\n' "$*" >&2; exit 1; }

if [ -n "${R2DSERVICE_IN_FRESH_CHECK:-}" ]; then
    log "R2DSERVICE_IN_FRESH_CHECK is set: already inside a fresh-Debian check; not starting another"
    exit 0
fi
[ "$(id -u)" = 0 ] || die "run me as root (debootstrap and docker need it)"
# shellcheck source=dev/lib.sh
. "$REPO/dev/lib.sh"

run_only=""
if [ "${1:-}" = --run-only ]; then
    run_only=1
    shift
fi

if ! { command -v debootstrap && command -v git && timeout 10 docker info; } >/dev/null 2>&1; then
    log "the host lacks debootstrap, git or a running Docker engine: dev/services.sh"
    bash "$REPO/dev/services.sh" >/dev/null
fi
[ -s "$HOST_CA" ] || die "$HOST_CA is missing"

# ---------------------------------------------------------------- 1. the image
make_image() {
    local ca_sha want have
    ca_sha=$(sha256sum "$HOST_CA" | cut -d' ' -f1)
    want="$RECIPE-$ca_sha"
    have=$(docker image inspect -f '{{ index .Config.Labels "org.r2dservice.fresh-recipe" }}' "$IMAGE" 2>/dev/null || true)
    if [ "$have" = "$want" ]; then
        log "image: $IMAGE present"
        return
    fi
    local archive tmp rootfs
    archive=$(debian_archive)
    tmp=$(mktemp -d /var/tmp/r2dservice-fresh-image.XXXXXX)
    rootfs=$tmp/rootfs
    log "image: debootstrap --variant=minbase bookworm (+ python3, ca-certificates) from $archive"
    if ! debootstrap --variant=minbase --include=python3,ca-certificates bookworm "$rootfs" "$archive" \
        >"$tmp/debootstrap.log" 2>&1; then
        tail -n 30 "$tmp/debootstrap.log" >&2
        rm -rf "$tmp"
        die "debootstrap failed; log above"
    fi
    # The host's CA bundle as a local CA file: update-ca-certificates adds it to the
    # bundle (and keeps it when apt upgrades ca-certificates later).
    cp "$HOST_CA" "$rootfs/usr/local/share/ca-certificates/host-ca-bundle.crt"
    chroot "$rootfs" update-ca-certificates >/dev/null 2>&1 || die "update-ca-certificates failed in the image"
    rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*
    tar --numeric-owner -C "$rootfs" -c . |
        docker import \
            --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
            --change 'CMD ["/bin/bash"]' \
            --change "LABEL org.r2dservice.fresh-recipe=$want" \
            - "$IMAGE" >/dev/null
    rm -rf "$tmp"
    log "image: $IMAGE imported"
}

# ---------------------------------------------------------------- 4. what runs inside
# Written to /root/fresh-check.sh inside the container and run there with stdin closed
# (as a script on stdin, whatever reads stdin below would eat the rest of it).
# shellcheck disable=SC2016
INNER='
set -uo pipefail
RUN_TIMEOUT=$1 HEALTH_URL=$2 RUN_ONLY=$3
shift 3
T0=$SECONDS
say() { printf "[inside %4ss] %s\n" "$((SECONDS - T0))" "$*"; }
health() {
    python3 -c "import sys, urllib.request as u; sys.exit(u.urlopen(sys.argv[1], timeout=5).status != 200)" "$HEALTH_URL" 2>/dev/null
}
cd /root/r2dservice
say "python3: $(python3 --version 2>&1) at $(command -v python3); pip: $(python3 -m pip --version 2>&1 | head -n1)"
say "node: $(command -v node || echo none); docker: $(command -v docker || echo none)"

say "bash dev/run.sh (in the background), until $HEALTH_URL answers 200"
setsid bash -c "bash dev/run.sh 2>&1 | sed -u \"s/^/  run.sh | /\"" </dev/null &
RUN_PGID=$!
up=""
while [ $((SECONDS - T0)) -lt "$RUN_TIMEOUT" ]; do
    if health; then up=1; break; fi
    kill -0 "$RUN_PGID" 2>/dev/null || break
    sleep 3
done
RUN_TOOK=$((SECONDS - T0))
launched=""
if [ -n "$up" ]; then
    say "dev/run.sh: the hub answers 200 on $HEALTH_URL after ${RUN_TOOK}s"
    # What the banner tells a newcomer to try: alice builds and launches the notebook
    # repository through the hub, and its server answers.
    T_LAUNCH=$SECONDS
    if timeout 900 python3 dev/check-demo.py; then
        launched=1
        say "dev/check-demo.py: built, launched and opened in $((SECONDS - T_LAUNCH))s"
    else
        say "FAILED: dev/check-demo.py could not build and launch the demo notebook"
    fi
else
    say "FAILED: dev/run.sh did not bring up $HEALTH_URL within ${RUN_TOOK}s (limit ${RUN_TIMEOUT}s)"
fi
# Stop the hub (it stops r2dservice and its proxy); dockerd and the registry keep running
# in their own sessions, for dev/test.sh.
group() {  # the live processes of the group: "pid command" lines (no ps in minbase)
    local f st
    for f in /proc/[0-9]*/stat; do
        st=$(cat "$f" 2>/dev/null) || continue
        set -- ${st##*) }
        [ "$4" = "$RUN_PGID" ] && [ "$1" != Z ] && echo "${f//[!0-9]/} $(tr "\0" " " <"${f%stat}cmdline" | cut -c1-150)"
    done
}
T_STOP=$SECONDS
kill -TERM -- "-$RUN_PGID" 2>/dev/null
for i in $(seq 60); do
    [ -n "$(group)" ] || break
    [ "$i" != 10 ] || { say "still running 5s after SIGTERM:"; group; }
    sleep 0.5
done
if [ -n "$(group)" ]; then
    say "still running 30s after SIGTERM, killing:"; group
    kill -KILL -- "-$RUN_PGID" 2>/dev/null
fi
wait "$RUN_PGID" 2>/dev/null
[ -n "$up" ] || exit 10
[ -n "$launched" ] || exit 11
say "dev/run.sh stopped ($((SECONDS - T_STOP))s after SIGTERM)"
[ -z "$RUN_ONLY" ] || exit 0

say "bash dev/test.sh $*"
T1=$SECONDS
bash dev/test.sh "$@" 2>&1 | tee /root/test.log
rc=${PIPESTATUS[0]}
say "dev/test.sh: exit $rc after $((SECONDS - T1))s"
exit "$rc"
'

# host_missing_caps: the capabilities (names as docker spells them) missing from this
# process's bounding set, of those docker knows (0..40).
host_missing_caps() {
    local names=(CHOWN DAC_OVERRIDE DAC_READ_SEARCH FOWNER FSETID KILL SETGID SETUID SETPCAP
        LINUX_IMMUTABLE NET_BIND_SERVICE NET_BROADCAST NET_ADMIN NET_RAW IPC_LOCK IPC_OWNER
        SYS_MODULE SYS_RAWIO SYS_CHROOT SYS_PTRACE SYS_PACCT SYS_ADMIN SYS_BOOT SYS_NICE
        SYS_RESOURCE SYS_TIME SYS_TTY_CONFIG MKNOD LEASE AUDIT_WRITE AUDIT_CONTROL SETFCAP
        MAC_OVERRIDE MAC_ADMIN SYSLOG WAKE_ALARM BLOCK_SUSPEND AUDIT_READ PERFMON BPF
        CHECKPOINT_RESTORE)
    local bnd i
    bnd=$((16#$(awk '/^CapBnd:/ { print $2 }' /proc/self/status)))
    for i in "${!names[@]}"; do
        (((bnd >> i) & 1)) || echo "${names[$i]}"
    done
}

# ---------------------------------------------------------------- main
NAME=r2dservice-fresh-$$
VOLUME=$NAME-docker
SRC=""
cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    if [ -n "${R2DSERVICE_FRESH_KEEP:-}" ]; then
        log "keeping container $NAME (volume $VOLUME): docker exec -it $NAME bash; remove with: docker rm -f $NAME && docker volume rm $VOLUME"
    else
        docker rm -f "$NAME" >/dev/null 2>&1 || true
        docker volume rm "$VOLUME" >/dev/null 2>&1 || true
    fi
    [ -z "$SRC" ] || rm -rf "$SRC"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# What a check killed with its machine left behind: stopped containers, unused volumes.
# (A running check's container runs and holds its volume; `docker run` makes a volume
# again should one go between its `volume create` and its `run`.)
stale=$(docker ps -aq --filter label=org.r2dservice.fresh-check --filter status=exited --filter status=created)
[ -z "$stale" ] || { log "removing stopped containers of earlier checks"; docker rm -f $stale >/dev/null; }
stale=$(docker volume ls -q --filter label=org.r2dservice.fresh-check --filter dangling=true)
[ -z "$stale" ] || { log "removing volumes of earlier checks"; docker volume rm $stale >/dev/null; }

make_image
T_IMAGE=$SECONDS

# 2. A fresh clone of HEAD: committed work only, none of the working tree's state.
SRC=$(mktemp -d /var/tmp/r2dservice-fresh-src.XXXXXX)
git clone --quiet --no-hardlinks "$REPO" "$SRC/r2dservice"
git -C "$SRC/r2dservice" remote remove origin
COMMIT=$(git -C "$SRC/r2dservice" rev-parse --short HEAD)
log "source: a fresh clone of HEAD ($COMMIT)"

# 3. The container: privileged (it runs dockerd), its own network namespace on Docker's
# bridge, no published ports, /var/lib/docker on a volume.
docker volume create --label org.r2dservice.fresh-check "$VOLUME" >/dev/null
# --init: a PID 1 that reaps orphans, as on a real machine (`sleep` would leave zombies).
container_args=(--name "$NAME" --hostname fresh-debian --init -v "$VOLUME:/var/lib/docker"
    --label org.r2dservice.fresh-check -e R2DSERVICE_IN_FRESH_CHECK=1)
if ! docker run -d --privileged "${container_args[@]}" "$IMAGE" sleep infinity >/dev/null 2>"$SRC/run.err"; then
    # Where the host's own capability bounding set lacks a capability (a VM or container
    # that drops CAP_SYS_RESOURCE, say), runc cannot give a --privileged container all of
    # them ("unable to apply caps"). Then: every capability the host has, no seccomp or
    # AppArmor profile, all devices, /proc unmasked, and /sys and the cgroup hierarchies
    # made writable inside, which is what --privileged gives and dockerd needs.
    grep -q 'unable to apply caps' "$SRC/run.err" || { cat "$SRC/run.err" >&2; die "docker run failed"; }
    docker rm -f "$NAME" >/dev/null 2>&1 || true
    missing=$(host_missing_caps | tr '\n' ' ')
    drop=()
    for cap in $missing; do drop+=(--cap-drop "$cap"); done
    log "container: --privileged is refused here (the host lacks ${missing% }); granting the rest one by one"
    docker run -d --cap-add ALL "${drop[@]}" \
        --security-opt seccomp=unconfined --security-opt apparmor=unconfined \
        --security-opt systempaths=unconfined --device-cgroup-rule 'a *:* rwm' \
        "${container_args[@]}" "$IMAGE" sleep infinity >/dev/null
    docker exec "$NAME" sh -c 'mount -o remount,rw /sys &&
        for d in /sys/fs/cgroup/*; do mount -o remount,bind,rw "$d"; done'
fi
tar -C "$SRC" -c r2dservice | docker exec -i "$NAME" tar -x -C /root
log "container: $NAME started, source copied in"

T_IN=$SECONDS
printf '%s' "$INNER" | docker exec -i "$NAME" sh -c 'cat >/root/fresh-check.sh'
rc=0
docker exec -e R2DSERVICE_TEST_TIMEOUT="$TEST_TIMEOUT" "$NAME" \
    bash /root/fresh-check.sh "$RUN_TIMEOUT" "$HEALTH_URL" "$run_only" "$@" </dev/null || rc=$?
T_END=$SECONDS

summary=""
if [ -z "$run_only" ] && [ "$rc" != 10 ] && [ "$rc" != 11 ]; then
    summary=$(docker exec "$NAME" sh -c 'tail -n 200 /root/test.log 2>/dev/null' |
        grep -E '^=+ .*[0-9]+ (passed|failed|errors?|skipped).* in [0-9.]+s' | tail -n1 || true)
fi
log "timings: image ${T_IMAGE}s, clone and container $((T_IN - T_IMAGE))s, inside $((T_END - T_IN))s, total ${T_END}s"
[ -z "$summary" ] || log "inner pytest: $summary"
case "$rc" in
    0) if [ -n "$run_only" ]; then
           log "PASSED: dev/run.sh brought up a healthy hub on fresh Debian 12 ($COMMIT; --run-only: no tests)"
       else
           log "PASSED: dev/run.sh brought up a healthy hub and dev/test.sh $* passed on fresh Debian 12 ($COMMIT)"
       fi ;;
    10) log "FAILED: dev/run.sh did not bring up a healthy hub on fresh Debian 12 ($COMMIT)" ;;
    11) log "FAILED: the demo hub of dev/run.sh did not build and launch its notebook on fresh Debian 12 ($COMMIT)" ;;
    *) log "FAILED: dev/test.sh exited $rc on fresh Debian 12 ($COMMIT)" ;;
esac
exit "$rc"
}
