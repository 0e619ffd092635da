"""One ``python -m unicorn_aio`` for the single-server benches (green.py, stuck.py): started in
its own session on a free loopback port, stopped with its whole process group."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ServerProcess:
    def __init__(self, app: str, args: list[str], log_path: Path) -> None:
        self.port = free_port()
        self.argv = [sys.executable, "-m", "unicorn_aio", app,
                     "--bind", f"127.0.0.1:{self.port}", *args]
        self.log_path = log_path
        self._log = open(log_path, "wb")
        self.proc = subprocess.Popen(self.argv, cwd=ROOT, stdout=self._log, stderr=subprocess.STDOUT,
                                     env=dict(os.environ, PYTHONPATH=str(ROOT)),
                                     start_new_session=True)

    def stop(self) -> None:
        """TERM, then KILL what is left of the session this server started (by its pid)."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                pass
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        self.proc.wait(5)
        self._log.close()
