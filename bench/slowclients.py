"""Slow clients against one worker: slowhttptest's slow headers, slow body and slow read.

Each attack opens 1000 connections to a single worker (its default --worker-connections is 1000)
on loopback and keeps them for 20 s, while two probes ask whether the service is still there:

* slowhttptest's own probe (``-p 1``): a request on a fresh connection every second, the service
  counted unavailable for any second whose probe got no answer within 1 s;
* an independent one here: a plain GET on a fresh connection every 0.25 s, a failure when there
  is no complete answer within 1 s.

Target (issue #18): neither probe ever finds the service unavailable.  Before connection shedding
the worker filled up with the attacker's connections and new clients waited in the backlog.

    python -m bench.slowclients                  # or: make bench-slowclients
    python -m bench.slowclients --tree /tmp/old  # the server from another source tree

Writes bench/results/slowclients.json and .md.  Needs slowhttptest (Debian's package;
bench/setup.sh installs it).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
CONNECTIONS = 1000
SECONDS = 20
PROBE_TIMEOUT = 1.0
PROBE_EVERY = 0.25
SLOW_READ_BYTES = 1024 * 1024  # the slow-read response: bench.apps.big's 1 MiB

# slowhttptest arguments per attack.  -r 1000: every connection open within about a second, so
# the worker is at its limit for nearly the whole run (the default 50/s would take 20 s).
ATTACKS = {
    "slow headers": ["-H", "-i", "5", "-x", "24"],
    "slow body": ["-B", "-i", "5", "-x", "24", "-s", "8192"],
    "slow read": ["-X", "-k", "1", "-n", "1", "-w", "1", "-y", "512", "-z", "32"],
}
PATHS = {"slow headers": "/", "slow body": "/", "slow read": "/big"}


# The app, written next to the run's files so that any tree's unicorn_aio can serve it: hello,
# and at /big a response too large for the socket's buffers (for slow read).
APP = f"""
BIG = b"x" * {SLOW_READ_BYTES}


def app(environ, start_response):
    body = BIG if environ["PATH_INFO"] == "/big" else b"Hello, World!\\n"
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """One unicorn_aio worker from ``tree`` on 127.0.0.1, logging at debug (shed lines)."""

    def __init__(self, tree: Path, workdir: Path, args: list[str]) -> None:
        self.port = free_port()
        self.log = workdir / f"server-{self.port}.log"
        (workdir / "slowclients_app.py").write_text(APP)
        env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(tree), str(workdir)]))
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "unicorn_aio", "slowclients_app:app",
             "--bind", f"127.0.0.1:{self.port}", "--workers", "1", "--log-level", "debug",
             "--error-logfile", str(self.log), *args],
            cwd=workdir, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            start_new_session=True)
        deadline = time.monotonic() + 20
        while not probe_once(self.port)[0]:
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise SystemExit(f"the server did not start; see {self.log}")
            time.sleep(0.1)

    def shed(self) -> int:
        return self.log.read_text(errors="replace").count("shed the connection from")

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, 15)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, 9)
                self.proc.wait()


def probe_once(port: int) -> tuple[bool, float]:
    """A GET on a fresh connection: (a whole 200 within PROBE_TIMEOUT, seconds taken)."""
    start = time.monotonic()
    deadline = start + PROBE_TIMEOUT
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=PROBE_TIMEOUT) as sock:
            sock.sendall(b"GET / HTTP/1.1\r\nHost: probe\r\nConnection: close\r\n\r\n")
            data = b""
            while True:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False, time.monotonic() - start
                sock.settimeout(left)
                chunk = sock.recv(65536)
                if not chunk:
                    break
                data += chunk
        return data.startswith(b"HTTP/1.1 200") and data.endswith(b"\n"), time.monotonic() - start
    except OSError:
        return False, time.monotonic() - start


class Prober(threading.Thread):
    def __init__(self, port: int) -> None:
        super().__init__(daemon=True)
        self.port = port
        self.results: list[tuple[float, bool, float]] = []  # (since start, ok, seconds)
        self.stopping = threading.Event()

    def run(self) -> None:
        began = time.monotonic()
        while not self.stopping.is_set():
            at = time.monotonic()
            ok, took = probe_once(self.port)
            self.results.append((at - began, ok, took))
            self.stopping.wait(max(0.0, at + PROBE_EVERY - time.monotonic()))


class Sampler(threading.Thread):
    """Twice a second: the server's established connections on its port (``ss``) and the RSS
    of its process tree."""

    def __init__(self, server: Server) -> None:
        super().__init__(daemon=True)
        self.server = server
        self.connections: list[int] = []
        self.rss_kib: list[int] = []
        self.stopping = threading.Event()

    def run(self) -> None:
        port, pgid = self.server.port, self.server.proc.pid
        while not self.stopping.wait(0.5):
            ss = subprocess.run(["ss", "-Htn", "state", "established", f"sport = :{port}"],
                                capture_output=True, text=True).stdout
            self.connections.append(len(ss.splitlines()))
            ps = subprocess.run(["ps", "-o", "rss=", "-g", str(pgid)],
                                capture_output=True, text=True).stdout
            self.rss_kib.append(sum(int(x) for x in ps.split()))


def tool_availability(csv_path: Path) -> tuple[int, int, int]:
    """From slowhttptest's CSV: (seconds with the service unavailable, seconds in all, the most
    connections it held open at once)."""
    rows = list(csv.DictReader(csv_path.open()))
    down = sum(1 for r in rows if float(r["Service Available"]) == 0)
    return down, len(rows), max((int(r["Connected"]) for r in rows), default=0)


def run_attack(name: str, tree: Path, workdir: Path, server_args: list[str]) -> dict:
    server = Server(tree, workdir, server_args)
    prefix = workdir / re.sub(r"\W+", "_", name)
    prober = Prober(server.port)
    sampler = Sampler(server)
    try:
        cmd = ["slowhttptest", *ATTACKS[name], "-c", str(CONNECTIONS), "-r", str(CONNECTIONS),
               "-l", str(SECONDS), "-p", str(int(PROBE_TIMEOUT)), "-g", "-o", str(prefix),
               "-u", f"http://127.0.0.1:{server.port}{PATHS[name]}"]
        rss_before = sum(int(x) for x in subprocess.run(
            ["ps", "-o", "rss=", "-g", str(server.proc.pid)],
            capture_output=True, text=True).stdout.split())
        prober.start()
        sampler.start()
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=SECONDS + 30).stdout
        for thread in (prober, sampler):
            thread.stopping.set()
            thread.join()
        down, seconds, peak = tool_availability(prefix.with_suffix(".csv"))
        probes = prober.results
        took = sorted(t for _, ok, t in probes if ok)
        exit_status = re.search(r"Exit status:\S*\s*(?:\x1b\[[0-9;]*m)?([^\n\x1b]+)", out)
        return {
            "command": " ".join(cmd[:-3] + ["PREFIX", "-u", "http://127.0.0.1:PORT" + PATHS[name]]),
            "tool_unavailable_s": down,
            "tool_seconds": seconds,
            "tool_peak_connected": peak,
            "tool_exit": exit_status.group(1).strip() if exit_status else None,
            "probes": len(probes),
            "probe_failures": sum(1 for _, ok, _ in probes if not ok),
            "probe_failed_at_s": [round(at, 2) for at, ok, _ in probes if not ok],
            "probe_p50_ms": round(statistics.median(took) * 1000, 1) if took else None,
            "probe_max_ms": round(took[-1] * 1000, 1) if took else None,
            "shed": server.shed(),
            "server_peak_established": max(sampler.connections, default=0),
            "rss_before_mib": round(rss_before / 1024, 1),
            "rss_peak_mib": round(max(sampler.rss_kib, default=0) / 1024, 1),
        }
    finally:
        prober.stopping.set()
        sampler.stopping.set()
        server.stop()


def commit(tree: Path) -> str:
    try:
        return subprocess.run(["git", "-C", str(tree), "rev-parse", "--short", "HEAD"],
                              capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def markdown(result: dict) -> str:
    lines = [
        f"# Slow clients against one worker — {result['date']}",
        "",
        f"`{Path(sys.argv[0]).name}`: slowhttptest {result['slowhttptest']}, {CONNECTIONS} "
        f"connections (opened at {CONNECTIONS}/s) for {SECONDS} s per attack against one "
        f"unicorn_aio worker (--worker-connections 1000, 1 thread"
        f"{', ' + result['server_args'] if result['server_args'] else ''}) on 127.0.0.1, "
        f"commit {result['commit']}. Machine: {result['machine']}; other work shared it.",
        "",
        "Target: the tool's probe (a request every second, 1 s timeout) never finds the service "
        "unavailable; nor does a GET every 0.25 s with a 1 s timeout on a fresh connection.",
        "",
        "| attack | tool: s unavailable | tool: peak connected | probes failed | probe p50 | "
        "probe max | shed | server: peak connections | RSS MiB | verdict |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for name, r in result["attacks"].items():
        ok = r["tool_unavailable_s"] == 0 and r["probe_failures"] == 0
        lines.append(
            f"| {name} | {r['tool_unavailable_s']} of {r['tool_seconds']} | "
            f"{r['tool_peak_connected']} | {r['probe_failures']} of {r['probes']} | "
            f"{r['probe_p50_ms']} ms | {r['probe_max_ms']} ms | {r['shed']} | "
            f"{r['server_peak_established']} | {r['rss_before_mib']} → {r['rss_peak_mib']} | "
            f"{'✅ pass' if ok else '❌ fail'} |")
    lines += ["", "Commands (PORT is the worker's), and how the tool's run ended:", ""]
    lines += [f"- {name}: `{r['command']}` ({r['tool_exit']})"
              for name, r in result["attacks"].items()]
    lines += [
        "", f"slow read asks for a {SLOW_READ_BYTES >> 20} MiB response (the others for 14 bytes)."
        " 'No open connections left': the server's --header-timeout (10 s) had closed every "
        "slow-headers connection, which the tool does not replace. shed: connections the "
        "worker closed to make room (its debug lines). server: peak connections: established "
        "sockets on the port (ss), the accept queue's included.", ""]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tree", type=Path, default=ROOT,
                        help="the source tree whose unicorn_aio serves (default: this one)")
    parser.add_argument("--commit", help="what --tree is, when it is not a git checkout")
    parser.add_argument("--only", default=",".join(ATTACKS),
                        help="attacks to run, comma-separated: " + ", ".join(ATTACKS))
    parser.add_argument("--server-args", default="",
                        help="more options for the server, e.g. '-k gevent'")
    parser.add_argument("--out", default="slowclients",
                        help="results name under bench/results ('' writes nothing)")
    args = parser.parse_args()
    if shutil.which("slowhttptest") is None:
        raise SystemExit("slowhttptest is not installed (apt-get install slowhttptest; "
                         "bench/setup.sh does it)")
    version = subprocess.run(["dpkg-query", "-W", "-f", "${Version}", "slowhttptest"],
                             capture_output=True, text=True).stdout or "?"
    tree = args.tree.resolve()
    result = {
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "tree": str(tree), "commit": args.commit or commit(tree), "slowhttptest": version,
        "server_args": args.server_args,
        "machine": f"{platform.machine()} ×{os.cpu_count()}, Linux {platform.release()}, "
                   f"Python {platform.python_version()}",
        "connections": CONNECTIONS, "seconds": SECONDS, "attacks": {},
    }
    with tempfile.TemporaryDirectory(prefix="slowclients-") as tmp:
        for name in args.only.split(","):
            name = name.strip()
            r = run_attack(name, tree, Path(tmp), args.server_args.split())
            result["attacks"][name] = r
            print(f"{name}: tool unavailable {r['tool_unavailable_s']} of {r['tool_seconds']} s, "
                  f"probes failed {r['probe_failures']} of {r['probes']} "
                  f"(max {r['probe_max_ms']} ms), shed {r['shed']}", flush=True)
    if args.out:
        RESULTS.mkdir(exist_ok=True)
        (RESULTS / f"{args.out}.json").write_text(json.dumps(result, indent=2) + "\n")
        (RESULTS / f"{args.out}.md").write_text(markdown(result))


if __name__ == "__main__":
    main()
