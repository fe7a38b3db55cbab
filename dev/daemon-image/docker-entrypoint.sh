#!/bin/sh
# The official image's CLI entrypoint, in short: `docker ...` commands get DOCKER_HOST
# (the local socket if there is one, else tcp://docker:2375 as a compose service).
set -eu
if [ "${1#-}" != "$1" ] || docker help "$1" >/dev/null 2>&1; then
    set -- docker "$@"
fi
if [ -z "${DOCKER_HOST:-}" ] && [ ! -S /var/run/docker.sock ]; then
    export DOCKER_HOST=tcp://docker:2375
fi
exec "$@"
