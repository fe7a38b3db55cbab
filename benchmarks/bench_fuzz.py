"""Fuzzing at scale (issue 12): schemathesis over r2dservice/openapi.yaml against a real
service with auth on (tests/test_schemathesis.py, with more examples than CI's run),
and Hypothesis over spec parsing, naming and redaction (tests/test_spec_properties.py,
tests/test_spec.py). Every request is checked as in CI: no 500, no undocumented 5xx, status,
content type, body and headers as documented, no secret in any answer, refusals and
privacy as documented.

    bash benchmarks/run.sh fuzz                  # about 10,000 requests
    python -m benchmarks.bench_fuzz --examples 50   # CI's amount

Reported: requests sent (by phase and status class), answers that failed a check
(pytest's failures), generated spec/redaction examples.
"""

from __future__ import annotations

import argparse
import collections
import os
import subprocess
import sys
import tempfile
import time


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--examples", type=int, default=160, help="per operation and credential")
    args = p.parse_args()
    with tempfile.TemporaryDirectory(prefix="r2d-bench-fuzz-") as tmp:
        log = os.path.join(tmp, "requests.tsv")
        env = {**os.environ, "R2D_SCHEMATHESIS_LOG": log, "R2D_FUZZ_EXAMPLES": str(args.examples)}
        env["PYTHONPATH"] = os.getcwd() + os.pathsep + env.get("PYTHONPATH", "")
        t0 = time.monotonic()
        run = subprocess.run(
            [
                sys.executable,
                "-m",
                "pytest",
                "-q",
                "-p",
                "no:cacheprovider",
                "tests/test_schemathesis.py",
                "tests/test_spec.py",  # redaction's properties among its tests
                "tests/test_spec_properties.py",
            ],
            env=env,
            capture_output=True,
            text=True,
        )
        took = time.monotonic() - t0
        phases, statuses = collections.Counter(), collections.Counter()
        total = 0
        if os.path.exists(log):
            with open(log) as f:
                for line in f:
                    fields = line.split("\t")
                    if len(fields) < 6:
                        continue
                    total += 1
                    phases[fields[0].split("/")[0] or "known"] += 1
                    statuses[f"{fields[5][0]}xx"] += 1
    summary = run.stdout.strip().splitlines()[-1] if run.stdout.strip() else run.stderr[-500:]
    print(f"\nfuzzing: {total} requests to a real service, auth on, in {took:.0f} s")
    print("  by phase:  " + ", ".join(f"{k} {v}" for k, v in sorted(phases.items())))
    print("  by status: " + ", ".join(f"{k} {v}" for k, v in sorted(statuses.items())))
    print(f"  5xx: {statuses.get('5xx', 0)} (each one documented, else a failure below)")
    print(f"  pytest (every check on every answer, and the spec property tests): {summary}")
    if run.returncode != 0:
        print(run.stdout[-6000:])
    ok = run.returncode == 0 and total >= 10_000
    print(f"target (>= 10,000 requests, no failed check): {'met' if ok else 'NOT met'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
