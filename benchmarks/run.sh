#!/usr/bin/env bash
# One command for all benchmarks: start the services they need, then run each.
#   bash benchmarks/run.sh            # everything
#   bash benchmarks/run.sh local      # only the local-builder benchmarks (issue 2)
#   bash benchmarks/run.sh crowd      # 2,000 viewers over 20 builds, then of one (issue 12)
#   bash benchmarks/run.sh abuse      # one user floods, another builds (issue 12)
#   bash benchmarks/run.sh warm       # only the warm rebuild benchmark (issue 12)
#   bash benchmarks/run.sh fuzz       # about 10,000 fuzzed requests, auth on (issue 12)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
STATE=${R2DSERVICE_DEV_STATE:-/var/lib/r2dservice-dev}
bash dev/services.sh >/dev/null
# shellcheck source=/dev/null
. "$STATE/env.sh"
# The venv dev/services.sh made (never the system Python), its bin folder first on PATH.
PYTHON=$R2D_PYTHON
export PATH="${R2D_PYTHON%/*}:$PATH"
what=${1:-all}
if [ "$what" = all ] || [ "$what" = local ]; then
    "$PYTHON" -m benchmarks.bench_local "${@:2}"
fi
if { [ "$what" = all ] || [ "$what" = kubernetes ]; } && [ -f benchmarks/bench_kubernetes.py ]; then
    "$PYTHON" -m benchmarks.bench_kubernetes
fi
if [ "$what" = all ] || [ "$what" = abuse ]; then
    "$PYTHON" -m benchmarks.bench_abuse "${@:2}"
fi
if [ "$what" = all ] || [ "$what" = warm ]; then
    "$PYTHON" -m benchmarks.bench_warm "${@:2}"
fi
if [ "$what" = all ] || [ "$what" = crowd ]; then
    "$PYTHON" -m benchmarks.bench_crowd "${@:2}"
fi
if [ "$what" = all ] || [ "$what" = fuzz ]; then
    "$PYTHON" -m benchmarks.bench_fuzz "${@:2}"
fi
if [ "$what" = all ] || [ "$what" = spawner ]; then
    "$PYTHON" -m benchmarks.bench_spawner "${@:2}"
fi
