"""Soak: mixed hostile and normal load against a 2-worker server; fds and RSS must stay flat.

    .bench-venv/bin/python -m bench.soak [--minutes N]     (make soak; default 10 minutes)

Load, all at once for the whole run: wrk on a hello route, and Python clients mixing 1 MB
uploads, 4 MB streamed downloads, pipelining, slow header tricklers, malformed requests (the
fuzz test's mutations), clients that reset mid-upload and clients that read part of a response
and leave.  Every 10 s the server tree's open fds and RSS are sampled.  After a warm-up the
trend must be flat: the least-squares growth over the run stays within a small tolerance.
Writes bench/results/soak.json and soak.png.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RESULTS = os.path.join(ROOT, "bench", "results")
sys.path.insert(0, os.path.join(ROOT, "tests"))

from fuzz_cases import BASES, mutate  # noqa: E402  (the fuzz test's requests and mutations)

SAMPLE_EVERY = 10.0
WARMUP = 30.0
FD_TOLERANCE = 16          # fds of growth over the run, fitted
RSS_TOLERANCE_KB = 12 * 1024


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def tree(pid: int) -> list[int]:
    out = [pid]
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            for child in f.read().split():
                out += tree(int(child))
    except FileNotFoundError:
        pass
    return out


def sample(root: int) -> tuple[int, int]:
    fds = rss = 0
    for pid in tree(root):
        try:
            fds += len(os.listdir(f"/proc/{pid}/fd"))
            with open(f"/proc/{pid}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        rss += int(line.split()[1])
        except (FileNotFoundError, ProcessLookupError):
            pass
    return fds, rss


def slope(xs, ys) -> float:
    n = len(xs)
    mx, my = sum(xs) / n, sum(ys) / n
    den = sum((x - mx) ** 2 for x in xs) or 1.0
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / den


# -- the Python client mix -------------------------------------------------------------------

def _conn(port: int, timeout: float = 10.0) -> socket.socket:
    return socket.create_connection(("127.0.0.1", port), timeout=timeout)


def _drain(s: socket.socket) -> int:
    n = 0
    try:
        while chunk := s.recv(65536):
            n += len(chunk)
    except (ConnectionResetError, socket.timeout):
        pass
    return n


def op_upload(port):
    with _conn(port) as s:
        s.sendall(b"POST /upload HTTP/1.1\r\nHost: s\r\nConnection: close\r\n"
                  b"Content-Length: 1048576\r\n\r\n" + b"u" * 1048576)
        _drain(s)


def op_stream(port):
    with _conn(port) as s:
        s.sendall(b"GET /big?4 HTTP/1.1\r\nHost: s\r\nConnection: close\r\n\r\n")
        _drain(s)


def op_pipeline(port):
    with _conn(port) as s:
        s.sendall(b"GET /pid HTTP/1.1\r\nHost: s\r\n\r\n" * 7
                  + b"GET / HTTP/1.1\r\nHost: s\r\nConnection: close\r\n\r\n")
        _drain(s)


def op_slow(port):
    with _conn(port) as s:
        for b in b"GET / HTTP/1.1\r\nHost: s\r\nX-Slow: 1234567\r\n":
            s.send(bytes([b]))
            time.sleep(0.03)
        s.sendall(b"Connection: close\r\n\r\n")
        _drain(s)


def op_malformed(port, rng):
    kind = rng.choice(["insert", "delete", "replace", "huge"])
    arg = rng.choice([b"\r", b"\n", b"\x00", b" ", b":"]) if kind in ("insert", "replace") \
        else rng.randint(1, 30)
    data = mutate(rng.choice(BASES), [(kind, rng.randrange(200), arg)])
    with _conn(port) as s:
        try:
            s.sendall(data)
            s.shutdown(socket.SHUT_WR)
        except OSError:
            pass
        _drain(s)


def op_reset(port):
    s = _conn(port)
    s.sendall(b"POST /upload HTTP/1.1\r\nHost: s\r\nContent-Length: 4194304\r\n\r\n"
              + b"u" * 200_000)
    time.sleep(0.05)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    s.close()


def op_leave(port):
    s = _conn(port)
    s.sendall(b"GET /big?16 HTTP/1.1\r\nHost: s\r\n\r\n")
    s.recv(100_000)
    s.close()


OPS = [op_upload, op_stream, op_pipeline, op_slow, op_malformed, op_reset, op_leave]


def client(port: int, stop: threading.Event, counts: dict, lock: threading.Lock, seed: int):
    rng = random.Random(seed)
    while not stop.is_set():
        op = rng.choice(OPS)
        try:
            if op is op_malformed:
                op(port, rng)
            else:
                op(port)
            key = op.__name__
        except (OSError, TypeError) as exc:
            key = f"{op.__name__}:{type(exc).__name__}"
        with lock:
            counts[key] = counts.get(key, 0) + 1


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--minutes", type=float, default=10.0)
    ap.add_argument("--clients", type=int, default=8)
    args = ap.parse_args()
    duration = args.minutes * 60
    port = free_port()
    log_path = os.path.join(tempfile.gettempdir(), f"unicorn_aio-soak-{port}.log")
    os.makedirs(RESULTS, exist_ok=True)
    log = open(log_path, "wb")
    env = dict(os.environ, PYTHONPATH=ROOT)
    server = subprocess.Popen(
        [sys.executable, "-m", "unicorn_aio", "tests.hostile_app:app", "--bind",
         f"127.0.0.1:{port}", "--workers", "2", "--threads", "4", "--header-timeout", "2",
         "--body-timeout", "5"], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
        start_new_session=True)
    wrk = None
    stop = threading.Event()
    threads = []
    samples = []
    counts: dict = {}
    lock = threading.Lock()
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                with _conn(port, 1) as s:
                    s.sendall(b"GET / HTTP/1.1\r\nHost: s\r\nConnection: close\r\n\r\n")
                    if _drain(s):
                        break
            except OSError:
                pass
            if time.monotonic() > deadline or server.poll() is not None:
                raise SystemExit("server did not start; see " + log_path)
            time.sleep(0.2)
        wrk = subprocess.Popen(["wrk", "-t1", "-c16", f"-d{int(duration)}s",
                                f"http://127.0.0.1:{port}/"],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                               start_new_session=True)
        for i in range(args.clients):
            t = threading.Thread(target=client, args=(port, stop, counts, lock, i), daemon=True)
            t.start()
            threads.append(t)
        t0 = time.monotonic()
        while True:
            elapsed = time.monotonic() - t0
            fds, rss = sample(server.pid)
            samples.append({"t": round(elapsed, 1), "fds": fds, "rss_kb": rss})
            print(f"t={elapsed:6.0f}s fds={fds} rss={rss / 1024:.1f} MB", flush=True)
            if elapsed >= duration or server.poll() is not None:
                break
            time.sleep(min(SAMPLE_EVERY, max(0.0, duration - elapsed)))
    finally:
        stop.set()
        for t in threads:
            t.join(15)
        wrk_out = ""
        if wrk is not None:
            try:
                wrk_out = wrk.communicate(timeout=30)[0]
            except subprocess.TimeoutExpired:
                os.killpg(wrk.pid, signal.SIGKILL)
                wrk_out = wrk.communicate()[0]
        alive = server.poll() is None
        # Idle again: what is left once the load is gone.
        time.sleep(3)
        idle_fds, idle_rss = sample(server.pid)
        try:
            os.killpg(server.pid, signal.SIGTERM)
            server.wait(15)
        except (subprocess.TimeoutExpired, ProcessLookupError):
            os.killpg(server.pid, signal.SIGKILL)
            server.wait(5)
        log.close()

    steady = [s for s in samples if s["t"] >= WARMUP] or samples
    xs = [s["t"] for s in steady]
    fd_growth = slope(xs, [s["fds"] for s in steady]) * (xs[-1] - xs[0]) if len(xs) > 1 else 0
    rss_growth = slope(xs, [s["rss_kb"] for s in steady]) * (xs[-1] - xs[0]) if len(xs) > 1 else 0
    rps = None
    for line in wrk_out.splitlines():
        if line.startswith("Requests/sec:"):
            rps = float(line.split()[1])
    server_log = open(log_path, encoding="utf-8", errors="replace").read()
    result = {
        "minutes": args.minutes, "samples": samples, "warmup_s": WARMUP,
        "fd_growth_fitted": round(fd_growth, 1), "rss_growth_fitted_kb": round(rss_growth),
        "fd_tolerance": FD_TOLERANCE, "rss_tolerance_kb": RSS_TOLERANCE_KB,
        "idle_after": {"fds": idle_fds, "rss_kb": idle_rss},
        "server_alive_at_end": alive, "wrk_hello_rps": rps, "client_ops": counts,
        "server_tracebacks": server_log.count("Traceback"),
        "worker_restarts": server_log.count("Booting worker") - 2,
        "date": time.strftime("%Y-%m-%d %H:%M:%S"),
    }
    ok = (alive and abs(fd_growth) <= FD_TOLERANCE and rss_growth <= RSS_TOLERANCE_KB
          and result["worker_restarts"] == 0)
    result["pass"] = ok
    with open(os.path.join(RESULTS, "soak.json"), "w") as f:
        json.dump(result, f, indent=1)
    plot(samples, os.path.join(RESULTS, "soak.png"))
    print(json.dumps({k: v for k, v in result.items() if k != "samples"}, indent=1))
    return 0 if ok else 1


def plot(samples, path: str) -> None:
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib missing: no plot")
        return
    ts = [s["t"] / 60 for s in samples]
    fig, ax1 = plt.subplots(figsize=(8, 4))
    ax1.plot(ts, [s["fds"] for s in samples], "b.-", label="open fds")
    ax1.set_xlabel("minutes")
    ax1.set_ylabel("open fds (server tree)", color="b")
    ax2 = ax1.twinx()
    ax2.plot(ts, [s["rss_kb"] / 1024 for s in samples], "r.-", label="RSS")
    ax2.set_ylabel("RSS MB (server tree)", color="r")
    ax1.set_ylim(bottom=0)
    ax2.set_ylim(bottom=0)
    ax1.set_title("unicorn_aio soak: 2 workers under mixed hostile load")
    fig.tight_layout()
    fig.savefig(path, dpi=90)


if __name__ == "__main__":
    sys.exit(main())
