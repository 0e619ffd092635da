"""Control-socket helpers for the tests: a short socket path, a command sent with our client
library, and gunicorn's own gunicornc run against a path."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from typing import Any

from unicorn_aio.ctl.protocol import ControlClient


def short_dir() -> str:
    """A directory for sockets: pytest's tmp_path can exceed the 107 bytes of a unix path."""
    return tempfile.mkdtemp(prefix="ua-ctl-")


def remove_dir(path: str) -> None:
    shutil.rmtree(path, ignore_errors=True)


def send(path: str, command: str, timeout: float = 10.0) -> dict[str, Any]:
    """The whole answer (status, data or error) to one command."""
    with ControlClient(path, timeout) as client:
        return client.send(command)


def data(path: str, command: str) -> dict[str, Any]:
    answer = send(path, command)
    assert answer["status"] == "ok", answer
    return answer["data"]


def answers(path: str) -> bool:
    try:
        send(path, "help", timeout=2)
        return True
    except OSError:
        return False


def gunicornc() -> str | None:
    """gunicorn 27's gunicornc from the oracle venv (tests/support/gunicorn_venv.py), or None."""
    import gunicorn_venv

    if gunicorn_venv.ensure():
        return None
    path = os.path.join(gunicorn_venv.VENV, "bin", "gunicornc")
    return path if os.access(path, os.X_OK) else None


def run_gunicornc(exe: str, path: str, command: str, *flags: str,
                  stdin: str | None = None) -> subprocess.CompletedProcess:
    argv = [exe, "-s", path, *flags] + (["-c", command] if command else [])
    return subprocess.run(argv, input=stdin, capture_output=True, text=True, timeout=30)


def wait_booted(path: str, count: int) -> list[dict[str, Any]]:
    """The workers once ``count`` of them serve (a GET answered by one says nothing of the
    others)."""
    from procs import wait_for

    def booted():
        rows = data(path, "show workers")["workers"]
        return rows if sum(w["booted"] for w in rows) == count else None

    return wait_for(booted, 15, what=f"{count} booted workers")
