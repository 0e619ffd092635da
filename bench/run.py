"""Side-by-side benchmark of unicorn_aio against the servers users would pick instead.

Run from the repository root with the bench venv's python (`make bench`, `make bench-quick`):

    .bench-venv/bin/python -m bench.run [--quick] [--only NAME[,NAME]] [--rounds N] [--duration S]

Every scenario starts all of its servers at once (each on its own port, pinned to CPU 0, idle
while another is measured), then measures them one after another, round after round, so drift of
a shared machine hits every server alike; the median round is reported. wrk runs on CPU 1.
Results go to bench/results/: latest.json, latest.md and PNG charts.
"""

from __future__ import annotations

import argparse
import datetime
import importlib.metadata
import json
import os
import platform
import re
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
HOST = "127.0.0.1"
OURS = "unicorn_aio"
FLOOR = "uvloop+httptools floor"
REFERENCE = "reference server"

# Two cores: the servers get one, the load generator (and this harness) the other, for every
# server alike. On a machine with more cores the same split keeps runs comparable.
SERVER_CPUS = "0"
CLIENT_CPUS = "1"
ALL_CPUS = "0,1"


# ---------------------------------------------------------------------------------------------
# Servers


@dataclass(frozen=True)
class Variant:
    """One server configuration in one scenario."""

    name: str  # shown in tables; unique within a scenario
    server: str  # key of SERVERS
    app: str = "hello"  # attribute of bench.apps
    threads: int | None = None  # app thread pool size where the server has one
    workers: int = 1
    dispatch: str = "threads"  # unicorn_aio only: "threads" or "inline"
    access_log: bool = False
    keep_alive: int | None = None  # idle keep-alive timeout, seconds, where configurable
    cpus: str | None = None  # taskset list; None: SERVER_CPUS
    extra: tuple[str, ...] = ()  # more command-line arguments for this server
    pythonpath: str | None = None  # unicorn_aio only: import it from this tree (--baseline)
    env: tuple[tuple[str, str], ...] = ()  # more environment variables for this server

    @property
    def asgi(self) -> bool:
        return self.app.startswith("asgi_")


def _py(*args: str) -> list[str]:
    return [sys.executable, *args]


def argv_unicorn(v: Variant, port: int, log: Path) -> list[str]:
    cmd = _py("-m", "unicorn_aio", f"bench.apps:{v.app}", "--bind", f"{HOST}:{port}", "--workers", str(v.workers))
    if v.asgi:
        cmd += ["--interface", "asgi"]
    elif v.dispatch == "inline":
        cmd += ["--dispatch", "inline"]
    else:
        cmd += ["--threads", str(v.threads or 4)]
    if v.access_log:
        cmd += ["--access-logfile", str(log)]
    if v.keep_alive:
        cmd += ["--keep-alive", str(v.keep_alive)]
    return cmd


def argv_gunicorn(kind: str):
    def build(v: Variant, port: int, log: Path) -> list[str]:
        cmd = _py("-m", "gunicorn", "-k", kind, "-w", str(v.workers), "-b", f"{HOST}:{port}")
        if kind == "gthread":
            cmd += ["--threads", str(v.threads or 4)]
        if v.access_log:
            cmd += ["--access-logfile", str(log)]
        if v.keep_alive:
            cmd += ["--keep-alive", str(v.keep_alive)]
        return cmd + [f"bench.apps:{v.app}"]

    return build


def argv_granian(v: Variant, port: int, log: Path) -> list[str]:
    cmd = _py("-m", "granian", "--interface", "asgi" if v.asgi else "wsgi", "--host", HOST, "--port", str(port),
              "--workers", str(v.workers), "--http", "1", "--no-ws", "--log-level", "warning")
    if v.threads and not v.asgi:
        cmd += ["--blocking-threads", str(v.threads)]
    if v.asgi:
        cmd += ["--loop", "uvloop"]
    if v.access_log:
        cmd += ["--access-log"]
    return cmd + [f"bench.apps:{v.app}"]


def argv_bjoern(v: Variant, port: int, log: Path) -> list[str]:
    return _py("-m", "bench.bjoern_serve", v.app, HOST, str(port))


def argv_floor(v: Variant, port: int, log: Path) -> list[str]:
    return _py("-m", "bench.floor", HOST, str(port))


# ../shared/bench/reference_wsgi.py: 116 lines of pure Python on uvloop + httptools, full environ,
# the app called inline, none of our checks or timeouts: issue #22's yardstick for inline mode.
REFERENCE_WSGI = ROOT.parent / "shared" / "bench" / "reference_wsgi.py"


def argv_reference(v: Variant, port: int, log: Path) -> list[str]:
    return _py(str(REFERENCE_WSGI), str(port), f"bench.apps:{v.app}")


def argv_waitress(v: Variant, port: int, log: Path) -> list[str]:
    # waitress's default connection-limit (100) would queue the 200-connection scenario in the
    # listen backlog, and its body limit (1 GiB) refuses the 1 GiB upload: both raised so the
    # measure is of request handling, not of those limits.
    return _py("-m", "waitress", f"--listen={HOST}:{port}", f"--threads={v.threads or 4}",
               "--connection-limit=2000", "--max-request-body-size=4294967296", f"bench.apps:{v.app}")


def argv_uvicorn(v: Variant, port: int, log: Path) -> list[str]:
    app = v.app if v.asgi else f"{v.app}_a2wsgi"
    cmd = _py("-m", "uvicorn", "--host", HOST, "--port", str(port), "--http", "httptools", "--loop", "uvloop",
              "--log-level", "warning")
    if v.workers > 1:
        cmd += ["--workers", str(v.workers)]
    cmd += ["--access-log"] if v.access_log else ["--no-access-log"]
    if v.keep_alive:
        cmd += ["--timeout-keep-alive", str(v.keep_alive)]
    return cmd + [f"bench.apps:{app}"]


def argv_hypercorn(v: Variant, port: int, log: Path) -> list[str]:
    # Serves WSGI apps in its executor, and h2c by prior knowledge without an option.
    return _py("-m", "hypercorn", "--bind", f"{HOST}:{port}", "--workers", str(v.workers), f"bench.apps:{v.app}")


@dataclass(frozen=True)
class Server:
    argv: object
    modules: tuple[str, ...]  # must import in the bench venv for the server to be available
    dist: str  # distribution whose version is reported


SERVERS = {
    OURS: Server(argv_unicorn, ("unicorn_aio",), "unicorn_aio"),
    "gunicorn-sync": Server(argv_gunicorn("sync"), ("gunicorn",), "gunicorn"),
    "gunicorn-gthread": Server(argv_gunicorn("gthread"), ("gunicorn",), "gunicorn"),
    "granian": Server(argv_granian, ("granian",), "granian"),
    "bjoern": Server(argv_bjoern, ("bjoern",), "bjoern"),
    "waitress": Server(argv_waitress, ("waitress",), "waitress"),
    "uvicorn+a2wsgi": Server(argv_uvicorn, ("uvicorn", "a2wsgi", "httptools", "uvloop"), "uvicorn"),
    "hypercorn": Server(argv_hypercorn, ("hypercorn",), "hypercorn"),
    # Not a peer: the stack's own ceiling (bench/floor.py), shown beside the hello scenario.
    FLOOR: Server(argv_floor, ("httptools", "uvloop"), "uvloop"),
    # Not a peer either: what pure Python on our stack does with none of our checks.
    REFERENCE: Server(argv_reference, ("httptools", "uvloop"), "uvloop"),
}


def unavailable_servers() -> dict[str, str]:
    """Server name -> why it cannot run here (import failure, or a reason the Makefile recorded)."""
    reasons: dict[str, str] = {}
    recorded = ROOT / ".bench-venv" / "unavailable.txt"
    if recorded.exists():
        for line in recorded.read_text().splitlines():
            name, _, why = line.partition(":")
            if name.strip():
                reasons[name.strip()] = why.strip() or "recorded unavailable"
    for name, srv in SERVERS.items():
        if name in reasons:
            continue
        for mod in srv.modules:
            probe = subprocess.run(_py("-c", f"import {mod}"), capture_output=True, text=True, cwd=ROOT)
            if probe.returncode:
                tail = (probe.stderr.strip().splitlines() or ["?"])[-1]
                reasons[name] = f"cannot import {mod}: {tail}"
                break
    return reasons


# ---------------------------------------------------------------------------------------------
# Processes: start, wait until serving, measure memory, stop the whole tree


def _free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def _raise_nofile() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or hard > 1 << 20:
        hard = 1 << 20
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def _proc_table() -> dict[int, tuple[int, int]]:
    """pid -> (ppid, session id), read from /proc/*/stat."""
    table = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2:].split()
        table[int(entry)] = (int(fields[1]), int(fields[3]))
    return table


def tree_pids(root: int) -> list[int]:
    """The root, its descendants, and anything left in its session (started with setsid)."""
    table = _proc_table()
    pids = {root} if root in table else set()
    changed = True
    while changed:
        changed = False
        for pid, (ppid, sid) in table.items():
            if pid not in pids and (ppid in pids or sid == root):
                pids.add(pid)
                changed = True
    return sorted(pids)


def _status_kb(pid: int, key: str) -> int:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def _pss_kb(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Pss:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def tree_rss_kb(root: int) -> int:
    return sum(_status_kb(pid, "VmRSS") for pid in tree_pids(root))


_TICK = os.sysconf("SC_CLK_TCK")


def tree_cpu_s(root: int) -> float:
    """User + system CPU seconds used so far by the processes of a server's tree."""
    total = 0
    for pid in tree_pids(root):
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rpartition(")")[2].split()
            total += int(fields[11]) + int(fields[12])  # utime, stime
        except (OSError, IndexError, ValueError):
            pass
    return total / _TICK


def children_cpu_s() -> float:
    """CPU seconds of this process's waited-for children (wrk, once subprocess.run returns)."""
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


@dataclass
class Running:
    variant: Variant
    port: int
    proc: subprocess.Popen | None = None
    log: Path | None = None
    access_log: Path | None = None
    error: str | None = None

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}/"

    def rss_kb(self) -> int:
        return tree_rss_kb(self.proc.pid) if self.proc else 0

    def log_tail(self, lines: int = 12) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except (OSError, AttributeError):
            return ""


def start(variant: Variant, workdir: Path, tag: str) -> Running:
    run = Running(variant, _free_port())
    slug = re.sub(r"[^A-Za-z0-9]+", "-", f"{tag}-{variant.name}").strip("-")
    run.log = workdir / f"{slug}.log"
    run.access_log = workdir / f"{slug}.access.log"
    argv = SERVERS[variant.server].argv(variant, run.port, run.access_log)
    # Extra options go before the app target (the last argument), where every CLI here takes them.
    argv[-1:-1] = variant.extra if variant.server != OURS else ()
    cmd = ["taskset", "-c", variant.cpus or SERVER_CPUS, *argv, *(variant.extra if variant.server == OURS else ())]
    pythonpath = str(ROOT) if variant.pythonpath is None else f"{variant.pythonpath}{os.pathsep}{ROOT}"
    env = dict(os.environ, PYTHONPATH=pythonpath, PYTHONUNBUFFERED="1", **dict(variant.env))
    with open(run.log, "wb") as out:
        out.write((" ".join(cmd) + "\n").encode())
        out.flush()
        run.proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=out,
                                    start_new_session=True, preexec_fn=_raise_nofile)
    return run


def _http_get_ok(port: int, timeout: float) -> bool:
    try:
        with socket.create_connection((HOST, port), timeout=timeout) as s:
            s.sendall(b"GET / HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n")
            return s.recv(64).startswith(b"HTTP/1.")
    except OSError:
        return False


def wait_serving(runs: list[Running], timeout: float = 20.0, probe=_http_get_ok) -> None:
    """Until each server answers a request; a server that exits or stays silent gets .error."""
    deadline = time.monotonic() + timeout
    pending = [r for r in runs if r.error is None]
    while pending and time.monotonic() < deadline:
        for r in list(pending):
            if r.proc.poll() is not None:
                r.error = f"exited with status {r.proc.returncode} before serving; log tail:\n{r.log_tail()}"
                pending.remove(r)
            elif probe(r.port, 2.0):
                pending.remove(r)
        if pending:
            time.sleep(0.1)
    for r in pending:
        r.error = f"did not answer on port {r.port} within {timeout:.0f}s; log tail:\n{r.log_tail()}"
        stop(r)


def stop(run: Running) -> None:
    """SIGTERM the server's process group, SIGKILL what is left after 5 s (workers included)."""
    proc = run.proc
    if proc is None:
        return
    pids = tree_pids(proc.pid)
    for sig, grace in ((signal.SIGTERM, 5.0), (signal.SIGKILL, 2.0)):
        for target in [proc.pid] + pids:
            try:
                if target == proc.pid:
                    os.killpg(proc.pid, sig)
                else:
                    os.kill(target, sig)
            except (ProcessLookupError, PermissionError):
                pass
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline:
            proc.poll()
            if proc.returncode is not None and not any(os.path.exists(f"/proc/{p}") and _alive(p) for p in pids):
                return
            time.sleep(0.05)


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


class Servers:
    """Context manager: start every variant of a scenario, stop them all whatever happens."""

    def __init__(self, ctx: "Context", variants: list[Variant], tag: str, probe=None):
        self.ctx, self.variants, self.tag = ctx, variants, tag
        self.probe = probe or _http_get_ok  # port, timeout -> serving? (h2c: _h2c_ok)
        self.runs: dict[str, Running] = {}

    def __enter__(self) -> dict[str, Running]:
        try:
            for v in self.variants:
                why = self.ctx.unavailable.get(v.server)
                if why:
                    self.runs[v.name] = Running(v, 0, error=f"unavailable: {why}")
                else:
                    self.runs[v.name] = start(v, self.ctx.workdir, self.tag)
            wait_serving(list(self.runs.values()), probe=self.probe)
        except BaseException:
            self.__exit__()
            raise
        for r in self.runs.values():
            if r.error:
                log(f"  ! {r.variant.name}: {r.error}")
        return self.runs

    def __exit__(self, *exc) -> None:
        for r in self.runs.values():
            stop(r)


# ---------------------------------------------------------------------------------------------
# Load generation and measurement

_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3, "h": 3600e3}


def _ms(text: str) -> float:
    m = re.fullmatch(r"([\d.]+)(us|ms|s|m|h)", text)
    return float(m.group(1)) * _UNITS[m.group(2)] if m else float("nan")


def parse_wrk(out: str) -> dict:
    res = {"rps": 0.0, "p50_ms": None, "p99_ms": None, "requests": 0, "non2xx": 0, "socket_errors": 0}
    if m := re.search(r"Requests/sec:\s+([\d.]+)", out):
        res["rps"] = float(m.group(1))
    for pct, key in (("50", "p50_ms"), ("99", "p99_ms")):
        if m := re.search(rf"^\s+{pct}%\s+(\S+)", out, re.M):
            res[key] = _ms(m.group(1))
    if m := re.search(r"(\d+) requests in", out):
        res["requests"] = int(m.group(1))
    if m := re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out):
        res["non2xx"] = int(m.group(1))
    if m := re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out):
        res["socket_errors"] = sum(int(g) for g in m.groups())
    return res


def listen_drops() -> int:
    """TcpExt ListenDrops for the whole machine (other processes' count too)."""
    try:
        with open("/proc/net/netstat") as f:
            lines = f.read().splitlines()
    except OSError:
        return 0
    for names, values in zip(lines[::2], lines[1::2]):
        if names.startswith("TcpExt:"):
            row = dict(zip(names.split()[1:], values.split()[1:]))
            return int(row.get("ListenDrops", 0))
    return 0


def wrk(url: str, duration: float, conns: int = 50, threads: int = 1, headers: tuple[str, ...] = (),
        cpus: str | None = None) -> dict:
    # wrk takes whole seconds only.
    cmd = ["taskset", "-c", cpus or CLIENT_CPUS, "wrk", f"-t{threads}", f"-c{conns}", f"-d{max(1, round(duration))}s", "--latency",
           "--timeout", "5s"]
    for h in headers:
        cmd += ["-H", h]
    cmd.append(url)
    drops0 = listen_drops()
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=duration + 20)
    except subprocess.TimeoutExpired:
        return {**parse_wrk(""), "error": "wrk did not finish in time"}
    res = parse_wrk(done.stdout)
    # A full accept queue drops SYNs, and the client retries after 1 s: that shows as p99 near 1 s.
    res["listen_drops"] = listen_drops() - drops0
    if done.returncode or not res["requests"]:
        res["error"] = (done.stderr.strip() or done.stdout.strip())[:200] or f"wrk exit {done.returncode}"
    return res


def warm(ctx: "Context", r: "Running", conns: int = 50, threads: int = 1, headers: tuple[str, ...] = (),
         cpus: str | None = None) -> None:
    """A short load before measuring: imports, pools and caches get filled outside the measure."""
    if ctx.warmup >= 1:
        wrk(r.url, ctx.warmup, conns, threads, headers, cpus)
    else:
        for _ in range(50):
            _request_once(r.port)


def median_of(runs: list[dict]) -> dict:
    """The round with the median rps (whole round, so its latency and errors stay consistent)."""
    good = [r for r in runs if not r.get("error")] or runs
    ranked = sorted(good, key=lambda r: r["rps"])
    mid = dict(ranked[(len(ranked) - 1) // 2])
    mid["rounds_rps"] = [r["rps"] for r in runs]
    mid["rss_kb"] = max((r.get("rss_kb", 0) for r in runs), default=0)
    return mid


# ---------------------------------------------------------------------------------------------
# Scenarios


@dataclass
class Context:
    quick: bool
    rounds: int
    duration: float
    warmup: float
    workdir: Path
    unavailable: dict[str, str]
    results: list[dict] = field(default_factory=list)


def log(msg: str) -> None:
    print(msg, flush=True)


def target(text: str, value: float | None, ok: bool | None, shown: str | None = None) -> dict:
    """A stated goal: the measured value, shown as text, and whether it passed (None: not measurable)."""
    if value is None or (isinstance(value, float) and value != value):
        return {"text": text, "value": None, "shown": "n/a", "pass": None}
    return {"text": text, "value": value, "shown": shown or f"{value:.2f}", "pass": ok}


def rps_of(result: dict, name: str) -> float | None:
    row = result["servers"].get(name)
    if not row or row.get("error") or not row.get("rps"):
        return None
    return row["rps"]


def ratio_target(result: dict, ours: str, peer: str, at_least: float, label: str | None = None) -> dict:
    a, b = rps_of(result, ours), rps_of(result, peer)
    text = f"{ours} ≥ {at_least:g}× {label or peer}"
    if a is None or b is None:
        t = target(text, None, None)
        t["shown"] = "n/a (" + ("ours" if a is None else peer) + " did not run)"
        return t
    bad = [f"{n} {error_rate(result, n) * 100:.0f}% errors" for n in (ours, peer) if error_rate(result, n) > 0.01]
    if bad:  # throughput of error responses is no throughput
        return target(text, a / b, False, f"{a / b:.2f}× but {', '.join(bad)}")
    return target(text, a / b, a / b >= at_least, f"{a / b:.2f}×")


def error_rate(result: dict, name: str) -> float:
    row = result["servers"].get(name) or {}
    total = row.get("requests") or 0
    return (row.get("non2xx", 0) + row.get("socket_errors", 0)) / total if total else 0.0


def for_run(ctx: Context, variants: list[Variant], quick_keep: tuple[str, ...] | None) -> list[Variant]:
    """In quick mode, only unicorn_aio and the peers its targets name (`quick_keep`)."""
    if not ctx.quick or quick_keep is None:
        return variants
    return [v for v in variants if v.server == OURS or v.name in quick_keep]


def wrk_scenario(ctx: Context, name: str, title: str, variants: list[Variant], *, quick_keep=None, conns: int = 50,
                 wrk_threads: int = 1, headers: tuple[str, ...] = (), wrk_cpus: str | None = None) -> dict:
    """Start every variant, warm each up, then measure them in turn for ctx.rounds rounds."""
    result = {"name": name, "title": title, "kind": "wrk", "servers": {}, "targets": [], "notes": [],
              "load": f"wrk -t{wrk_threads} -c{conns} -d{ctx.duration:g}s" + "".join(f" -H '{h}'" for h in headers)}
    variants = for_run(ctx, variants, quick_keep)
    with Servers(ctx, variants, name) as runs:
        live = [r for r in runs.values() if not r.error]
        for r in live:
            warm(ctx, r, conns, wrk_threads, headers, wrk_cpus)
        per: dict[str, list[dict]] = {r.variant.name: [] for r in live}
        for rnd in range(ctx.rounds):
            for r in live:
                if r.proc.poll() is not None:
                    continue
                server_cpu, client_cpu = tree_cpu_s(r.proc.pid), children_cpu_s()
                res = wrk(r.url, ctx.duration, conns, wrk_threads, headers, wrk_cpus)
                if res["requests"]:  # CPU time per request, µs: where each server's time goes
                    res["server_cpu_us"] = (tree_cpu_s(r.proc.pid) - server_cpu) / res["requests"] * 1e6
                    res["wrk_cpu_us"] = (children_cpu_s() - client_cpu) / res["requests"] * 1e6
                res["rss_kb"] = r.rss_kb()
                per[r.variant.name].append(res)
                log(f"  [{name} r{rnd + 1}] {r.variant.name:<22} {res['rps']:>10.0f} rps  "
                    f"p99 {res['p99_ms'] or float('nan'):.2f} ms  err {res['non2xx'] + res['socket_errors']}"
                    + (f"  listen drops {res['listen_drops']}" if res.get("listen_drops") else "")
                    + (f"  ERROR {res['error']}" if res.get("error") else ""))
        for v in variants:
            r = runs[v.name]
            if r.error:
                result["servers"][v.name] = {"error": r.error.splitlines()[0], "detail": r.error}
            elif not per.get(v.name):
                result["servers"][v.name] = {"error": f"exited during the run; log tail:\n{r.log_tail()}"}
            else:
                result["servers"][v.name] = {**median_of(per[v.name]), "server": v.server}
    return result


def hello_peers(threads: int = 4) -> list[Variant]:
    return [
        Variant("bjoern", "bjoern"),
        Variant("granian", "granian"),
        Variant("gunicorn-sync", "gunicorn-sync"),
        Variant("gunicorn-gthread", "gunicorn-gthread", threads=threads),
        Variant("waitress", "waitress", threads=threads),
        Variant("uvicorn+a2wsgi", "uvicorn+a2wsgi"),
    ]


def sc_hello(ctx: Context) -> dict:
    r = wrk_scenario(ctx, "hello", "hello world, keep-alive, thread-pool mode (4 threads)",
                     [Variant(OURS, OURS, threads=4), *hello_peers(), Variant(FLOOR, FLOOR)],
                     quick_keep=("bjoern", "granian", "gunicorn-sync"))
    r["targets"] = [ratio_target(r, OURS, "bjoern", 0.7), ratio_target(r, OURS, "granian", 2.5),
                    ratio_target(r, OURS, "gunicorn-sync", 10)]
    floor, granian = rps_of(r, FLOOR), rps_of(r, "granian")
    if floor and granian:
        r["notes"].append(
            f"{FLOOR}: a protocol on unicorn_aio's own stack that parses each request and writes "
            f"a constant answer, no WSGI (bench/floor.py): {floor:,.0f} rps, where 2.5× granian "
            f"is {2.5 * granian:,.0f}.")
    return r


def sc_inline(ctx: Context) -> dict:
    inline = f"{OURS} inline"
    r = wrk_scenario(ctx, "inline", "hello world, keep-alive, inline dispatch (app on the loop thread)",
                     [Variant(inline, OURS, dispatch="inline"), Variant(OURS, OURS, threads=4),
                      Variant("bjoern", "bjoern"), Variant("granian", "granian"),
                      Variant(REFERENCE, REFERENCE)], quick_keep=("bjoern", "granian", REFERENCE))
    r["ours"] = inline
    # Issue #22: inline is the fast mode, and the thread pool not far behind granian.
    r["targets"] = [ratio_target(r, inline, "bjoern", 0.9), ratio_target(r, inline, "granian", 1.0),
                    ratio_target(r, inline, OURS, 1.1, "the thread pool"),
                    ratio_target(r, inline, REFERENCE, 1.0),
                    ratio_target(r, OURS, "granian", 0.85)]
    r["notes"].append(f"{REFERENCE}: ../shared/bench/reference_wsgi.py, 116 lines of Python on the "
                      "same stack, full environ, app called inline, none of our checks or timeouts.")
    return r


BASELINE: tuple[str, Path] | None = None  # (revision, its exported tree), from --baseline REV


def export_revision(rev: str) -> tuple[str, Path]:
    """The package as it was at ``rev``, unpacked into a temporary folder (git archive)."""
    sha = subprocess.run(["git", "rev-parse", "--short", rev], cwd=ROOT, capture_output=True, text=True)
    if sha.returncode:
        raise SystemExit(f"bench: --baseline {rev}: {sha.stderr.strip()}")
    dest = Path(tempfile.mkdtemp(prefix=f"unicorn-base-{sha.stdout.strip()}-"))
    archive = subprocess.Popen(["git", "archive", rev, "unicorn_aio"], cwd=ROOT, stdout=subprocess.PIPE)
    subprocess.run(["tar", "-x", "-C", str(dest)], stdin=archive.stdout, check=True)
    archive.wait()
    return sha.stdout.strip(), dest


def sc_baseline(ctx: Context) -> dict:
    """This tree against an earlier revision of itself, both dispatch modes, in the same run: how
    a refactoring is shown to cost nothing on the request path."""
    if BASELINE is None:
        raise ValueError("the baseline scenario needs --baseline REV")
    rev, tree = BASELINE
    inline, base, base_inline = f"{OURS} inline", f"{OURS}@{rev}", f"{OURS}@{rev} inline"
    r = wrk_scenario(ctx, "baseline", f"hello world, keep-alive: this tree against {rev}",
                     [Variant(OURS, OURS, threads=4), Variant(base, OURS, threads=4, pythonpath=str(tree)),
                      Variant(inline, OURS, dispatch="inline"),
                      Variant(base_inline, OURS, dispatch="inline", pythonpath=str(tree))])
    r["targets"] = [ratio_target(r, OURS, base, 0.95), ratio_target(r, inline, base_inline, 0.95)]
    r["notes"].append("Run-to-run noise: each server's rounds are listed in the JSON (rounds_rps).")
    return r


def sc_close(ctx: Context) -> dict:
    inline = f"{OURS} inline"
    r = wrk_scenario(ctx, "close", "hello world, Connection: close on every request",
                     [Variant(OURS, OURS, threads=4), Variant(inline, OURS, dispatch="inline"),
                      Variant("granian", "granian"), Variant("bjoern", "bjoern"),
                      Variant("gunicorn-sync", "gunicorn-sync")],
                     headers=("Connection: close",), quick_keep=("granian", "bjoern"))
    r["targets"] = [ratio_target(r, OURS, "granian", 1.0)]
    # A connection per request costs both sides a connect and a close: how busy each core was
    # shows how close this scenario runs to what the two cores can do at all.
    busy = {name: (row["rps"] * row["server_cpu_us"] / 1e6, row["rps"] * row["wrk_cpu_us"] / 1e6)
            for name, row in r["servers"].items()
            if name in (OURS, "granian") and row.get("rps") and row.get("wrk_cpu_us")}
    if len(busy) == 2:
        r["cores_busy"] = busy
        r["notes"].append(
            "Cores busy (server CPU " + SERVER_CPUS + " / wrk CPU " + CLIENT_CPUS + "): "
            + ", ".join(f"{name} {srv * 100:.0f}% / {cli * 100:.0f}%" for name, (srv, cli) in busy.items())
            + ". Both near 100% means the run is at what these two cores can do.")
    return r


def sc_sleep(ctx: Context) -> dict:
    vs = [Variant(OURS, OURS, app="sleep10", threads=32), Variant("granian", "granian", app="sleep10", threads=32),
          Variant("gunicorn-gthread", "gunicorn-gthread", app="sleep10", threads=32),
          Variant("waitress", "waitress", app="sleep10", threads=32),
          Variant("uvicorn+a2wsgi", "uvicorn+a2wsgi", app="sleep10")]
    r = wrk_scenario(ctx, "sleep10", "app sleeps 10 ms, 32 threads, 200 connections", vs, conns=200,
                     quick_keep=("granian",))
    ours = rps_of(r, OURS)
    r["targets"] = [
        target("unicorn_aio ≥ 97% of 3200 rps (32 threads / 10 ms)", None if ours is None else ours / 3200,
               None if ours is None else ours / 3200 >= 0.97, None if ours is None else f"{ours:,.0f} rps = {ours / 32:.2f}%"),
        ratio_target(r, OURS, "granian", 1.0, "granian (ahead)"),
    ]
    r["notes"].append("uvicorn+a2wsgi uses a2wsgi's own pool of 32 threads.")
    ceiling = sleepers_ceiling(ctx.duration)
    if ceiling and ours:
        r["ceiling_rps"] = ceiling
        granian = rps_of(r, "granian")
        r["notes"].append(
            f"Measured ceiling: 32 threads sleeping 10 ms in a loop, with no server, complete "
            f"{ceiling:,.0f} sleeps per second on CPU {SERVER_CPUS} (bench/sleepers.py): unicorn_aio "
            f"serves {ours / ceiling * 100:.1f}% of that"
            + (f", granian {granian / ceiling * 100:.1f}%." if granian else "."))
    return r


def sleepers_ceiling(seconds: float) -> float | None:
    """Sleeps per second of sleep10's threads alone, pinned where the servers run."""
    try:
        out = subprocess.run(["taskset", "-c", SERVER_CPUS, sys.executable, "-m", "bench.sleepers",
                              str(seconds)], capture_output=True, text=True, timeout=seconds + 30,
                             check=True, cwd=ROOT)
        return json.loads(out.stdout)["rate"]
    except (subprocess.SubprocessError, OSError, ValueError, KeyError) as exc:
        log(f"  sleepers ceiling not measured: {exc}")
        return None


def sc_big(ctx: Context) -> dict:
    vs = [Variant(OURS, OURS, app="big", threads=4), Variant("granian", "granian", app="big"),
          Variant("gunicorn-sync", "gunicorn-sync", app="big"), Variant("bjoern", "bjoern", app="big"),
          Variant("waitress", "waitress", app="big", threads=4)]
    r = wrk_scenario(ctx, "big", "1 MiB response body, keep-alive, 10 connections", vs, conns=10,
                     quick_keep=("granian", "gunicorn-sync"))
    r["targets"] = [ratio_target(r, OURS, "granian", 1.0), ratio_target(r, OURS, "gunicorn-sync", 2.0)]
    return r


def sc_asgi(ctx: Context) -> dict:
    vs = [Variant(OURS, OURS, app="asgi_hello"), Variant("uvicorn", "uvicorn+a2wsgi", app="asgi_hello"),
          Variant("granian asgi", "granian", app="asgi_hello")]
    r = wrk_scenario(ctx, "asgi", "ASGI hello world, keep-alive (uvicorn: httptools + uvloop)", vs)
    r["targets"] = [ratio_target(r, OURS, "uvicorn", 1.0), ratio_target(r, OURS, "uvicorn", 1.2),
                    ratio_target(r, OURS, "granian asgi", 1.0)]
    return r


def framework_scenario(ctx: Context, name: str, app: str, title: str) -> dict:
    """TechEmpower's JSON test in a real framework (bench/apps.py), both dispatch modes."""
    inline = f"{OURS} inline"
    vs = [Variant(OURS, OURS, app=app, threads=4), Variant(inline, OURS, app=app, dispatch="inline"),
          Variant("bjoern", "bjoern", app=app), Variant("granian", "granian", app=app),
          Variant(REFERENCE, REFERENCE, app=app), Variant("gunicorn-sync", "gunicorn-sync", app=app)]
    return wrk_scenario(ctx, name, title, vs, quick_keep=("bjoern", "granian"))


def sc_flask(ctx: Context) -> dict:
    r = framework_scenario(ctx, "flask", "flask_json",
                           "Flask, TechEmpower's JSON test (jsonify per request), keep-alive")
    r["targets"] = [ratio_target(r, OURS, "bjoern", 0.95), ratio_target(r, OURS, "granian", 1.2)]
    return r


def sc_django(ctx: Context) -> dict:
    r = framework_scenario(ctx, "django", "django_json",
                           "Django, TechEmpower's JSON test (JsonResponse, no middleware), keep-alive")
    r["notes"].append("Reported, no target (issue #22).")
    return r


def sc_deploy(ctx: Context) -> dict:
    """The seeds' recommended deployment: (2 x cores) + 1 workers, everything unpinned."""
    count = 2 * (os.cpu_count() or 1) + 1
    inline = f"{OURS} inline"
    # The defaults, as the seeds deploy: one app thread per worker (gunicorn's sync worker).
    vs = [Variant(OURS, OURS, threads=1, workers=count, cpus=ALL_CPUS),
          Variant(inline, OURS, dispatch="inline", workers=count, cpus=ALL_CPUS),
          Variant("granian", "granian", workers=count, cpus=ALL_CPUS),
          Variant("gunicorn-sync", "gunicorn-sync", workers=count, cpus=ALL_CPUS)]
    r = wrk_scenario(ctx, "deploy", f"hello world, {count} workers ((2 x cores) + 1), unpinned, "
                     "wrk -t1 -c100", vs, conns=100, wrk_cpus=ALL_CPUS)
    r["targets"] = [ratio_target(r, OURS, "granian", 1.0), ratio_target(r, OURS, "gunicorn-sync", 8)]
    r["notes"].append("Servers and wrk share both cores: context switches among workers, app "
                      "threads and wrk count here.")
    return r


def sc_accesslog(ctx: Context) -> dict:
    on = f"{OURS} +access log"
    vs = [Variant(OURS, OURS, threads=4), Variant(on, OURS, threads=4, access_log=True),
          Variant("gunicorn-sync", "gunicorn-sync"),
          Variant("gunicorn-sync +access log", "gunicorn-sync", access_log=True)]
    r = wrk_scenario(ctx, "accesslog", "hello world with the access log written to a file", vs)
    a, b = rps_of(r, on), rps_of(r, OURS)
    drop = None if a is None or b is None else 1 - a / b
    shown = None if drop is None else (f"{drop * 100:.1f}% drop" if drop >= 0 else f"no drop ({-drop * 100:.1f}% faster)")
    r["targets"] = [target("unicorn_aio access log costs ≤ 25% rps", drop, None if drop is None else drop <= 0.25,
                           shown)]
    g_on, g_off = rps_of(r, "gunicorn-sync +access log"), rps_of(r, "gunicorn-sync")
    if g_on and g_off:
        r["notes"].append(f"gunicorn sync loses {(1 - g_on / g_off) * 100:.1f}% with its access log.")
    return r


def sc_metrics(ctx: Context) -> dict:
    # Both without the control socket, the stats' other reader: "off" counts nothing per request.
    on = f"{OURS} +metrics"
    vs = [Variant(OURS, OURS, threads=4, extra=("--no-control-socket",)),
          Variant(on, OURS, threads=4, extra=("--no-control-socket", "--metrics-bind", f"{HOST}:0"))]
    r = wrk_scenario(ctx, "metrics", "hello world with and without --metrics-bind", vs)
    a, b = rps_of(r, on), rps_of(r, OURS)
    drop = None if a is None or b is None else 1 - a / b
    shown = None if drop is None else (f"{drop * 100:.1f}% drop" if drop >= 0 else f"no drop ({-drop * 100:.1f}% faster)")
    r["targets"] = [target("--metrics-bind costs ≤ 3% rps", drop, None if drop is None else drop <= 0.03, shown)]
    r["notes"].append("Per request a worker adds one record (status class, duration bucket, body bytes), "
                      "and sends its totals once a second with its heartbeat; nothing scrapes during the run.")
    return r


def sc_workers(ctx: Context) -> dict:
    vs = []
    for name, server, kw in ((OURS, OURS, {"threads": 4}), ("granian", "granian", {}),
                             ("gunicorn-sync", "gunicorn-sync", {})):
        vs += [Variant(f"{name} 1w", server, cpus=ALL_CPUS, workers=1, **kw),
               Variant(f"{name} 2w", server, cpus=ALL_CPUS, workers=2, **kw)]
    r = wrk_scenario(ctx, "workers", "2 workers vs 1 (servers and wrk unpinned, both cores)", vs, conns=100,
                     wrk_threads=1, wrk_cpus=ALL_CPUS)
    r["ours"] = f"{OURS} 2w"
    r["targets"] = [ratio_target(r, f"{OURS} 2w", f"{OURS} 1w", 1.7, "unicorn_aio 1 worker")]
    for name in ("granian", "gunicorn-sync"):
        a, b = rps_of(r, f"{name} 2w"), rps_of(r, f"{name} 1w")
        if a and b:
            r["notes"].append(f"{name}: 2 workers give {a / b:.2f}× one worker.")
    r["notes"].append("Only 2 cores: wrk shares them with the server here, which caps every server's scaling.")
    one, two = r["servers"].get(f"{OURS} 1w", {}), r["servers"].get(f"{OURS} 2w", {})
    if one.get("rps") and two.get("server_cpu_us") and two.get("wrk_cpu_us"):
        # 1 worker runs on one core; 2 workers and wrk share both, each request costing the
        # server's CPU plus wrk's: the most any 2 workers could serve here, from this run.
        ceiling = 2 / ((two["server_cpu_us"] + two["wrk_cpu_us"]) / 1e6)
        r["ceiling_ratio"] = ceiling / one["rps"]
        r["notes"].append(
            f"Measured ceiling: with 2 workers a request cost {two['server_cpu_us']:.1f} µs of server "
            f"CPU and {two['wrk_cpu_us']:.1f} µs of wrk's; 2 cores then serve at most "
            f"{ceiling / 1000:.1f}k rps, {r['ceiling_ratio']:.2f}× the 1-worker run.")
    return r


def _request_once(port: int) -> None:
    with socket.create_connection((HOST, port), timeout=5) as s:
        s.sendall(b"GET / HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n")
        while s.recv(65536):
            pass


def sc_rss(ctx: Context) -> dict:
    """Idle memory of each server with one worker, after 50 requests."""
    vs = [Variant(OURS, OURS, threads=4), *hello_peers()]
    result = {"name": "rss", "title": "idle memory, 1 worker, after 50 requests", "kind": "rss", "servers": {},
              "targets": [], "notes": ["worker RSS: mean RSS of the processes that serve (no master)."]}
    with Servers(ctx, vs, "rss") as runs:
        for r in runs.values():
            if not r.error:
                for _ in range(50):
                    _request_once(r.port)
        time.sleep(0.5)
        for v in vs:
            r = runs[v.name]
            if r.error:
                result["servers"][v.name] = {"error": r.error.splitlines()[0], "detail": r.error}
                continue
            pids = tree_pids(r.proc.pid)
            table = _proc_table()
            leaves = [p for p in pids if not any(table.get(q, (0, 0))[0] == p for q in pids)] or pids
            rss = {p: _status_kb(p, "VmRSS") for p in pids}
            result["servers"][v.name] = {
                "server": v.server, "rss_kb": sum(rss.values()), "pss_kb": sum(_pss_kb(p) for p in pids),
                "processes": len(pids), "worker_rss_kb": round(sum(rss[p] for p in leaves) / len(leaves)),
            }
    ours, peer = result["servers"].get(OURS, {}), result["servers"].get("gunicorn-sync", {})
    if ours.get("worker_rss_kb") and peer.get("worker_rss_kb"):
        a, b = ours["worker_rss_kb"], peer["worker_rss_kb"]
        result["targets"].append(target("worker RSS ≤ gunicorn sync's", a / b, a <= b,
                                        f"{a / 1024:.1f} vs {b / 1024:.1f} MiB"))
    else:
        result["targets"].append(target("worker RSS ≤ gunicorn sync's", None, None))
    return result


# ----- uploads


def upload(port: int, size: int, chunked: bool, deadline_s: float, on_tick=None) -> dict:
    """Stream `size` bytes as one request body; return throughput and the server's answer."""
    block = memoryview(b"u" * (256 * 1024))
    head = [b"POST /upload HTTP/1.1", b"Host: bench", b"Content-Type: application/octet-stream"]
    head.append(b"Transfer-Encoding: chunked" if chunked else b"Content-Length: %d" % size)
    frame = b"%x\r\n" % len(block)
    t0 = time.perf_counter()
    sent = 0
    try:
        with socket.create_connection((HOST, port), timeout=10) as s:
            s.sendall(b"\r\n".join(head) + b"\r\n\r\n")
            while sent < size:
                n = min(len(block), size - sent)
                if chunked:
                    s.sendall((frame if n == len(block) else b"%x\r\n" % n))
                    s.sendall(block[:n])
                    s.sendall(b"\r\n")
                else:
                    s.sendall(block[:n])
                sent += n
                if time.perf_counter() - t0 > deadline_s:
                    raise TimeoutError(f"still sending after {deadline_s:.0f}s")
            if chunked:
                s.sendall(b"0\r\n\r\n")
            answer = read_response(s)
        elapsed = time.perf_counter() - t0
        status = answer.split(b"\r\n", 1)[0].decode(errors="replace")
        body = answer.split(b"\r\n\r\n", 1)[1].strip() if b"\r\n\r\n" in answer else b""
        ok = status.split(" ")[1:2] == ["200"] and body == str(size).encode()
        res = {"mb_s": size / elapsed / 1e6, "seconds": elapsed, "status": status, "bytes_seen": body.decode()[:40]}
        if not ok:
            res["error"] = f"answer {status!r}, body {body[:40]!r} (expected {size})"
        return res
    except (OSError, TimeoutError) as e:
        elapsed = time.perf_counter() - t0
        return {"mb_s": sent / elapsed / 1e6, "seconds": elapsed,
                "error": f"{type(e).__name__}: {e} after {sent / 2**20:.0f} MiB"}


def read_response(s: socket.socket) -> bytes:
    """One HTTP response with a Content-Length body (or up to EOF without one)."""
    data = b""
    while True:
        if b"\r\n\r\n" in data:
            head, body = data.split(b"\r\n\r\n", 1)
            m = re.search(rb"(?im)^content-length:\s*(\d+)", head)
            if m and len(body) >= int(m.group(1)):
                return data
        piece = s.recv(65536)
        if not piece:
            return data
        data += piece


class PeakRss(threading.Thread):
    """Peak RSS of a process tree over a `with` block.

    Two sources, the larger wins: the kernel's per-process high-water mark (VmHWM, reset on entry
    through /proc/PID/clear_refs, which needs root or the same user), and samples every 10 ms
    summed over the tree (what the HWM misses when it cannot be reset).
    """

    def __init__(self, pid: int):
        super().__init__(daemon=True)
        self.pids, self.peak, self._done, self._hwm_ok = tree_pids(pid), 0, threading.Event(), True

    def run(self) -> None:
        while not self._done.is_set():
            self.peak = max(self.peak, sum(_status_kb(p, "VmRSS") for p in self.pids))
            self._done.wait(0.01)

    def __enter__(self) -> "PeakRss":
        for p in self.pids:
            try:
                with open(f"/proc/{p}/clear_refs", "w") as f:
                    f.write("5")  # 5: reset the peak resident set size (Documentation/filesystems/proc.rst)
            except OSError:
                self._hwm_ok = False
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self._done.set()
        self.join()
        if self._hwm_ok:
            self.peak = max(self.peak, sum(_status_kb(p, "VmHWM") for p in self.pids))


def sc_upload(ctx: Context) -> dict:
    size = (256 if ctx.quick else 1024) * 2**20
    deadline = 20.0 if ctx.quick else 60.0
    base = [(OURS, OURS, {"threads": 4}), ("granian", "granian", {}), ("gunicorn-sync", "gunicorn-sync", {}),
            ("waitress", "waitress", {"threads": 4}), ("uvicorn+a2wsgi", "uvicorn+a2wsgi", {}), ("bjoern", "bjoern", {})]
    vs = for_run(ctx, [Variant(n, s, app="upload", **kw) for n, s, kw in base], ("granian", "gunicorn-sync"))
    result = {"name": "upload", "title": f"{size // 2**20} MiB upload, app reads wsgi.input in 64 KiB chunks",
              "kind": "upload", "servers": {}, "targets": [],
              "notes": ["growth: peak RSS of the server tree during the upload minus RSS before it.",
                        "waitress spools request bodies to a temporary file before calling the app."]}
    with Servers(ctx, vs, "upload") as runs:
        for chunked in (False, True):
            mode = "chunked" if chunked else "content-length"
            for v in vs:
                r = runs[v.name]
                key = f"{v.name} [{mode}]"
                if r.error:
                    result["servers"][key] = {"error": r.error.splitlines()[0], "detail": r.error}
                    continue
                if r.proc.poll() is not None:
                    result["servers"][key] = {"error": "server exited earlier in this scenario"}
                    continue
                upload(r.port, 2**20, chunked, 10)  # warm: the first body allocates the buffers
                time.sleep(0.2)
                before = r.rss_kb()
                with PeakRss(r.proc.pid) as peak:
                    res = upload(r.port, size, chunked, deadline)
                res.update(server=v.server, mode=mode, rss_kb=before,
                           rss_growth_kb=max(0, peak.peak - before))
                result["servers"][key] = res
                log(f"  [upload] {key:<34} {res['mb_s']:>8.0f} MB/s  RSS +{res['rss_growth_kb'] / 1024:.1f} MiB"
                    + (f"  ERROR {res['error']}" if res.get("error") else ""))
    for mode in ("content-length", "chunked"):
        row = result["servers"].get(f"{OURS} [{mode}]", {})
        if "rss_growth_kb" in row and not row.get("error"):
            g = row["rss_growth_kb"] / 1024
            result["targets"].append(target(f"{mode}: RSS grows ≤ 5 MiB", g, g <= 5, f"+{g:.1f} MiB"))
        else:
            result["targets"].append(target(f"{mode}: RSS grows ≤ 5 MiB", None, None))
    return result


# ----- idle keep-alive connections


def open_idle(port: int, count: int, deadline_s: float) -> tuple[list[socket.socket], int]:
    """`count` connections that each completed one request and stay open (keep-alive).

    Opened 250 at a time; gives up at the deadline (a server that stops accepting, or stops
    answering, makes connects and reads hang until their timeout).
    """
    socks, failed = [], 0
    deadline = time.monotonic() + deadline_s
    for start_i in range(0, count, 250):
        if time.monotonic() > deadline:
            failed += count - start_i
            break
        batch = []
        for _ in range(min(250, count - start_i)):
            try:
                s = socket.create_connection((HOST, port), timeout=2)
                s.sendall(b"GET / HTTP/1.1\r\nHost: bench\r\n\r\n")
                batch.append(s)
            except OSError:
                failed += 1
        if not batch:  # the server accepts no more: waiting out more timeouts shows nothing new
            failed += count - start_i - 250
            break
        for s in batch:
            try:
                s.settimeout(max(0.1, min(2.0, deadline - time.monotonic())))
                got = b""
                while b"Hello, World!\n" not in got:
                    piece = s.recv(4096)
                    if not piece:
                        raise ConnectionResetError("closed")
                    got += piece
                socks.append(s)
            except OSError:
                failed += 1
                s.close()
    return socks, failed


def still_open(socks: list[socket.socket]) -> int:
    n = 0
    for s in socks:
        s.setblocking(False)
        try:
            if s.recv(1, socket.MSG_PEEK):
                n += 1
        except BlockingIOError:
            n += 1
        except OSError:
            pass
    return n


def sc_idle(ctx: Context) -> dict:
    count = 10_000
    # Each server's own connection cap raised as a user holding 10k clients would.
    vs = [Variant(OURS, OURS, threads=4, keep_alive=300, extra=("--worker-connections", "20000")),
          Variant("granian", "granian", extra=("--backpressure", "20000", "--backlog", "4096")),
          Variant("uvicorn+a2wsgi", "uvicorn+a2wsgi", keep_alive=300), Variant("bjoern", "bjoern")]
    vs = for_run(ctx, vs, ("granian", "bjoern"))
    result = {"name": "idle", "title": f"hello rps with {count} idle keep-alive connections held open",
              "kind": "idle", "servers": {}, "targets": [], "load": f"wrk -t1 -c50 -d{ctx.duration:g}s",
              "notes": ["Each idle connection has completed one request and stays open, sending nothing."]}
    with Servers(ctx, vs, "idle") as runs:
        for v in vs:
            r = runs[v.name]
            if r.error:
                result["servers"][v.name] = {"error": r.error.splitlines()[0], "detail": r.error}
                continue
            warm(ctx, r)
            base = median_of([wrk(r.url, ctx.duration) for _ in range(ctx.rounds)])
            time.sleep(0.3)
            rss0 = r.rss_kb()
            socks, failed = open_idle(r.port, count, 15 if ctx.quick else 30)
            try:
                time.sleep(0.5)
                rss1 = r.rss_kb()
                loaded = median_of([wrk(r.url, ctx.duration) for _ in range(ctx.rounds)])
                held = still_open(socks)
            finally:
                for s in socks:
                    s.close()
            row = {**loaded, "server": v.server, "rps_without_idle": base["rps"], "idle_opened": len(socks),
                   "idle_failed": failed, "idle_still_open_after": held, "rss_kb": rss1,
                   "rss_per_idle_conn_b": (rss1 - rss0) * 1024 / len(socks) if socks else None}
            row["rps_drop"] = 1 - loaded["rps"] / base["rps"] if base["rps"] else None
            result["servers"][v.name] = row
            log(f"  [idle] {v.name:<22} {base['rps']:>8.0f} -> {loaded['rps']:>8.0f} rps, opened {len(socks)} "
                f"(failed {failed}, still open {held}), {row['rss_per_idle_conn_b'] or 0:.0f} B/conn")
    row = result["servers"].get(OURS, {})
    if row.get("rps_drop") is not None and row.get("idle_opened") == count:
        d, per = row["rps_drop"], row["rss_per_idle_conn_b"]
        shown = f"{d * 100:.1f}% drop" if d >= 0 else f"no drop ({-d * 100:.1f}% faster)"
        result["targets"] = [target("hello rps drops ≤ 10%", d, d <= 0.10, shown),
                             target("RSS per idle connection ≤ 3 KiB", per, per <= 3072, f"{per:.0f} B")]
    else:
        result["targets"] = [target("hello rps drops ≤ 10%", None, None),
                             target("RSS per idle connection ≤ 3 KiB", None, None)]
    return result


def hold_longpolls(port: int, count: int, hold_s: float, sample) -> dict:
    """Send `count` long-poll requests at once on fresh connections; sample RSS while they all
    wait; then collect every answer. Runs its own asyncio loop in this (the harness) process."""
    import asyncio

    async def one(answers: list) -> None:
        reader, writer = await asyncio.open_connection(HOST, port)
        try:
            writer.write(b"GET /poll HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n")
            data = await asyncio.wait_for(reader.read(), hold_s + 30)
            answers.append(data.startswith(b"HTTP/1.1 200") and data.endswith(b"done\n"))
        finally:
            writer.close()

    async def main() -> dict:
        answers: list[bool] = []
        started = time.monotonic()
        tasks = []
        for i in range(0, count, 500):  # in batches, so the connect storm stays in the backlog
            tasks += [asyncio.ensure_future(one(answers)) for _ in range(min(500, count - i))]
            await asyncio.sleep(0.05)
        opened_s = time.monotonic() - started
        await asyncio.sleep(max(0.0, hold_s - opened_s) / 2)  # all waiting in the app now
        peak = sample()
        results = await asyncio.gather(*tasks, return_exceptions=True)
        return {"answered": sum(answers), "errors": sum(isinstance(r, BaseException) for r in results),
                "rss_peak_kb": peak, "seconds": time.monotonic() - started, "open_s": opened_s}

    return asyncio.run(main())


def sc_longpoll(ctx: Context) -> dict:
    count = 2_000 if ctx.quick else 10_000
    from bench.apps import LONGPOLL_SECONDS
    vs = [Variant(OURS, OURS, app="asgi_longpoll", extra=("--worker-connections", "20000")),
          Variant("uvicorn", "uvicorn+a2wsgi", app="asgi_longpoll"),
          Variant("granian asgi", "granian", app="asgi_longpoll",
                  extra=("--backpressure", "20000", "--backlog", "4096"))]
    vs = for_run(ctx, vs, ("uvicorn",))
    result = {"name": "longpoll", "kind": "longpoll",
              "title": f"{count} concurrent ASGI long-polls, each answered after {LONGPOLL_SECONDS:g} s",
              "servers": {}, "targets": [], "load": f"{count} connections, one request each",
              "notes": ["RSS per connection: peak RSS of the server tree while every request waits, "
                        "minus its RSS before, divided by the connections."]}
    with Servers(ctx, vs, "longpoll") as runs:
        for v in vs:
            r = runs[v.name]
            if r.error:
                result["servers"][v.name] = {"error": r.error.splitlines()[0], "detail": r.error}
                continue
            time.sleep(0.3)
            rss0 = r.rss_kb()
            got = hold_longpolls(r.port, count, LONGPOLL_SECONDS, r.rss_kb)
            row = {**got, "server": v.server, "rss_before_kb": rss0,
                   "rss_per_conn_b": (got["rss_peak_kb"] - rss0) * 1024 / count}
            result["servers"][v.name] = row
            log(f"  [longpoll] {v.name:<16} answered {got['answered']}/{count} in {got['seconds']:.1f} s, "
                f"{row['rss_per_conn_b']:.0f} B/conn")
    row = result["servers"].get(OURS, {})
    if "answered" in row:
        result["targets"] = [target(f"all {count} long-polls answered by one worker", row["answered"],
                                    row["answered"] == count, f"{row['answered']}/{count}")]
    return result


# ----- HTTP/2 cleartext (h2c, prior knowledge): h2load instead of wrk

H2C_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + b"\x00\x00\x00\x04\x00\x00\x00\x00\x00"  # + empty SETTINGS


def _h2c_ok(port: int, timeout: float) -> bool:
    """The server answers the HTTP/2 preface with a SETTINGS frame: it is up and speaks h2c."""
    try:
        with socket.create_connection((HOST, port), timeout=timeout) as s:
            s.sendall(H2C_PREFACE)
            head = b""
            while len(head) < 9:
                piece = s.recv(9 - len(head))
                if not piece:
                    return False
                head += piece
            return head[3] == 0x4  # frame type SETTINGS
    except OSError:
        return False


def parse_h2load(out: str) -> dict:
    res = {"rps": 0.0, "protocol": None, "requests": 0, "succeeded": 0, "failed": 0, "errored": 0, "timeout": 0,
           "non2xx": 0, "socket_errors": 0, "mean_ms": None, "max_ms": None, "p50_ms": None, "p99_ms": None}
    if m := re.search(r"Application protocol: (\S+)", out):
        res["protocol"] = m.group(1)
    if m := re.search(r"finished in [\d.]+\w+, ([\d.]+) req/s", out):
        res["rps"] = float(m.group(1))
    if m := re.search(r"requests: (\d+) total, \d+ started, \d+ done, (\d+) succeeded, (\d+) failed, "
                      r"(\d+) errored, (\d+) timeout", out):
        res["requests"], res["succeeded"], res["failed"], res["errored"], res["timeout"] = map(int, m.groups())
    if m := re.search(r"status codes: (\d+) 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx", out):
        res["non2xx"] = sum(int(g) for g in m.groups()[1:])
    if m := re.search(r"time for request:\s+(\S+)\s+(\S+)\s+(\S+)", out):
        res["max_ms"], res["mean_ms"] = _ms(m.group(2)), _ms(m.group(3))
    # What the ratios count as errors (as wrk's socket errors): requests that got no response.
    res["socket_errors"] = res["failed"] + res["errored"] + res["timeout"]
    return res


def h2load(url: str, duration: float, conns: int = 10, streams: int = 10, warm_up_s: float = 0) -> dict:
    """h2load over h2c prior knowledge: `conns` connections, `streams` streams in flight on each,
    for `duration` seconds (after `warm_up_s`, which h2load leaves out of its count)."""
    cmd = ["taskset", "-c", CLIENT_CPUS, "h2load", "-c", str(conns), "-m", str(streams), "-t", "1",
           "-D", str(max(1, round(duration)))]
    if warm_up_s:
        cmd += ["--warm-up-time", f"{warm_up_s:g}"]
    cmd.append(url)
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=duration + warm_up_s + 20)
    except subprocess.TimeoutExpired:
        return {**parse_h2load(""), "error": "h2load did not finish in time"}
    res = parse_h2load(done.stdout)
    # With prior knowledge h2load says "h2c" whatever the server speaks: only HTTP/2 responses
    # (h2load parses nothing else) prove the server spoke it.
    if res["protocol"] != "h2c" or not res["succeeded"]:
        res["error"] = (f"no HTTP/2 response: h2load's protocol {res['protocol'] or 'none'}, "
                        f"{res['succeeded']} succeeded" + (f"; {m.group(0)}" if (m := re.search(r"requests: .*", done.stdout)) else ""))
    elif done.returncode:
        res["error"] = (done.stderr.strip() or done.stdout.strip())[-200:] or f"h2load exit {done.returncode}"
    return res


H2C_ENGINE_H2 = f"{OURS} (h2 engine)"


def sc_h2c(ctx: Context) -> dict:
    """Hello over h2c prior knowledge (issue #20): one worker each, `h2load -c 10 -m 10`."""
    name, conns, streams = "h2c", 10, 10
    h2c = ("--http-protocols", "h2,h1", "--http2-cleartext", "prior-knowledge")
    vs = [Variant(OURS, OURS, threads=4, extra=h2c),
          Variant(H2C_ENGINE_H2, OURS, threads=4, extra=h2c, env=(("UNICORN_AIO_H2_ENGINE", "h2"),)),
          Variant(f"{OURS} inline", OURS, dispatch="inline", extra=h2c),  # beside the default pool
          Variant("granian", "granian", extra=("--http", "2")),  # after the default --http 1: the last wins
          Variant("gunicorn-gthread", "gunicorn-gthread", threads=4, extra=h2c),
          Variant("hypercorn", "hypercorn")]
    result = {"name": name, "title": "hello over HTTP/2 cleartext (h2c prior knowledge), 1 worker", "kind": "h2load",
              "servers": {}, "targets": [], "notes": [],
              "load": f"h2load -c {conns} -m {streams} -t 1 -D {ctx.duration:g}"}
    if not shutil.which("h2load"):
        raise RuntimeError("h2load is not installed (Debian's nghttp2-client; bench/setup.sh installs it)")
    vs = for_run(ctx, vs, ("granian", "gunicorn-gthread", "hypercorn"))
    with Servers(ctx, vs, name, probe=_h2c_ok) as runs:
        live = [r for r in runs.values() if not r.error]
        for r in live:
            h2load(r.url, max(1, ctx.warmup), conns, streams)
        per: dict[str, list[dict]] = {r.variant.name: [] for r in live}
        for rnd in range(ctx.rounds):
            for r in live:
                if r.proc.poll() is not None:
                    continue
                server_cpu, client_cpu = tree_cpu_s(r.proc.pid), children_cpu_s()
                res = h2load(r.url, ctx.duration, conns, streams)
                if res["requests"]:  # CPU time per request, µs, as in wrk_scenario
                    res["server_cpu_us"] = (tree_cpu_s(r.proc.pid) - server_cpu) / res["requests"] * 1e6
                    res["h2load_cpu_us"] = (children_cpu_s() - client_cpu) / res["requests"] * 1e6
                res["rss_kb"] = r.rss_kb()
                per[r.variant.name].append(res)
                log(f"  [{name} r{rnd + 1}] {r.variant.name:<22} {res['rps']:>10.0f} rps  {res['protocol']}  "
                    f"mean {res['mean_ms'] or float('nan'):.2f} ms  failed {res['socket_errors']} "
                    f"non-2xx {res['non2xx']}" + (f"  ERROR {res['error']}" if res.get("error") else ""))
        for v in vs:
            r = runs[v.name]
            if r.error:
                result["servers"][v.name] = {"error": r.error.splitlines()[0], "detail": r.error}
            elif not per.get(v.name):
                result["servers"][v.name] = {"error": f"exited during the run; log tail:\n{r.log_tail()}"}
            else:
                row = {**median_of(per[v.name]), "server": v.server}
                # An HTTP/1.1 number must never pass for an HTTP/2 one: without HTTP/2
                # responses in any round the row is an error. A round answered by none (a
                # stall) is left out of the median, and said.
                spoke = [x for x in per[v.name] if x.get("protocol") == "h2c" and x.get("succeeded")]
                silent = len(per[v.name]) - len(spoke)
                if not spoke:
                    row["error"] = f"no HTTP/2 response in any round: {per[v.name][0].get('error', '')}"
                    log(f"  ! {v.name}: {row['error']}")
                elif silent:
                    row = {**median_of(spoke), "server": v.server, "rounds_rps": row["rounds_rps"]}
                    result["notes"].append(f"{v.name} answered nothing in {silent} of {len(per[v.name])} "
                                           "rounds (h2load: 0 done), left out of its median.")
                    log(f"  ! {v.name}: answered nothing in {silent} round(s)")
                result["servers"][v.name] = row
    ours = result["servers"].get(OURS, {})
    rounds = per.get(OURS, []) if ours.get("requests") else []
    # Every round counts here, not the median's: a failed request or a stalled round is a bug.
    bad = sum(x["socket_errors"] + x["non2xx"] + (0 if x["succeeded"] else 1) for x in rounds) if rounds else None
    result["targets"] = [
        ratio_target(result, OURS, "granian", 0.3), ratio_target(result, OURS, "gunicorn-gthread", 5,
                                                                  "gunicorn 27 gthread"),
        ratio_target(result, OURS, "hypercorn", 5),
        target("unicorn_aio: 0 failed, errored or non-2xx requests, in every round", bad, bad == 0 if bad is not None else None,
               None if bad is None else f"{bad:,} in {sum(x['requests'] for x in rounds):,} requests, "
                                        f"{len(rounds)} rounds"),
    ]
    # Started, answered the preface with SETTINGS (_h2c_ok) and every round's requests over h2c.
    wrong = [n for n, row in result["servers"].items() if row.get("error") or row.get("protocol") != "h2c"]
    result["targets"].append(target("every server answered over HTTP/2 (h2c)", len(wrong), not wrong,
                                    "all h2c" if not wrong else "not shown h2c: " + ", ".join(wrong)))
    for n in wrong:
        log(f"  ! {name}: {n} was not measured over HTTP/2: {result['servers'][n].get('error')}")
    # This machine is shared: two steadier views of the same ratios, per round (both servers
    # measured within seconds of each other) and by CPU time per request.
    mine = result["servers"].get(OURS, {})
    for peer in ("granian", "gunicorn-gthread", "hypercorn"):
        theirs = result["servers"].get(peer, {})
        pairs = [a / b for a, b in zip(mine.get("rounds_rps", []), theirs.get("rounds_rps", [])) if a and b]
        if pairs and mine.get("server_cpu_us") and theirs.get("server_cpu_us"):
            result["notes"].append(
                f"{OURS} ÷ {peer}: per round {', '.join(f'{x:.2f}' for x in pairs)} (median "
                f"{sorted(pairs)[(len(pairs) - 1) // 2]:.2f}×); by CPU time per request "
                f"{theirs['server_cpu_us'] / mine['server_cpu_us']:.2f}× ({mine['server_cpu_us']:.1f} µs "
                f"against {theirs['server_cpu_us']:.1f}).")
    peers = [(p, rps_of(result, p)) for p in ("granian", "gunicorn-gthread", "hypercorn")]
    h2 = rps_of(result, H2C_ENGINE_H2)
    if h2:
        result["notes"].append(f"{H2C_ENGINE_H2} (UNICORN_AIO_H2_ENGINE=h2, python-hyper h2): "
                               + ", ".join(f"{h2 / b:.2f}× {p}" for p, b in peers if b) + ".")
    inline = rps_of(result, f"{OURS} inline")
    if inline:
        result["notes"].append(f"{OURS} inline (`--dispatch inline`, the app on the loop's thread): "
                               + ", ".join(f"{inline / b:.2f}× {p}" for p, b in peers if b) + ".")
    result["notes"].append("Each server: one worker; unicorn_aio and gunicorn gthread with 4 app threads, "
                           "granian with its default blocking threads, hypercorn's asyncio worker (WSGI in its "
                           "executor). h2load reports no percentiles: mean and max time per request are shown.")
    return result


SCENARIOS = {
    "hello": sc_hello, "inline": sc_inline, "close": sc_close, "sleep10": sc_sleep, "big": sc_big,
    "upload": sc_upload, "idle": sc_idle, "workers": sc_workers, "rss": sc_rss, "accesslog": sc_accesslog,
    "asgi": sc_asgi, "longpoll": sc_longpoll, "metrics": sc_metrics, "baseline": sc_baseline,
    "flask": sc_flask, "django": sc_django, "deploy": sc_deploy,
    "h2c": sc_h2c,
}
QUICK = ["rss", "hello", "inline", "close", "sleep10", "big", "asgi", "upload", "idle"]


# ---------------------------------------------------------------------------------------------
# Report


def cpu_busy(sample_s: float = 0.3) -> float:
    """Fraction of all CPUs busy over a short sample, from /proc/stat (0.0 idle .. 1.0 saturated)."""
    def snap() -> tuple[int, int]:
        with open("/proc/stat") as f:
            v = [int(x) for x in f.readline().split()[1:]]
        return sum(v), v[3] + v[4]  # total, idle + iowait
    t0, i0 = snap()
    time.sleep(sample_s)
    t1, i1 = snap()
    return 1 - (i1 - i0) / (t1 - t0) if t1 > t0 else 0.0


def wait_quiet(max_wait_s: float, busy_below: float = 0.2) -> float:
    """Waits (at most max_wait_s) until other processes leave the CPUs mostly idle; returns busy."""
    deadline = time.monotonic() + max_wait_s
    busy = cpu_busy()
    while busy >= busy_below and time.monotonic() < deadline:
        busy = cpu_busy(1.0)
    return busy


def machine_info() -> dict:
    cpu = ""
    try:
        cpu = next((ln.split(":", 1)[1].strip() for ln in open("/proc/cpuinfo") if ln.startswith("model name")), "")
    except OSError:
        pass
    versions = {}
    for dist in ("unicorn_aio", "gunicorn", "granian", "bjoern", "waitress", "uvicorn", "a2wsgi", "uvloop",
                 "httptools", "matplotlib", "hypercorn", "h2", "cffi"):
        try:
            versions[dist] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            versions[dist] = None
    wrk_v = subprocess.run(["wrk", "-v"], capture_output=True, text=True).stdout.splitlines()[:1]
    versions["wrk"] = wrk_v[0].split(" [")[0].removeprefix("wrk ") if wrk_v else None
    if shutil.which("h2load"):
        h2v = subprocess.run(["h2load", "--version"], capture_output=True, text=True).stdout.split()
        versions["h2load"] = h2v[-1].removeprefix("nghttp2/") if h2v else None
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                                cwd=ROOT).stdout.strip()
    except OSError:
        commit = ""
    # The servers run from this tree (cwd=ROOT): compiled if make compile built it (setup.py).
    build = subprocess.run(_py("-c", "import unicorn_aio; print(unicorn_aio.compiled())"), cwd=ROOT,
                           capture_output=True, text=True).stdout.strip()
    return {"cpu": cpu, "cores": os.cpu_count(), "kernel": platform.release(), "python": platform.python_version(),
            "loadavg_at_start": os.getloadavg(), "commit": commit, "versions": versions,
            "unicorn_aio_build": {"True": "compiled (mypyc)", "False": "interpreted"}.get(build, "unknown"),
            "pinning": {"servers": SERVER_CPUS, "client": CLIENT_CPUS, "workers_scenario": ALL_CPUS}}


def fmt_rps(x) -> str:
    return "–" if not x else f"{x:,.0f}"


def fmt_ms(x) -> str:
    return "–" if x is None else (f"{x:.2f}" if x < 100 else f"{x:.0f}")


def fmt_mb(kb) -> str:
    return "–" if not kb else f"{kb / 1024:.1f}"


def verdict(t: dict) -> str:
    return {True: "✅ pass", False: "❌ fail", None: "⚪ n/a"}[t["pass"]]


def render_md(report: dict) -> str:
    m = report["machine"]
    out = [f"# unicorn_aio benchmark — {report['date']}", "",
           f"{'Quick run' if report['quick'] else 'Full run'}: {report['rounds']} round(s) of {report['duration']:g} s "
           f"per server, median round shown. Servers on CPU {SERVER_CPUS}, wrk on CPU {CLIENT_CPUS} (`taskset`). "
           f"Load average at start: {', '.join(f'{x:.2f}' for x in m['loadavg_at_start'])}"
           + (f", at end: {', '.join(f'{x:.2f}' for x in m['loadavg_at_end'])}" if m.get("loadavg_at_end") else "")
           + " (shared machine).", "",
           f"Machine: {m['cpu']} ×{m['cores']}, Linux {m['kernel']}, Python {m['python']}, commit {m['commit']}"
           + (f", unicorn_aio {m['unicorn_aio_build']}" if m.get("unicorn_aio_build") else "") + ".",
           "Versions: " + ", ".join(f"{k} {v}" for k, v in m["versions"].items() if v) + ".", ""]
    busy = [sc["name"] for sc in report["scenarios"] if sc.get("cpu_busy_at_start", 0) >= 0.2]
    if busy:
        out += [f"⚠ Other processes kept the CPUs ≥ 20% busy when these started: {', '.join(busy)}. "
                "Their numbers carry that noise (`--wait-quiet S` waits for a quiet machine).", ""]
    if report["unavailable"]:
        out += ["Unavailable peers: " + "; ".join(f"**{k}**: {v}" for k, v in report["unavailable"].items()), ""]
    out += ["## Targets", "", "| scenario | target | measured | verdict |", "|---|---|---|---|"]
    for sc in report["scenarios"]:
        for t in sc["targets"]:
            out.append(f"| {sc['name']} | {t['text']} | {t['shown']} | {verdict(t)} |")
    for sc in report["scenarios"]:
        out += ["", f"## {sc['name']}: {sc['title']}", ""]
        said = [f"Load: `{sc['load']}`."] if sc.get("load") else []
        if sc.get("loadavg_1m_at_start") is not None:
            said.append(f"When it started, other processes kept the CPUs {sc.get('cpu_busy_at_start', 0) * 100:.0f}% "
                        f"busy (1-minute load average {sc['loadavg_1m_at_start']:.2f}).")
        if said:
            out += [" ".join(said), ""]
        ours = sc.get("ours", OURS)
        rows = sc["servers"]
        if sc["kind"] == "wrk":
            base = rows.get(ours, {}).get("rps")
            out += [f"| server | rps | p50 ms | p99 ms | errors | listen drops¹ | RSS MiB | CPU µs/req² | {ours} ÷ server |",
                    "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
            for name, r in rows.items():
                if r.get("error"):
                    out.append(f"| {name} | {r['error']} | | | | | | | |")
                    continue
                ratio = f"{base / r['rps']:.2f}×" if base and r.get("rps") and name != ours else ""
                errs = r["non2xx"] + r["socket_errors"]
                cpu = f"{r['server_cpu_us']:.1f}" if r.get("server_cpu_us") else ""
                out.append(f"| {name} | {fmt_rps(r['rps'])} | {fmt_ms(r['p50_ms'])} | {fmt_ms(r['p99_ms'])} | "
                           f"{errs:,} | {r.get('listen_drops', 0):,} | {fmt_mb(r.get('rss_kb'))} | {cpu} | {ratio} |")
        elif sc["kind"] == "h2load":
            base = rows.get(ours, {}).get("rps")
            out += [f"| server | protocol | rps | mean ms | max ms | failed | non-2xx | RSS MiB | CPU µs/req² | {ours} ÷ server |",
                    "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
            for name, r in rows.items():
                if not r.get("rps"):
                    out.append(f"| {name} | {r.get('error', '?')} | | | | | | | | |")
                    continue
                ratio = f"{base / r['rps']:.2f}×" if base and name != ours else ""
                proto = (r.get("protocol") or "none") if not r.get("error") else f"❌ {r['error']}"
                cpu = f"{r['server_cpu_us']:.1f}" if r.get("server_cpu_us") else ""
                out.append(f"| {name} | {proto} | {fmt_rps(r['rps'])} | {fmt_ms(r['mean_ms'])} | {fmt_ms(r['max_ms'])} | "
                           f"{r['socket_errors']:,} | {r['non2xx']:,} | {fmt_mb(r.get('rss_kb'))} | {cpu} | {ratio} |")
        elif sc["kind"] == "upload":
            out += ["| server [framing] | MB/s | seconds | RSS before MiB | RSS growth MiB | note |", "|---|---:|---:|---:|---:|---|"]
            for name, r in rows.items():
                if "mb_s" not in r:
                    out.append(f"| {name} | {r['error']} | | | | |")
                    continue
                out.append(f"| {name} | {r['mb_s']:,.0f} | {r['seconds']:.2f} | {fmt_mb(r['rss_kb'])} | "
                           f"{r['rss_growth_kb'] / 1024:.1f} | {r.get('error', '')} |")
        elif sc["kind"] == "idle":
            out += ["| server | rps without | rps with idle | drop | p99 ms | idle opened | still open | B per idle conn | RSS MiB |",
                    "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
            for name, r in rows.items():
                if r.get("error") and "rps_without_idle" not in r:
                    out.append(f"| {name} | {r['error']} | | | | | | | |")
                    continue
                drop = "–" if r["rps_drop"] is None else f"{r['rps_drop'] * 100:.1f}%"
                per = "–" if r["rss_per_idle_conn_b"] is None else f"{r['rss_per_idle_conn_b']:.0f}"
                out.append(f"| {name} | {fmt_rps(r['rps_without_idle'])} | {fmt_rps(r['rps'])} | {drop} | "
                           f"{fmt_ms(r['p99_ms'])} | {r['idle_opened']:,} | {r['idle_still_open_after']:,} | {per} | "
                           f"{fmt_mb(r['rss_kb'])} |")
        elif sc["kind"] == "longpoll":
            out += ["| server | answered | errors | seconds | RSS before MiB | RSS peak MiB | B per connection |",
                    "|---|---:|---:|---:|---:|---:|---:|"]
            for name, r in rows.items():
                if "answered" not in r:
                    out.append(f"| {name} | {r['error']} | | | | | |")
                    continue
                out.append(f"| {name} | {r['answered']:,} | {r['errors']:,} | {r['seconds']:.1f} | "
                           f"{fmt_mb(r['rss_before_kb'])} | {fmt_mb(r['rss_peak_kb'])} | {r['rss_per_conn_b']:,.0f} |")
        elif sc["kind"] == "rss":
            out += ["| server | processes | RSS total MiB | PSS total MiB | worker RSS MiB |", "|---|---:|---:|---:|---:|"]
            for name, r in rows.items():
                if r.get("error"):
                    out.append(f"| {name} | {r['error']} | | | |")
                    continue
                out.append(f"| {name} | {r['processes']} | {fmt_mb(r['rss_kb'])} | {fmt_mb(r['pss_kb'])} | "
                           f"{fmt_mb(r['worker_rss_kb'])} |")
        out.append("")
        for t in sc["targets"]:
            out.append(f"- target: {t['text']} → {t['shown']} {verdict(t)}")
        for n in sc["notes"]:
            out.append(f"- {n}")
    out += ["", "¹ TcpExt ListenDrops during the run, machine-wide: SYNs dropped on a full accept queue, each "
            "costing its client a 1 s retransmit (p99 near 1000 ms).", "",
            "² User + system CPU time of the server's whole process tree during the median round, per "
            "request (wrk's own is in the JSON as wrk_cpu_us).", "",
            "Charts: `rps.png` (requests/s per server per scenario), `latency.png` (p50/p99).", ""]
    return "\n".join(out)


def plot(report: dict, prefix: str = "") -> list[str]:
    """rps.png (throughput, upload MB/s included) and latency.png (p50/p99), one panel per scenario."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch

    written = []
    for fname, kinds in (("rps.png", ("wrk", "idle", "upload", "h2load")), ("latency.png", ("wrk", "idle"))):
        panels = [s for s in report["scenarios"] if s["kind"] in kinds]
        if not panels:
            continue
        nrows = (len(panels) + 1) // 2
        fig, axes = plt.subplots(nrows, 2, figsize=(14, 3.3 * nrows), squeeze=False)
        for ax, sc in zip(axes.flat, panels):
            ours = sc.get("ours", OURS)
            key = "mb_s" if sc["kind"] == "upload" else "rps"
            names = [n for n, r in sc["servers"].items() if r.get(key) and not r.get("error")]
            colors = ["tab:orange" if n.startswith(OURS) else "tab:blue" for n in names]
            y = list(range(len(names)))
            if fname == "rps.png":
                vals = [sc["servers"][n][key] for n in names]
                ax.barh(y, vals, color=colors)
                for i, v in enumerate(vals):
                    ax.text(v, i, f" {v:,.0f}", va="center", fontsize=8)
                ax.set_xlabel("MB / s" if key == "mb_s" else "requests / s")
                ax.set_xlim(0, max(vals, default=1) * 1.22)
            else:
                p50 = [sc["servers"][n]["p50_ms"] or 0 for n in names]
                p99 = [sc["servers"][n]["p99_ms"] or 0 for n in names]
                ax.barh([i - 0.2 for i in y], p50, height=0.4, color="tab:green")
                ax.barh([i + 0.2 for i in y], p99, height=0.4, color="tab:red")
                for i, (a, b) in enumerate(zip(p50, p99)):
                    ax.text(a, i - 0.2, f" {a:.2f}", va="center", fontsize=7)
                    ax.text(b, i + 0.2, f" {b:.2f}", va="center", fontsize=7)
                ax.set_xlabel("latency, ms")
                ax.set_xlim(0, max(p99, default=1) * 1.18)
            ax.ticklabel_format(axis="x", style="plain")
            ax.set_yticks(y)
            ax.set_yticklabels(names, fontsize=8)
            for lbl in ax.get_yticklabels():
                if lbl.get_text() == ours:
                    lbl.set_fontweight("bold")
            ax.invert_yaxis()
            ax.set_title(f"{sc['name']}: {sc['title']}", fontsize=9)
        for ax in list(axes.flat)[len(panels):]:
            ax.axis("off")
        what = "throughput" if fname == "rps.png" else "latency (wrk --latency)"
        fig.suptitle(f"unicorn_aio vs peers, {what} — {report['date']} ({'quick' if report['quick'] else 'full'}"
                     f" run, median of {report['rounds']}) — server CPU {SERVER_CPUS}, wrk CPU {CLIENT_CPUS}",
                     fontsize=11)
        if fname == "latency.png":
            fig.legend(handles=[Patch(color="tab:green", label="p50"), Patch(color="tab:red", label="p99")],
                       loc="upper right", fontsize=9)
        fig.tight_layout(rect=(0, 0, 1, 0.98))
        fig.savefig(RESULTS / f"{prefix}{fname}", dpi=90)
        plt.close(fig)
        written.append(fname)
    return written


# ---------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="subset of scenarios, 1 round, short runs (< 2 min)")
    ap.add_argument("--only", help=f"comma-separated scenarios: {', '.join(SCENARIOS)}")
    ap.add_argument("--rounds", type=int, help="rounds per scenario (default 3, quick 1)")
    ap.add_argument("--duration", type=int, help="whole seconds per wrk run (default 4, quick 2)")
    ap.add_argument("--wait-quiet", type=float, default=0, metavar="S",
                    help="before each scenario, wait up to S seconds for the CPUs to be < 20%% busy")
    ap.add_argument("--out", default="latest", help="basename of the .json/.md in bench/results/")
    ap.add_argument("--baseline", metavar="REV",
                    help="git revision to measure this tree against in the baseline scenario")
    args = ap.parse_args(argv)

    global BASELINE
    if args.baseline:
        BASELINE = export_revision(args.baseline)
    default = [n for n in SCENARIOS if n != "baseline"] + (["baseline"] if args.baseline else [])
    names = args.only.split(",") if args.only else (QUICK if args.quick else default)
    unknown = [n for n in names if n not in SCENARIOS]
    if unknown:
        ap.error(f"unknown scenario {', '.join(unknown)}; choose from {', '.join(SCENARIOS)}")
    if not shutil.which("wrk"):
        ap.error("wrk is not installed (make bench installs it with apt-get)")
    if not shutil.which("taskset"):
        ap.error("taskset is not installed (util-linux)")

    global SERVER_CPUS, CLIENT_CPUS, ALL_CPUS
    if (os.cpu_count() or 1) < 2:
        SERVER_CPUS = CLIENT_CPUS = ALL_CPUS = "0"
    os.sched_setaffinity(0, {int(c) for c in CLIENT_CPUS.split(",")})
    _raise_nofile()

    RESULTS.mkdir(parents=True, exist_ok=True)
    workdir = Path(tempfile.mkdtemp(prefix="unicorn-bench-"))
    ctx = Context(quick=args.quick, rounds=args.rounds or (1 if args.quick else 3),
                  duration=args.duration or (2 if args.quick else 4), warmup=0 if args.quick else 1,
                  workdir=workdir, unavailable=unavailable_servers())
    for k, v in ctx.unavailable.items():
        log(f"unavailable: {k}: {v}")
    report = {"date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"), "quick": args.quick,
              "rounds": ctx.rounds, "duration": ctx.duration, "machine": machine_info(),
              "unavailable": ctx.unavailable, "scenarios": [], "logs": str(workdir)}
    t0 = time.monotonic()
    interrupted = False
    budget = 110 if args.quick and not (args.rounds or args.duration) else 14 * 60

    def on_sigterm(signum, frame):
        raise KeyboardInterrupt  # unwinds through every Servers context: all servers get stopped

    signal.signal(signal.SIGTERM, on_sigterm)
    try:
        for name in names:
            if time.monotonic() - t0 > budget:
                log(f"== {name}: skipped, the run is past its {budget}s budget")
                report["scenarios"].append({"name": name, "title": f"skipped: run past its {budget}s budget",
                                            "kind": "skipped", "servers": {}, "targets": [], "notes": []})
                continue
            log(f"== {name}")
            t = time.monotonic()
            busy = wait_quiet(args.wait_quiet)
            load = os.getloadavg()[0]
            try:
                report["scenarios"].append(SCENARIOS[name](ctx))
                report["scenarios"][-1]["loadavg_1m_at_start"] = load
                report["scenarios"][-1]["cpu_busy_at_start"] = round(busy, 3)
            except Exception as e:  # one broken scenario must not lose the others' numbers
                log(f"  ! scenario {name} failed: {type(e).__name__}: {e}")
                report["scenarios"].append({"name": name, "title": f"failed: {type(e).__name__}: {e}",
                                            "kind": "failed", "servers": {}, "targets": [], "notes": []})
            log(f"   ({time.monotonic() - t:.0f}s)")
    except KeyboardInterrupt:
        interrupted = True
        log("interrupted: writing what was measured")
    report["elapsed_s"] = round(time.monotonic() - t0, 1)
    report["machine"]["loadavg_at_end"] = os.getloadavg()
    (RESULTS / f"{args.out}.json").write_text(json.dumps(report, indent=1) + "\n")
    (RESULTS / f"{args.out}.md").write_text(render_md(report))
    try:
        plot(report, "" if args.out == "latest" else f"{args.out}-")
    except ImportError as e:
        log(f"no charts: {e}")
    log(f"\nwrote {RESULTS}/{args.out}.json and .md in {report['elapsed_s']:.0f}s; server logs in {workdir}")
    print(render_md(report).split("## Targets", 1)[1].split("\n## ", 1)[0])
    return 130 if interrupted else 0


if __name__ == "__main__":
    sys.exit(main())
