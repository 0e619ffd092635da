"""bench/sleepers.py is the sleep10 scenario's ceiling: it must count sleeps that happened, at
no more than the threads' theoretical rate and not far below it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from bench.sleepers import SLEEP_S, measure

pytestmark = pytest.mark.timeout(30)

ROOT = Path(__file__).resolve().parents[2]


def test_rate_is_what_the_threads_can_sleep():
    rate = measure(0.5, threads=4)
    theoretical = 4 / SLEEP_S
    # Every sleep overshoots a little, so the rate stays under 400/s; a loaded machine's timers
    # still wake 4 threads within a few ms of their 10.
    assert theoretical * 0.5 < rate <= theoretical


def test_command_line_prints_the_rate_as_json():
    out = subprocess.run([sys.executable, "-m", "bench.sleepers", "0.3"], cwd=ROOT,
                         capture_output=True, text=True, timeout=20, check=True)
    result = json.loads(out.stdout)
    assert result["threads"] == 32 and result["theoretical"] == 3200
    assert 0 < result["rate"] <= 3200
