"""The request fuzz test with many more examples than CI runs.

    .venv/bin/python -m bench.fuzz_long [--examples 20000] [--seeded]

Runs tests/test_fuzz.py under pytest with FUZZ_EXAMPLES raised (and its timeout scaled).  By
default the search is random, so each run explores new inputs; --seeded keeps CI's derandomized
sequence.  Exit status is pytest's.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--examples", type=int, default=20000)
    ap.add_argument("--seeded", action="store_true", help="derandomized, as in CI")
    args = ap.parse_args()
    env = dict(os.environ, FUZZ_EXAMPLES=str(args.examples),
               FUZZ_TIMEOUT=str(max(120, args.examples // 10)))
    if not args.seeded:
        env["FUZZ_RANDOM"] = "1"
    return subprocess.call([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                            "--hypothesis-show-statistics", "tests/test_fuzz.py"],
                           cwd=ROOT, env=env)


if __name__ == "__main__":
    sys.exit(main())
