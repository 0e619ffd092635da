"""The master's process plumbing: --daemon, its --pid file, and USR2's new master.

``daemonize`` detaches as gunicorn does (double fork, new session, stdio to /dev/null), with one
difference: the command that started us waits on a pipe until the master reports its first
workers serving (it then exits 0), or why it could not start (it then says why in one line
and exits with the master's status) - a failed start never looks like a successful one.
"""

from __future__ import annotations

import os
import socket
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


def move_pidfile(path: str, new_path: str) -> str:
    """USR2 and back: rename the pid file (app.pid.oldbin names the old master); returns the
    path it has now.  One deleted by hand, or in a read-only directory, stays as it is: never
    a reason to refuse an upgrade (remove_pidfile leaves another master's file alone)."""
    try:
        os.replace(path, new_path)
    except OSError:
        return path
    return new_path


def remove_pidfile(path: str, pid: int) -> None:
    """Remove ``path`` if it still names ``pid``: after USR2 it may be the new master's."""
    try:
        with open(path) as f:
            if int(f.read().strip() or 0) == pid:
                os.unlink(path)
    except (OSError, ValueError):
        pass


def exec_new_master(args: list[str], env: dict[str, str], listeners: list[socket.socket],
                    cwd: str) -> int:
    """USR2: fork, and exec ``python *args`` in ``cwd`` with the listeners inherited."""
    pid = os.fork()
    if pid == 0:
        try:
            for sock in listeners:
                os.set_inheritable(sock.fileno(), True)
            os.chdir(cwd)
            os.execve(sys.executable, [sys.executable, *args], env)
        finally:
            os._exit(1)
    return pid
