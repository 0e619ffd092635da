"""The master's process plumbing: --daemon, and its --pid file.

``daemonize`` detaches as gunicorn does (double fork, new session, stdio to /dev/null), with one
difference: the command that started us waits on a pipe until the master reports its first
workers serving (it then exits 0), or why it could not start (it then says why in one line
and exits with the master's status) - a failed start never looks like a successful one.
"""

from __future__ import annotations

import os
import sys

from unicorn_aio.errors import ConfigError


def daemonize(keep_stdio: bool) -> int:
    """Detach; returns the write end of the start report (see report_start)."""
    read_end, write_end = os.pipe()
    if os.fork():
        os.close(write_end)
        _await_start_report(read_end)  # never returns
    os.close(read_end)
    os.setsid()
    if os.fork():
        os._exit(0)
    if not keep_stdio:
        devnull = os.open(os.devnull, os.O_RDWR)
        for fd in (0, 1, 2):
            os.dup2(devnull, fd)
        os.close(devnull)
    return write_end


def report_start(fd: int, code: int, message: str) -> None:
    """Tell the waiting command the master's exit status (0: serving) and why; closes ``fd``."""
    try:
        os.write(fd, f"{code} {message}\n".encode("utf-8", "replace"))
    except OSError:
        pass
    os.close(fd)


def _await_start_report(read_end: int) -> None:
    report = b""
    while chunk := os.read(read_end, 4096):
        report += chunk
        if b"\n" in report:
            break
    code, _, message = report.decode("utf-8", "replace").partition(" ")
    if not code.strip().isdigit():  # the pipe closed with no word: the daemon died
        code, message = "1", "the daemon exited during startup; see the error log\n"
    if message.strip():
        sys.stderr.write(f"unicorn_aio: error: {message.strip()}\n")
    sys.stderr.flush()
    os._exit(int(code))


def write_pidfile(path: str, pid: int, master_pid: int = 0) -> str:
    """Write ``pid`` to ``path``, refusing a file that names another live process (ours after
    USR2, the old master, is fine).  Returns ``path``."""
    try:
        with open(path) as f:
            other = int(f.read().strip() or 0)
    except (FileNotFoundError, ValueError):
        other = 0
    if other and other != pid and other != master_pid and _alive(other):
        raise ConfigError(f"already running on pid {other} (or pid file {path} is stale)")
    tmp = f"{path}.{pid}.tmp"  # written whole, then renamed: never seen half-written
    try:
        with open(tmp, "w") as f:
            f.write(f"{pid}\n")
        os.replace(tmp, path)
    except OSError as exc:
        raise ConfigError(f"cannot write pid file {path!r}: {exc.strerror or exc}") from None
    return path


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
