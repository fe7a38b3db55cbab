#!/bin/sh
# The build daemon's image cleaner (as BinderHub's): when the disk that holds the
# daemon's data is fuller than DISK_HIGH percent, prune the build cache, then remove
# images, oldest first, until it is down to DISK_LOW. Images that a container uses
# cannot be removed and are skipped. Runs beside dockerd, with its socket (DOCKER_HOST)
# and its data folder (DOCKER_DATA, for df).
set -u
: "${DOCKER_DATA:?}" "${DISK_HIGH:=80}" "${DISK_LOW:=60}" "${INTERVAL:=300}"

usage() {
    # percent used of the file system DOCKER_DATA is on
    df -P "$DOCKER_DATA" | awk 'NR == 2 { sub("%", "", $5); print $5 }'
}

clean() {
    used=$(usage)
    [ "$used" -ge "$DISK_HIGH" ] || return 0
    echo "image-cleaner: disk ${used}% used (>= ${DISK_HIGH}%): pruning the build cache"
    docker builder prune --all --force >/dev/null
    used=$(usage)
    # "<created> <id>" sorts oldest first (docker prints ISO-like times)
    docker image ls --all --format '{{.CreatedAt}}|{{.ID}}' | sort | cut -d'|' -f2 | uniq |
    while read -r id; do
        [ "$used" -ge "$DISK_LOW" ] || break
        if docker image rm --force --no-prune "$id" >/dev/null 2>&1; then
            echo "image-cleaner: removed image $id"
        fi
        used=$(usage)
    done
    docker image prune --force >/dev/null
    echo "image-cleaner: disk $(usage)% used"
}

while true; do
    clean
    [ "${ONCE:-}" ] && exit 0
    sleep "$INTERVAL"
done
