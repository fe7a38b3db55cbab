#!/usr/bin/env bash
# Third-party front-end code of the web pages, from npm, pinned: share/r2dservice/js/
# package.json + package-lock.json (exact versions, integrity hashes). `npm ci` installs
# them into share/r2dservice/js/node_modules/, then the files the pages load are copied to
# share/r2dservice/static/vendor/ (not in git; served under <prefix>static/vendor/).
# Nothing is loaded from a CDN at run time. Idempotent: with node_modules matching the
# lock file already, it only copies. Run it before `pip install .` or building a package,
# and before the browser tests (tests/test_pages.py runs it when vendor/ is missing).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../share/r2dservice"

JS=js
VENDOR=static/vendor
STAMP="$JS/node_modules/.r2dservice-lock"

# npm ci wipes node_modules; skip it when the installed tree came from this very lock file.
if ! cmp -s "$JS/package-lock.json" "$STAMP" 2>/dev/null; then
    (cd "$JS" && npm ci --no-audit --no-fund --loglevel=error)
    cp "$JS/package-lock.json" "$STAMP"
fi

# copy <from> <to>, only when different (mtimes stay, so browser caches stay valid).
# The source map comment names a file that is not shipped: left out of the copy.
copy() {
    mkdir -p "$(dirname "$2")"
    sed '/^\/\/# sourceMappingURL=/d' "$1" > "$2.tmp"
    if cmp -s "$2.tmp" "$2"; then rm "$2.tmp"; else mv "$2.tmp" "$2"; fi
}
copy "$JS/node_modules/@xterm/xterm/lib/xterm.mjs" "$VENDOR/xterm/xterm.mjs"
copy "$JS/node_modules/@xterm/xterm/css/xterm.css" "$VENDOR/xterm/xterm.css"
copy "$JS/node_modules/@xterm/xterm/LICENSE" "$VENDOR/xterm/LICENSE"
copy "$JS/node_modules/@xterm/addon-fit/lib/addon-fit.mjs" "$VENDOR/xterm/addon-fit.mjs"
copy "$JS/node_modules/@xterm/addon-fit/LICENSE" "$VENDOR/xterm/LICENSE.addon-fit"
echo "dev/build-static.sh: $VENDOR is up to date"
