#!/usr/bin/env bash
# Build r2dservice-repo2docker:local, a repo2docker build image for the Kubernetes
# end-to-end test, FROM the local base image that dev/services.sh makes.
#
#   dev/build-image/build.sh            # builds it unless an image of this recipe exists
#   FORCE=1 dev/build-image/build.sh    # rebuild anyway
#
# repo2docker and its dependencies come as wheels made on the host (pip wheel, which
# uses the host's pip configuration and CA bundle); inside the image they install with
# --no-index. The docker CLI and the buildx plugin are the host's (they need only libc).
#
# Environment: BASE_IMAGE (r2dservice-base:bookworm), IMAGE (r2dservice-repo2docker:local),
# PYTHON (python3), R2D_VERSION (default: the repo2docker installed for PYTHON),
# R2DSERVICE_DEV_STATE (/var/lib/r2dservice-dev; wheels are cached there).
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
BASE_IMAGE=${BASE_IMAGE:-r2dservice-base:bookworm}
IMAGE=${IMAGE:-r2dservice-repo2docker:local}
PYTHON=${PYTHON:-python3}
STATE=${R2DSERVICE_DEV_STATE:-/var/lib/r2dservice-dev}
R2D_VERSION=${R2D_VERSION:-$("$PYTHON" -c 'import importlib.metadata as m; print(m.version("jupyter-repo2docker"))')}

log() { printf '[build-image] %s\n' "$*" >&2; }
die() { printf '[build-image] ERROR: %s\n' "$*" >&2; exit 1; }

docker image inspect "$BASE_IMAGE" >/dev/null 2>&1 || die "base image $BASE_IMAGE missing: run dev/services.sh first"

find_buildx() {
    local d
    for d in /usr/local/lib/docker/cli-plugins /usr/local/libexec/docker/cli-plugins \
             /usr/lib/docker/cli-plugins /usr/libexec/docker/cli-plugins "$HOME/.docker/cli-plugins"; do
        if [ -x "$d/docker-buildx" ]; then echo "$d/docker-buildx"; return; fi
    done
    return 1
}
DOCKER_BIN=$(command -v docker) || die "no docker CLI on PATH"
BUILDX_BIN=$(find_buildx) || die "no docker-buildx plugin found (dev/services.sh installs one)"

# The image is rebuilt when any input changes: this recipe, repo2docker's version,
# the base image, the CLI binaries.
RECIPE=$(cat "$HERE/Dockerfile" "$HERE/entrypoint" "$HERE/git-credential-env" \
         <(echo "$R2D_VERSION") <(docker image inspect -f '{{.Id}}' "$BASE_IMAGE") \
         "$DOCKER_BIN" "$BUILDX_BIN" | sha256sum | cut -c1-16)
if [ -z "${FORCE:-}" ] && [ "$(docker image inspect -f '{{index .Config.Labels "org.r2dservice.recipe"}}' "$IMAGE" 2>/dev/null)" = "$RECIPE" ]; then
    log "$IMAGE is up to date (recipe $RECIPE)"
    exit 0
fi

WHEELS="$STATE/downloads/repo2docker-wheels-$R2D_VERSION"
if [ ! -e "$WHEELS/.complete" ]; then
    log "making wheels of jupyter-repo2docker==$R2D_VERSION and its dependencies in $WHEELS"
    rm -rf "$WHEELS"
    mkdir -p "$WHEELS"
    # (the grep drops pip's notes about this machine's absent local index folders)
    "$PYTHON" -m pip wheel --quiet --wheel-dir "$WHEELS" "jupyter-repo2docker==$R2D_VERSION" \
        2> >(grep -v "is ignored: it is neither a file nor a directory" >&2)
    touch "$WHEELS/.complete"
fi

CONTEXT=$(mktemp -d)
trap 'rm -rf "$CONTEXT"' EXIT
cp "$HERE/Dockerfile" "$HERE/entrypoint" "$HERE/git-credential-env" "$CONTEXT/"
cp "$DOCKER_BIN" "$CONTEXT/docker"
cp "$BUILDX_BIN" "$CONTEXT/docker-buildx"
mkdir "$CONTEXT/wheels"
cp "$WHEELS"/*.whl "$CONTEXT/wheels/"

log "building $IMAGE from $BASE_IMAGE (repo2docker $R2D_VERSION, recipe $RECIPE)"
docker build --quiet --build-arg "BASE_IMAGE=$BASE_IMAGE" \
    --label "org.r2dservice.recipe=$RECIPE" -t "$IMAGE" "$CONTEXT" >/dev/null

# Smoke test: the pieces a build pod needs.
docker run --rm --entrypoint /bin/sh "$IMAGE" -c \
    'jupyter-repo2docker --version && docker --version && docker buildx version && git --version' >&2
log "$IMAGE ready"
