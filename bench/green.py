"""The seeds' command line for sleepy apps, gunicorn's ``-k gevent --worker-connections 1000``,
run by unicorn_aio with one worker: 300 concurrent requests that each sleep 1 s.

gevent serves them in about 1 s; a worker with one thread would take 300 s.  unicorn_aio has no
monkey-patching: the class means an elastic thread pool (wsgi/threadpool.py), which starts a
thread whenever a request finds every thread busy, up to --worker-connections.  Reported:

- wall time from the first request sent to the last response read (target: 4 s or less);
- the worker's RSS per extra thread: its RSS with every request in its app call, less its RSS
  before, less what the same 300 requests in flight cost a worker with one thread (connections,
  parsed requests waiting in the queue), divided by the threads the pool added;
- the worker's threads and RSS once the extra threads have gone idle and exited.

    .venv/bin/python -m bench.green              # or: make bench-green
    .venv/bin/python -m bench.green --requests 500 --sleep 2

Results: bench/results/green.json and green.md.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import json
import os
import platform
import subprocess
import time
from pathlib import Path

from bench.serverproc import ServerProcess

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
SEED_ARGS = ["-w", "1", "-k", "gevent", "--worker-connections", "1000"]
BASELINE_ARGS = ["-w", "1", "-k", "sync", "--worker-connections", "1000",  # one app thread
                 "--graceful-timeout", "1"]


def sleepy(environ, start_response):
    """The seeds' sleepy app: waits on "I/O" for ?S seconds (1 by default)."""
    time.sleep(float(environ.get("QUERY_STRING") or 1))
    body = b"slept\n"
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]


# -- the server ---------------------------------------------------------------------------------

def _children(pid: int) -> list[int]:
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            return [int(p) for p in f.read().split()]
    except FileNotFoundError:
        return []


def _rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for {pid}")


def _threads(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/task"))


class Server(ServerProcess):
    def __init__(self, args: list[str], log_path: Path) -> None:
        super().__init__("bench.green:sleepy", args, log_path)
        self.worker = 0

    def wait_ready(self, timeout: float = 20) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited: {self.log_path.read_text()}")
            workers = _children(self.proc.pid)
            if workers:
                try:
                    asyncio.run(_requests(self.port, 1, 0))
                    self.worker = workers[0]
                    return
                except OSError:
                    pass
            time.sleep(0.1)
        raise RuntimeError(f"server not ready in {timeout} s: {self.log_path.read_text()}")


# -- the client ---------------------------------------------------------------------------------

async def _one(port: int, seconds: float) -> int:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(b"GET /?%s HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n"
                     % str(seconds).encode())
        data = await reader.read()
        return int(data.split(b" ", 2)[1]) if data.startswith(b"HTTP/1.1 ") else 0
    finally:
        writer.close()


async def _requests(port: int, count: int, seconds: float) -> list[int]:
    return await asyncio.gather(*(_one(port, seconds) for _ in range(count)))


def _burst(server: Server, count: int, seconds: float, sample_at: float,
           stop_after_sample: bool = False) -> dict:
    """``count`` concurrent requests; the worker's RSS and threads sampled ``sample_at`` s in,
    while every request is inside its sleep."""
    idle_rss, idle_threads = _rss_kib(server.worker), _threads(server.worker)
    sample: dict = {}

    async def run() -> tuple[list[int], float]:
        started = time.monotonic()
        task = asyncio.ensure_future(_requests(server.port, count, seconds))
        await asyncio.sleep(sample_at)
        sample["rss_kib"] = _rss_kib(server.worker)
        sample["threads"] = _threads(server.worker)
        if stop_after_sample:
            task.cancel()
            return [], 0.0
        statuses = await task
        return statuses, time.monotonic() - started

    statuses, wall = asyncio.run(run())
    return {"idle_rss_kib": idle_rss, "idle_threads": idle_threads,
            "busy_rss_kib": sample["rss_kib"], "busy_threads": sample["threads"],
            "ok": sum(s == 200 for s in statuses), "wall_s": wall}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--requests", type=int, default=300)
    ap.add_argument("--sleep", type=float, default=1.0, help="seconds each request sleeps")
    ap.add_argument("--out", default="green", help="basename of the .json/.md in bench/results/")
    args = ap.parse_args()
    logs = Path(os.environ.get("TMPDIR", "/tmp"))
    sample_at = args.sleep * 0.7

    seed = Server(SEED_ARGS, logs / "bench-green-seed.log")
    try:
        seed.wait_ready()
        time.sleep(0.5)
        burst = _burst(seed, args.requests, args.sleep, sample_at)
        # The extra threads exit once unneeded for the idle timeout (to twice that).
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and _threads(seed.worker) > burst["idle_threads"]:
            time.sleep(0.5)
        burst["after_idle_threads"] = _threads(seed.worker)
        burst["after_idle_rss_kib"] = _rss_kib(seed.worker)
        start_line = next((line for line in seed.log_path.read_text().splitlines()
                           if "no monkey-patching" in line), "")
        warnings = [line for line in seed.log_path.read_text().splitlines() if "WARNING" in line]
    finally:
        seed.stop()

    base = Server(BASELINE_ARGS, logs / "bench-green-baseline.log")
    try:
        base.wait_ready()
        time.sleep(0.5)
        baseline = _burst(base, args.requests, args.sleep, sample_at, stop_after_sample=True)
    finally:
        base.stop()

    extra_threads = burst["busy_threads"] - burst["idle_threads"]
    gross = burst["busy_rss_kib"] - burst["idle_rss_kib"]
    requests_only = baseline["busy_rss_kib"] - baseline["idle_rss_kib"]
    per_thread = (gross - requests_only) / extra_threads if extra_threads > 0 else None
    report = {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "commit": subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT,
                                 capture_output=True, text=True).stdout.strip(),
        "machine": {"python": platform.python_version(), "cores": os.cpu_count(),
                    "loadavg": os.getloadavg()},
        "command": "unicorn_aio bench.green:sleepy " + " ".join(SEED_ARGS),
        "requests": args.requests, "sleep_s": args.sleep,
        "wall_s": round(burst["wall_s"], 3), "answered": burst["ok"],
        "target_wall_s": 4.0, "pass": burst["ok"] == args.requests and burst["wall_s"] <= 4.0,
        "seed": burst, "baseline_one_thread": baseline,
        "extra_threads": extra_threads,
        "rss_per_extra_thread_kib": round(per_thread, 1) if per_thread is not None else None,
        "rss_per_request_in_flight_kib": round(gross / args.requests, 1),
        "start_line": start_line.split("] ", 3)[-1], "warnings": warnings,
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{args.out}.json").write_text(json.dumps(report, indent=1) + "\n")
    (RESULTS / f"{args.out}.md").write_text(render_md(report))
    print(render_md(report))


def render_md(r: dict) -> str:
    s, b = r["seed"], r["baseline_one_thread"]
    verdict = "✅ pass" if r["pass"] else "❌ fail"
    return f"""# -k gevent without gevent: {r['requests']} concurrent requests sleeping {r['sleep_s']:g} s

{r['date']}, commit {r['commit']}, Python {r['machine']['python']}, {r['machine']['cores']} cores,
load average at start {', '.join(f'{x:.2f}' for x in r['machine']['loadavg'])} (shared machine).

Command: `{r['command']}` (the seeds' `gunicorn app:app -w 3 -k gevent --worker-connections 1000`
with one worker). Start line: `{r['start_line']}`. Warnings: {len(r['warnings'])}.

| measure | value |
|---|---:|
| answered | {r['answered']} / {r['requests']} |
| wall time, first request sent to last response read | {r['wall_s']:.2f} s (target ≤ {r['target_wall_s']:g} s: {verdict}) |
| worker threads: idle → all requests in the app → idle again | {s['idle_threads']} → {s['busy_threads']} → {s['after_idle_threads']} |
| worker RSS: idle → all requests in the app → idle again | {s['idle_rss_kib'] / 1024:.1f} → {s['busy_rss_kib'] / 1024:.1f} → {s['after_idle_rss_kib'] / 1024:.1f} MiB |
| RSS per request in flight (thread, connection, request) | {r['rss_per_request_in_flight_kib']:.1f} KiB |
| the same requests waiting on a one-thread worker (`-k sync`) | +{(b['busy_rss_kib'] - b['idle_rss_kib']) / 1024:.1f} MiB |
| **RSS per extra thread** | **{r['rss_per_extra_thread_kib']} KiB** |

RSS per extra thread: (the gevent-class worker's RSS growth − the one-thread worker's growth for
the same requests in flight) ÷ threads added. A thread's stack is 8 MiB of address space, of
which only the pages it touches are resident; `threading.stack_size` changes the address
space, not the RSS.
"""


if __name__ == "__main__":
    main()
