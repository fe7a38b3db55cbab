"""The host's address on Docker's default bridge, as the demo finds it (dev/bridge-gateway.py):
where spawned containers and pods reach servers of the tests."""

from __future__ import annotations

import os
import subprocess
import sys

from tests.support.service import REPO


def bridge_gateway() -> str:
    out = subprocess.run(
        [sys.executable, os.path.join(REPO, "dev", "bridge-gateway.py")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    if out.returncode:
        raise RuntimeError(out.stderr.strip())
    return out.stdout.strip()
