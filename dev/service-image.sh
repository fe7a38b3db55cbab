#!/usr/bin/env bash
# Build the r2dservice image (the repository's Dockerfile) on a machine whose builds
# cannot reach PyPI: the wheels of r2dservice and its dependencies are made on the host
# (pip wheel, with the host's pip configuration), put in a small image, and handed to
# the Dockerfile as --build-arg WHEELS; the base is the local Debian image.
#
#   dev/service-image.sh            # builds unless an image of this recipe exists
#   FORCE=1 dev/service-image.sh
#
# Environment: IMAGE (r2dservice:local), BASE_IMAGE (r2dservice-base:bookworm, made by
# dev/services.sh), PYTHON (python3; its X.Y must be the base image's python3, for the
# compiled wheels), R2DSERVICE_DEV_STATE (/var/lib/r2dservice-dev; wheels cached there).
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
IMAGE=${IMAGE:-r2dservice:local}
BASE_IMAGE=${BASE_IMAGE:-r2dservice-base:bookworm}
PYTHON=${PYTHON:-python3}
STATE=${R2DSERVICE_DEV_STATE:-/var/lib/r2dservice-dev}

log() { printf '[service-image] %s\n' "$*" >&2; }
die() { printf '[service-image] ERROR: %s\n' "$*" >&2; exit 1; }

docker image inspect "$BASE_IMAGE" >/dev/null 2>&1 || die "base image $BASE_IMAGE missing: run dev/services.sh first"
host_py=$("$PYTHON" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
image_py=$(docker run --rm --entrypoint /bin/sh "$BASE_IMAGE" -c \
    'python3 -c "import sys; print(\"%d.%d\" % sys.version_info[:2])" 2>/dev/null || echo debian')
if [ "$image_py" = debian ]; then
    # A minimal Debian: the Dockerfile installs its python3 (bookworm: 3.11).
    image_py=$(docker run --rm --entrypoint /bin/sh "$BASE_IMAGE" -c '. /etc/os-release; echo $VERSION_CODENAME')
    case "$image_py" in bookworm) image_py=3.11 ;; trixie) image_py=3.13 ;; *) die "unknown Debian $image_py" ;; esac
fi
[ "$host_py" = "$image_py" ] || die "$PYTHON is Python $host_py, the image's is $image_py: set PYTHON to a $image_py"

# Dependencies change with setup.py only: their wheels are cached by its hash.
DEPS_KEY=$(cat "$REPO/setup.py" <(echo "$host_py") | sha256sum | cut -c1-16)
DEPS="$STATE/downloads/service-wheels-$DEPS_KEY"
if [ ! -e "$DEPS/.complete" ]; then
    log "making wheels of r2dservice's dependencies in $DEPS"
    rm -rf "$DEPS"
    mkdir -p "$DEPS"
    "$PYTHON" -m pip wheel --quiet --wheel-dir "$DEPS" "$REPO" \
        2> >(grep -v "is ignored: it is neither a file nor a directory" >&2)
    rm -f "$DEPS"/r2dservice-*.whl
    touch "$DEPS/.complete"
fi

CONTEXT=$(mktemp -d)
trap 'rm -rf "$CONTEXT"' EXIT
mkdir "$CONTEXT/wheels"
cp "$DEPS"/*.whl "$CONTEXT/wheels/"
# r2dservice's own wheel, from this tree (only the files .dockerignore lets through
# would matter, and those are what setup.py packages).
"$PYTHON" -m pip wheel --quiet --no-deps --wheel-dir "$CONTEXT/wheels" "$REPO" \
    2> >(grep -v "is ignored: it is neither a file nor a directory" >&2)
rm -rf "$REPO/build"

RECIPE=$( (cd "$CONTEXT/wheels" && sha256sum ./*.whl | sed 's/ .*//' | sort) \
    | cat - "$REPO/Dockerfile" <(docker image inspect -f '{{.Id}}' "$BASE_IMAGE") | sha256sum | cut -c1-16)
if [ -z "${FORCE:-}" ] && [ "$(docker image inspect -f '{{index .Config.Labels "org.r2dservice.recipe"}}' "$IMAGE" 2>/dev/null)" = "$RECIPE" ]; then
    log "$IMAGE is up to date (recipe $RECIPE)"
    exit 0
fi

WHEELS_IMAGE="r2dservice-wheels:$RECIPE"
printf 'FROM scratch\nCOPY wheels /wheels\n' > "$CONTEXT/Dockerfile"
DOCKER_BUILDKIT=1 docker build --quiet -t "$WHEELS_IMAGE" "$CONTEXT" >/dev/null

log "building $IMAGE from $BASE_IMAGE (recipe $RECIPE)"
if ! DOCKER_BUILDKIT=1 docker build --progress=plain \
    --build-arg "BASE_IMAGE=$BASE_IMAGE" --build-arg "WHEELS=$WHEELS_IMAGE" \
    --label "org.r2dservice.recipe=$RECIPE" -t "$IMAGE" "$REPO" > "$CONTEXT/build.log" 2>&1; then
    tail -40 "$CONTEXT/build.log" >&2
    docker image rm "$WHEELS_IMAGE" >/dev/null 2>&1 || true
    die "docker build failed"
fi
docker image rm "$WHEELS_IMAGE" >/dev/null
log "$IMAGE ready"
