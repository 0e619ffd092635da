"""The ceiling of the sleep10 scenario: its threads sleeping, with no server at all.

32 threads each call ``time.sleep(0.010)`` in a loop, as the sleep10 app does per request. Each
sleep overshoots by the kernel's timer slack and wakeup latency, so even with nothing else to do
they complete fewer than the theoretical 3200 per second; no server whose app sleeps 10 ms on 32
threads can serve more requests per second than these manage on the same CPU.

    python -m bench.sleepers 4    # seconds; prints {"rate": sleeps per second, ...} as JSON
"""

from __future__ import annotations

import json
import sys
import threading
import time

THREADS = 32
SLEEP_S = 0.010


def measure(seconds: float, threads: int = THREADS) -> float:
    """Completed sleeps per second, counted over ``seconds`` once every thread is running."""
    counts = [0] * threads
    start = threading.Barrier(threads + 1)
    stop = threading.Event()

    def sleeper(i: int) -> None:
        start.wait()
        while not stop.is_set():
            time.sleep(SLEEP_S)
            counts[i] += 1

    pool = [threading.Thread(target=sleeper, args=(i,), daemon=True) for i in range(threads)]
    for t in pool:
        t.start()
    start.wait()
    began = time.monotonic()
    time.sleep(seconds)
    done = sum(counts)
    elapsed = time.monotonic() - began
    stop.set()
    for t in pool:
        t.join()
    return done / elapsed


if __name__ == "__main__":
    seconds = float(sys.argv[1]) if len(sys.argv) > 1 else 4.0
    rate = measure(seconds)
    print(json.dumps({"rate": rate, "threads": THREADS, "sleep_s": SLEEP_S,
                      "theoretical": THREADS / SLEEP_S}))
