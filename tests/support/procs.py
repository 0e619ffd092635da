"""Real server processes for tests: start ``python -m unicorn_aio``, find its workers, clean up.

Every server runs in its own session (process group), so cleanup kills exactly the processes
this test started, never anything found by name.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request

SUPPORT = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(SUPPORT))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def children(pid: int) -> list[int]:
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            return [int(p) for p in f.read().split()]
    except FileNotFoundError:
        return []


def open_fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def zombies(pid: int) -> list[int]:
    out = []
    for child in children(pid):
        try:
            with open(f"/proc/{child}/stat") as f:
                if f.read().rsplit(")", 1)[1].split()[0] == "Z":
                    out.append(child)
        except FileNotFoundError:
            pass
    return out


def wait_for(predicate, timeout: float, interval: float = 0.05, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def get(url: str, timeout: float = 5.0) -> tuple[int, bytes]:
    req = urllib.request.Request(url, headers={"Connection": "close"})
    with urllib.request.urlopen(req, timeout=timeout) as resp:
        return resp.status, resp.read()


def stop_session(proc: subprocess.Popen, timeout: float = 10.0) -> None:
    """TERM a master started with start_new_session, wait; then kill what is left of its
    session's process group: only what the test started."""
    if proc.poll() is None:
        try:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            pass
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    proc.wait(5)


class ServerProcess:
    def __init__(self, app: str, *args: str, port: int | None = None, env=None,
                 cwd: str = ROOT, log_path: str | None = None) -> None:
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = log_path
        full_env = dict(os.environ, PYTHONPATH=SUPPORT + os.pathsep + ROOT, PYTHONUNBUFFERED="1")
        full_env.update(env or {})
        # No control socket unless the test asks for one: tests run servers side by side.
        quiet = [] if any(a.startswith("--control-socket") for a in args) else ["--no-control-socket"]
        self.argv = [sys.executable, "-m", "unicorn_aio", app,
                     "--bind", f"127.0.0.1:{self.port}", *quiet, *args]
        self._log = open(log_path, "wb") if log_path else subprocess.DEVNULL
        self.proc = subprocess.Popen(self.argv, cwd=cwd, env=full_env, stdout=self._log,
                                     stderr=subprocess.STDOUT if log_path else subprocess.DEVNULL,
                                     start_new_session=True)
        self.pid = self.proc.pid

    def wait_ready(self, workers: int = 1, timeout: float = 15.0) -> "ServerProcess":
        def ready():
            if self.proc.poll() is not None:
                raise AssertionError(f"server exited with {self.proc.returncode}:\n{self.log()}")
            if len(self.workers()) < workers:
                return False
            try:
                return get(self.url + "/", timeout=1)[0] == 200
            except OSError:
                return False
        wait_for(ready, timeout, what=f"{workers} worker(s) serving on {self.url}")
        return self

    def workers(self) -> list[int]:
        return children(self.pid)

    def signal(self, sig: int) -> None:
        os.kill(self.pid, sig)

    def log(self) -> str:
        if not self.log_path:
            return ""
        with open(self.log_path, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def wait_log(self, text: str, timeout: float = 10.0) -> str:
        return wait_for(lambda: text in self.log() and self.log(), timeout, what=repr(text))

    def stop(self, timeout: float = 10.0) -> int:
        stop_session(self.proc, timeout)
        if self._log is not subprocess.DEVNULL:
            self._log.close()
        return self.proc.returncode
