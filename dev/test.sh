#!/usr/bin/env bash
# The test command (README, CI): start the services the suite needs, then run pytest.
# Extra arguments go to pytest, e.g. `dev/test.sh -k sse -x` or `dev/test.sh tests/infra`.
# pytest runs in the virtual environment dev/services.sh makes (<state>/venv, from the
# system's python3 or $PYTHON); the system Python is never installed into.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

STATE=${R2DSERVICE_DEV_STATE:-/var/lib/r2dservice-dev}
# Stop well inside CI's 90 minutes, so a hung test still ends with pytest's own report.
TEST_TIMEOUT=${R2DSERVICE_TEST_TIMEOUT:-4500}

bash dev/services.sh
# shellcheck source=/dev/null
. "$STATE/env.sh"
# The venv's bin folder first on PATH, as if activated: `python3`, `repo2docker` and the
# other console scripts that tests and helper scripts start are the venv's.
export PATH="${R2D_PYTHON%/*}:$PATH"
# The pages' front-end files from npm (pinned; a no-op when already built).
bash dev/build-static.sh

# The whole suite, unless the arguments name test files or folders themselves.
targets=(tests)
for arg in "$@"; do
    if [ -e "${arg%%::*}" ]; then targets=(); break; fi
done

# pytest's exit code 5 means "no tests collected": for CI that is a failure, not a pass.
rc=0
timeout --foreground --signal=INT --kill-after=60 "$TEST_TIMEOUT" \
    "$R2D_PYTHON" -m pytest "${targets[@]}" -v -ra --durations=20 "$@" || rc=$?
case "$rc" in
    5) echo "dev/test.sh: pytest collected no tests; failing" >&2; exit 1 ;;
    124) echo "dev/test.sh: the test run passed its ${TEST_TIMEOUT}s limit" >&2; exit 1 ;;
esac
exit "$rc"
