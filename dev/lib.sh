# shellcheck shell=bash
# Shared by dev/services.sh and dev/fresh-debian.sh (source it; it defines functions only).

# debian_archive: print the URL of the Debian archive this machine's apt uses for its own
# release, without a trailing slash (never hard-coded in this repository). The variable
# R2DSERVICE_DEBIAN_ARCHIVE overrides it. Prints an error and returns 1 when no apt
# source names this release.
debian_archive() {
    if [ -n "${R2DSERVICE_DEBIAN_ARCHIVE:-}" ]; then
        echo "${R2DSERVICE_DEBIAN_ARCHIVE%/}"
        return
    fi
    local codename url=""
    # shellcheck source=/dev/null
    codename=$(. /etc/os-release && echo "$VERSION_CODENAME")
    # One-line format: "deb [options] URI SUITE COMPONENTS..."
    if [ -f /etc/apt/sources.list ] || compgen -G '/etc/apt/sources.list.d/*.list' >/dev/null; then
        url=$(cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null |
            sed -e 's/#.*//' -e 's/\[[^]]*\]//' |
            awk -v cn="$codename" '$1 == "deb" && $3 == cn && !done { print $2; done = 1 }')
    fi
    # deb822 format (*.sources): stanzas of "Key: value" lines, blank-line separated.
    if [ -z "$url" ] && compgen -G '/etc/apt/sources.list.d/*.sources' >/dev/null; then
        url=$(cat /etc/apt/sources.list.d/*.sources | awk -v cn="$codename" '
            function flush() {
                if (!done && types ~ /(^| )deb( |$)/ && (" " suites " ") ~ (" " cn " ") &&
                    tolower(enabled) != "no" && uris != "") {
                    split(uris, u, " "); print u[1]; done = 1
                }
                types = uris = suites = enabled = key = ""
            }
            /^#/ { next }
            /^[ \t]*$/ { flush(); next }
            /^[ \t]/ { if (key == "uris") uris = uris " " $0; if (key == "suites") suites = suites " " $0; next }
            {
                key = tolower(substr($0, 1, index($0, ":") - 1))
                val = substr($0, index($0, ":") + 1)
                gsub(/^[ \t]+|[ \t]+$/, "", val)
                if (key == "types") types = val
                else if (key == "uris") uris = val
                else if (key == "suites") suites = val
                else if (key == "enabled") enabled = val
            }
            END { flush() }')
    fi
    if [ -z "$url" ]; then
        printf 'ERROR: no apt source for %s found in /etc/apt/sources.list{,.d/}; set R2DSERVICE_DEBIAN_ARCHIVE\n' \
            "'$codename'" >&2
        return 1
    fi
    echo "${url%/}"
}
