"""Stuck requests on one worker with --threads 4: does hello stay served, how soon does it come
back, what do the stuck requests get?  The request watchdog (wsgi/watchdog.py) at work.

Eight keep-alive clients ask for hello in a loop; after 2 s, N requests get stuck in the app:

- spin 2 of 4: pure Python spinning in half the threads, interrupted at the limit;
- spin 4 of 4: in every thread, so hello waits until they are interrupted and replaced;
- sleep 4 of 4: ``time.sleep(1000)``, which Python cannot interrupt: the threads are replaced,
  and with all four lost the worker retires (a fresh worker first);
- without the watchdog (``--request-timeout 0``): the same four sleeps (8 s here): hello waits
  for as long as they last.

Reported per scenario: hello rps before, the longest time no hello was answered after the stuck
requests came ("stall"), hello rps over the last 2 s, hello failures, the stuck requests'
statuses and how long they took, and the worker pids that answered.

    .venv/bin/python -m bench.stuck           # or: make bench-stuck (about a minute)

Results: bench/results/stuck.json and stuck.md.
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
CLIENTS = 8
BEFORE = 2.0  # seconds of hello before the stuck requests
TIMEOUT = 2  # --timeout and --request-timeout
ARGS = ["-w", "1", "--threads", "4", "--timeout", str(TIMEOUT), "--graceful-timeout", "5"]


def app(environ, start_response):
    """/spin and /sleep?S get stuck; anything else is hello, naming the worker."""
    path = environ["PATH_INFO"]
    if path == "/spin":
        end = time.monotonic() + 30
        while time.monotonic() < end:
            pass
    elif path == "/sleep":
        time.sleep(float(environ.get("QUERY_STRING") or 1000))
    body = b"pid=%d\n" % os.getpid()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]


# -- the server ---------------------------------------------------------------------------------

class Server(ServerProcess):
    def __init__(self, args: list[str], log_path: Path) -> None:
        super().__init__("bench.stuck:app", args, log_path)

    def wait_ready(self, timeout: float = 20) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited: {self.log_path.read_text()}")
            try:
                if asyncio.run(_one(self.port, "/"))[0] == 200:
                    return
            except OSError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"server not ready in {timeout} s: {self.log_path.read_text()}")


# -- the clients --------------------------------------------------------------------------------

async def _response(reader: asyncio.StreamReader) -> tuple[int, bytes, bool]:
    """(status, body, the server closes) of one response with a Content-Length."""
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    fields = {k.strip().lower(): v.strip() for k, _, v in (ln.partition(":") for ln in lines[1:])}
    body = await reader.readexactly(int(fields.get("content-length", 0)))
    return int(lines[0].split()[1]), body, fields.get("connection", "").lower() == "close"


async def _one(port: int, path: str) -> tuple[int, bytes]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(b"GET %s HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n" % path.encode())
        status, body, _ = await _response(reader)
        return status, body
    finally:
        writer.close()


async def _hello_client(port: int, done: list[tuple[float, int, bytes]],
                        stop: asyncio.Event) -> None:
    """Hello in a loop on one keep-alive connection (a new one when the server closes it)."""
    while not stop.is_set():
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            done.append((time.monotonic(), 0, b""))
            await asyncio.sleep(0.05)
            continue
        try:
            while not stop.is_set():
                writer.write(b"GET / HTTP/1.1\r\nHost: bench\r\n\r\n")
                status, body, close = await _response(reader)
                done.append((time.monotonic(), status, body))
                if close:
                    break
        except (OSError, asyncio.IncompleteReadError):
            done.append((time.monotonic(), 0, b""))
        finally:
            writer.close()


async def _stuck(port: int, path: str, t0: float) -> tuple[int, float]:
    try:
        status, _ = await asyncio.wait_for(_one(port, path), 30)
    except (OSError, asyncio.IncompleteReadError, asyncio.TimeoutError):
        status = 0
    return status, time.monotonic() - t0


async def _scenario(port: int, path: str, count: int, observe: float) -> dict:
    done: list[tuple[float, int, bytes]] = []
    stop = asyncio.Event()
    clients = [asyncio.create_task(_hello_client(port, done, stop)) for _ in range(CLIENTS)]
    await asyncio.sleep(BEFORE)
    t0 = time.monotonic()
    stuck = asyncio.gather(*(_stuck(port, path, t0) for _ in range(count)))
    await asyncio.sleep(observe)
    end = time.monotonic()
    stop.set()
    results = await stuck
    await asyncio.wait(clients, timeout=10)
    for task in clients:
        task.cancel()
    ok = sorted(t for t, status, _ in done if status == 200)
    before = [t for t in ok if t0 - BEFORE <= t < t0]
    after = [t for t in ok if t >= t0]
    # The longest time after t0 with no hello answered, to the first one after it.
    stall, last, back = 0.0, t0, 0.0
    for t in after + [end]:
        if t - last > stall:
            stall, back = t - last, t - t0
        last = t
    return {
        "hello_rps_before": round(len(before) / BEFORE),
        "stall_s": round(stall, 2), "served_again_at_s": round(back, 2),
        "hello_rps_last_2s": round(sum(1 for t in ok if t >= end - 2) / 2),
        "hello_served": len(after),
        "hello_failures": sum(1 for t, status, _ in done if t >= t0 and status != 200),
        "stuck_statuses": [status for status, _ in results],
        "stuck_answered_after_s": [round(s, 2) for _, s in results],
        "workers": sorted({body.decode().strip() for t, status, body in done
                           if status == 200 and t >= t0}),
    }


SCENARIOS = [
    # name, extra args (a server each unless None: the previous one's), path, count, seconds
    ("spin 2 of 4", ["--request-timeout", str(TIMEOUT)], "/spin", 2, 6.0),
    ("spin 4 of 4", None, "/spin", 4, 6.0),
    ("sleep 4 of 4", ["--request-timeout", str(TIMEOUT)], "/sleep?1000", 4, 8.0),
    ("sleep 4 of 4, no watchdog", ["--request-timeout", "0"], "/sleep?8", 4, 10.0),
]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default="stuck", help="basename of the .json/.md in bench/results/")
    args = ap.parse_args()
    logs = Path(os.environ.get("TMPDIR", "/tmp"))
    report: dict = {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "commit": subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT,
                                 capture_output=True, text=True).stdout.strip(),
        "machine": {"python": platform.python_version(), "cores": os.cpu_count(),
                    "loadavg": os.getloadavg()},
        "command": "unicorn_aio bench.stuck:app " + " ".join(ARGS),
        "clients": CLIENTS, "scenarios": {},
    }
    server = None
    try:
        for i, (name, extra, path, count, observe) in enumerate(SCENARIOS):
            if extra is not None:
                if server is not None:
                    server.stop()
                server = Server(ARGS + extra, logs / f"bench-stuck-{i}.log")
                server.wait_ready()
                time.sleep(0.5)
            assert server is not None
            result = asyncio.run(_scenario(server.port, path, count, observe))
            result["args"] = " ".join(extra or [])
            log = server.log_path.read_text()
            result["retired"] = "retiring" in log
            result["log_lines"] = sum(1 for line in log.splitlines()
                                      if "Request timeout:" in line or "did not stop" in line
                                      or "retiring" in line or "Request stuck:" in line)
            report["scenarios"][name] = result
            print(name, json.dumps(result), flush=True)
    finally:
        if server is not None:
            server.stop()
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{args.out}.json").write_text(json.dumps(report, indent=1) + "\n")
    (RESULTS / f"{args.out}.md").write_text(render_md(report))
    print(render_md(report))


def render_md(r: dict) -> str:
    rows = []
    for name, s in r["scenarios"].items():
        statuses = ", ".join(str(x) for x in s["stuck_statuses"])
        times = ", ".join(f"{x:g}" for x in s["stuck_answered_after_s"])
        rows.append(f"| {name} | {s['hello_rps_before']:,} | {s['stall_s']:.2f} s | "
                    f"{s['hello_rps_last_2s']:,} | {s['hello_failures']} | {statuses} | {times} | "
                    f"{len(s['workers'])}{' (retired)' if s['retired'] else ''} |")
    table = "\n".join(rows)
    return f"""# Stuck requests on one worker with --threads 4 (the request watchdog)

{r['date']}, commit {r['commit']}, Python {r['machine']['python']}, {r['machine']['cores']} cores,
load average at start {', '.join(f'{x:.2f}' for x in r['machine']['loadavg'])} (shared machine;
server and clients on the same cores).

Command: `{r['command']}` plus `--request-timeout {TIMEOUT}` (`--request-timeout 0` for the last
row). {r['clients']} keep-alive clients ask for hello in a loop; {BEFORE:g} s in, the stuck
requests come.

| scenario | hello rps before | longest stall | hello rps, last 2 s | hello failures | stuck got | stuck answered after (s) | workers that answered |
|---|---:|---:|---:|---:|---|---|---|
{table}

- longest stall: the longest time, after the stuck requests came, in which no hello was
  answered. With every thread stuck it is the limit plus at most one watchdog sweep (a quarter
  of it): the stuck requests get their 500 and their threads are replaced.
- sleep: `time.sleep(1000)` cannot be interrupted, so its threads are replaced and left; with
  all four lost the worker retires, a fresh one serving before the old one stops (2 workers
  answered, no failures).
- no watchdog: hello waits as long as the sleeps last.
"""


if __name__ == "__main__":
    main()
