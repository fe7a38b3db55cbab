# The r2dservice image: the service, git (to resolve refs of plain git repositories) and,
# with --build-arg DOCKER_CLI=with-docker-cli, the docker CLI and buildx plugin that the
# local builder's repo2docker drives. Runs as uid 1000 and writes only to /tmp and the
# build records' folder, so the chart's readOnlyRootFilesystem holds.
#
#   docker build -t r2dservice .                        # wheels from PyPI
#   docker build --build-arg DOCKER_CLI=with-docker-cli -t r2dservice:local-builder .
#
# Run dev/build-static.sh first: the pages' vendored JavaScript is part of the package.
# Where PyPI cannot be reached from a build, hand over an image whose /wheels holds
# r2dservice's wheel and its dependencies: --build-arg WHEELS=<that image>
# (dev/service-image.sh does this for the tests).
ARG BASE_IMAGE=python:3.12-slim-bookworm
ARG WHEELS=wheels-from-pypi
ARG DOCKER_CLI=no-docker-cli
ARG DOCKER_CLI_IMAGE=docker:28-cli

FROM ${BASE_IMAGE} AS base
# python3 with venv comes from the base image (python:*-slim) or from Debian (a plain
# Debian base, whose python3 may lack venv).
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
        git ca-certificates tini \
        $(python3 -c 'import ensurepip, venv' 2>/dev/null || echo python3 python3-venv) \
 && rm -rf /var/lib/apt/lists/*

# --- the wheels: r2dservice and its dependencies ---------------------------------------
FROM base AS wheels-from-pypi
COPY . /src
RUN python3 -m pip wheel --no-cache-dir --wheel-dir /wheels /src

FROM ${WHEELS} AS wheels

# --- the docker CLI for the local builder (optional) -----------------------------------
FROM base AS no-docker-cli
RUN mkdir -p /out

FROM ${DOCKER_CLI_IMAGE} AS docker-cli-image

FROM base AS with-docker-cli
COPY --from=docker-cli-image /usr/local/bin/docker /out/bin/docker
COPY --from=docker-cli-image /usr/local/libexec/docker/cli-plugins/docker-buildx /out/libexec/docker/cli-plugins/docker-buildx

FROM ${DOCKER_CLI} AS docker-cli

# --- the image ---------------------------------------------------------------------------
FROM base
COPY --from=wheels /wheels /tmp/wheels
RUN python3 -m venv /opt/r2dservice \
 && /opt/r2dservice/bin/pip install --no-cache-dir --no-index --find-links /tmp/wheels r2dservice \
 && rm -rf /tmp/wheels
COPY --from=docker-cli /out/ /usr/local/

RUN useradd --uid 1000 --user-group --home-dir /home/r2dservice --create-home r2dservice \
 && mkdir -p /srv/r2dservice \
 && chown 1000:1000 /srv/r2dservice
# For a read-only root file system: no .pyc files at run time; git's and docker's
# per-user state in /tmp (an emptyDir in the chart).
ENV PATH=/opt/r2dservice/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    HOME=/tmp \
    DOCKER_CONFIG=/tmp/.docker
WORKDIR /srv/r2dservice
USER 1000:1000
EXPOSE 8585
# tini reaps the git and repo2docker processes the service starts and forwards signals.
ENTRYPOINT ["tini", "--"]
CMD ["r2dservice"]
