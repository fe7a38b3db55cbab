#!/usr/bin/env bash
# Build the stand-in for the chart's dind build daemon image on the local engine, FROM
# the local Debian base that dev/services.sh makes, with Debian's dockerd (docker.io),
# and tag it as the chart names the dind image (build.daemon.image in values.yaml), so
# the rendered DaemonSet runs unchanged. Nothing can be pulled from Docker Hub here.
#
#   dev/daemon-image/build.sh            # builds it unless an image of this recipe exists
#   FORCE=1 dev/daemon-image/build.sh    # rebuild anyway
#
# Environment: BASE_IMAGE (r2dservice-base:bookworm), IMAGE (default: the chart's dind
# image, read from chart/r2dservice: values.yaml's build.daemon.image.name and the
# default tag in templates/_helpers.tpl).
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
CHART="$HERE/../../chart/r2dservice"
BASE_IMAGE=${BASE_IMAGE:-r2dservice-base:bookworm}

log() { printf '[daemon-image] %s\n' "$*" >&2; }
die() { printf '[daemon-image] ERROR: %s\n' "$*" >&2; exit 1; }

chart_image() {
    # name: the first "name:" under "daemon:" > "image:" in values.yaml
    local name tag
    name=$(awk '/^  daemon:/ { d = 1 } d && /^    image:/ { i = 1 } i && /^      name:/ { print $2; exit }' \
        "$CHART/values.yaml")
    # tag: the dind default in the daemonImage helper ("<tag>-dind-rootless" "<tag>-dind")
    tag=$(grep -o 'ternary "[^"]*-dind-rootless" "[^"]*-dind"' "$CHART/templates/_helpers.tpl" \
        | sed 's/.* "\([^"]*\)"$/\1/')
    [ -n "$name" ] && [ -n "$tag" ] || die "cannot read the dind image from $CHART"
    echo "$name:$tag"
}
IMAGE=${IMAGE:-$(chart_image)}

docker image inspect "$BASE_IMAGE" >/dev/null 2>&1 || die "base image $BASE_IMAGE missing: run dev/services.sh first"

RECIPE=$(cat "$HERE/Dockerfile" "$HERE/dockerd-entrypoint.sh" "$HERE/docker-entrypoint.sh" \
         <(docker image inspect -f '{{.Id}}' "$BASE_IMAGE") | sha256sum | cut -c1-16)
if [ -z "${FORCE:-}" ] && [ "$(docker image inspect -f '{{index .Config.Labels "org.r2dservice.recipe"}}' "$IMAGE" 2>/dev/null)" = "$RECIPE" ]; then
    log "$IMAGE is up to date (recipe $RECIPE)"
    exit 0
fi
# Never shadow the real image: a docker:* made elsewhere (pulled) has no recipe label.
if docker image inspect "$IMAGE" >/dev/null 2>&1 &&
    [ -z "$(docker image inspect -f '{{index .Config.Labels "org.r2dservice.recipe"}}' "$IMAGE")" ]; then
    die "$IMAGE exists and was not made by this script: not replacing it"
fi

log "building $IMAGE from $BASE_IMAGE (Debian's dockerd, recipe $RECIPE)"
CONTEXT=$(mktemp -d)
trap 'rm -rf "$CONTEXT"' EXIT
cp "$HERE/Dockerfile" "$HERE/dockerd-entrypoint.sh" "$HERE/docker-entrypoint.sh" "$CONTEXT/"
if ! docker build --build-arg "BASE_IMAGE=$BASE_IMAGE" \
    --label "org.r2dservice.recipe=$RECIPE" -t "$IMAGE" "$CONTEXT" > "$CONTEXT/build.log" 2>&1; then
    tail -40 "$CONTEXT/build.log" >&2
    die "docker build failed"
fi
docker run --rm --entrypoint /bin/sh "$IMAGE" -c 'dockerd --version && docker --version' >&2
log "$IMAGE ready"
