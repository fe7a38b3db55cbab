#!/bin/sh
# What the official docker:dind image's dockerd-entrypoint.sh does with its arguments,
# for the stand-in image (Debian's dockerd). Kept to the same rules on purpose, the
# unkind ones included, so that a chart that passes the wrong arguments fails here too:
#
# - no arguments, or a first argument that is an option (`--host=...`): dockerd gets
#   default listeners *before* those arguments: the default unix socket
#   (/var/run/docker.sock for root, $XDG_RUNTIME_DIR/docker.sock otherwise, or
#   DOCKER_HOST if that is unix://) and a TCP one on 0.0.0.0 -- with TLS on 2376 when
#   DOCKER_TLS_CERTDIR names a folder (certificates made there), else *unauthenticated*
#   on 2375;
# - a first argument `dockerd`: exactly those arguments, no default listener;
# - for dockerd: stale pid files removed, docker-init as pid 1, legacy iptables when the
#   node's netfilter already has legacy tables, for a non-root uid the error of the dind
#   variant (no rootlesskit),
#   and on cgroup v2 its own cgroup namespace;
# - anything else runs through docker-entrypoint.sh (the CLI's DOCKER_HOST default).
set -eu

make_certs() {
    dir=$1
    days=825
    if [ -s "$dir/ca/key.pem" ] || [ ! -s "$dir/ca/cert.pem" ]; then
        mkdir -p "$dir/ca"
        [ -s "$dir/ca/key.pem" ] || openssl genrsa -out "$dir/ca/key.pem" 4096
        openssl req -new -x509 -key "$dir/ca/key.pem" -out "$dir/ca/cert.pem" \
            -subj '/CN=docker:dind CA' -days "$days"
    fi
    [ -s "$dir/ca/key.pem" ] || return 0
    for side in server client; do
        mkdir -p "$dir/$side"
        [ -s "$dir/$side/key.pem" ] || openssl genrsa -out "$dir/$side/key.pem" 4096
        openssl req -new -key "$dir/$side/key.pem" -out "$dir/$side/csr.pem" -subj "/CN=docker:dind $side"
        if [ "$side" = server ]; then
            sans=$( { ip -oneline address | awk '{ sub(/\/.*/, "", $4); print "IP:" $4 }'
                      for n in "$(cat /etc/hostname)" docker localhost "$(hostname -f)" "$(hostname -s)"; do echo "DNS:$n"; done
                      [ -z "${DOCKER_TLS_SAN:-}" ] || echo "$DOCKER_TLS_SAN"; } | sort -u | paste -sd, -)
            printf '[ x509_exts ]\nsubjectAltName = %s\n' "$sans" > "$dir/$side/openssl.cnf"
        else
            chmod 0644 "$dir/$side/key.pem"  # shared with any client
            printf '[ x509_exts ]\nextendedKeyUsage = clientAuth\n' > "$dir/$side/openssl.cnf"
        fi
        openssl x509 -req -in "$dir/$side/csr.pem" -CA "$dir/ca/cert.pem" -CAkey "$dir/ca/key.pem" \
            -CAcreateserial -out "$dir/$side/cert.pem" -days "$days" \
            -extfile "$dir/$side/openssl.cnf" -extensions x509_exts
        cp "$dir/ca/cert.pem" "$dir/$side/ca.pem"
        openssl verify -CAfile "$dir/$side/ca.pem" "$dir/$side/cert.pem"
    done
}

has_legacy_tables() {
    for f in /proc/net/ip_tables_names /proc/net/ip6_tables_names /proc/net/arp_tables_names; do
        [ -n "$(cat "$f" 2>/dev/null)" ] && return 0
    done
    return 1
}

if [ "$#" -eq 0 ] || [ "${1#-}" != "$1" ]; then
    uid=$(id -u)
    if [ "$uid" = 0 ]; then
        socket=unix:///var/run/docker.sock
    else
        socket="unix://${XDG_RUNTIME_DIR:-/run/user/$uid}/docker.sock"
    fi
    case "${DOCKER_HOST:-}" in unix://*) socket=$DOCKER_HOST ;; esac
    if [ -n "${DOCKER_TLS_CERTDIR:-}" ]; then
        make_certs "$DOCKER_TLS_CERTDIR"
        set -- dockerd --host="$socket" --host=tcp://0.0.0.0:2376 --tlsverify \
            --tlscacert "$DOCKER_TLS_CERTDIR/server/ca.pem" \
            --tlscert "$DOCKER_TLS_CERTDIR/server/cert.pem" \
            --tlskey "$DOCKER_TLS_CERTDIR/server/key.pem" "$@"
    else
        # DOCKER_TLS_CERTDIR="": the API on TCP without any authentication.
        set -- dockerd --host="$socket" --host=tcp://0.0.0.0:2375 "$@"
    fi
fi

if [ "$1" != dockerd ]; then
    exec docker-entrypoint.sh "$@"
fi

find /run /var/run -iname 'docker*.pid' -delete || :
set -- docker-init -- "$@"

legacy=
if [ -n "${DOCKER_IPTABLES_LEGACY+x}" ]; then
    legacy=$DOCKER_IPTABLES_LEGACY
elif has_legacy_tables; then
    legacy=1
fi
[ -z "$legacy" ] || PATH="/usr/local/sbin/.iptables-legacy:$PATH"
export PATH
iptables --version

if [ "$(id -u)" != 0 ]; then
    # The dind variant has no rootlesskit: as the official image says.
    if ! command -v rootlesskit >/dev/null; then
        echo >&2 "error: attempting to run rootless dockerd but missing 'rootlesskit' (perhaps the 'docker:dind-rootless' image variant is intended?)"
        exit 1
    fi
fi

# cgroup v2: dockerd's containers under this container's cgroup, not the node's root.
if [ -f /sys/fs/cgroup/cgroup.controllers ] && [ "$(sed -n 's/^0:://p' /proc/self/cgroup)" != / ]; then
    remount='opts=$(grep " /sys/fs/cgroup cgroup2 " /proc/self/mounts | tail -n1 | cut -d" " -f4)
             umount /sys/fs/cgroup && mount -t cgroup2 -o "$opts" cgroup2 /sys/fs/cgroup && exec "$@"'
    if unshare --cgroup --mount sh -ec "$remount" sh true 2>/dev/null; then
        set -- unshare --cgroup --mount sh -ec "$remount" sh "$@"
    else
        echo >&2 'warning: unable to create a cgroup namespace; containers will be created outside of the cgroup of this container'
    fi
fi

exec "$@"
