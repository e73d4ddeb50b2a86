"""`make bench`: every benchmark of the project, figures printed side by side.

Medians of repeated runs, alternated between the things compared, because this machine is
shared and noisy. Not part of `make test`.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main() -> int:
    failed = []
    for script in (
        "bench_pipeline.py",
        "bench_netpol.py",
        "bench_verdict.py",
        "bench_team.py",
        "bench_capacity.py",
        "bench_peers.py",
    ):
        path = HERE / script
        if not path.exists():
            continue
        print(f"\n=== {script}", flush=True)
        if subprocess.run([sys.executable, str(path)], cwd=HERE.parent).returncode != 0:
            failed.append(script)
    if failed:
        print(f"\nfailed: {', '.join(failed)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
