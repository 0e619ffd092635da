"""Instructions per request under valgrind's cachegrind: what pathcost's and h2pathcost's
``--instructions`` print.

A bench module's hidden ``--feed`` mode serves 500 requests to warm up and then ``n`` more; the
count for n = 2500 less the count for n = 500, over 2000, is the cost of one request, with
interpreter startup, imports and the warm-up cancelled out.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Callable, Mapping

LOW, HIGH = 500, 2500


def per_request(feed_args: Callable[[int], list[str]], env: Mapping[str, str] | None = None) -> int:
    """Instructions per request of ``python <feed_args(n)>``, from two runs under cachegrind."""
    environ = dict(os.environ, **(env or {}))
    # A fixed hash seed: string hashes decide dict probing, which moved counts by 1-2%.
    environ["PYTHONHASHSEED"] = "0"
    # Once outside valgrind first: bytecode compiled on the first run would count in it.
    subprocess.run([sys.executable, *feed_args(10)], check=True, capture_output=True, env=environ)
    counts = []
    for n in (LOW, HIGH):
        cmd = ["valgrind", "--tool=cachegrind", "--cache-sim=no", "--cachegrind-out-file=/dev/null",
               sys.executable, *feed_args(n)]
        out = subprocess.run(cmd, capture_output=True, text=True, check=True, env=environ).stderr
        match = re.search(r"I\s+refs:\s+([\d,]+)", out)
        if match is None:
            raise RuntimeError(f"no instruction count from valgrind:\n{out[-500:]}")
        counts.append(int(match.group(1).replace(",", "")))
    return (counts[1] - counts[0]) // (HIGH - LOW)
