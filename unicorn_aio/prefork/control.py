"""The master's control socket: gunicorn's control protocol (unicorn_aio/ctl/protocol.py) on a
unix socket, answered on the master's own event loop, so ``gunicornc`` and ``unicorn_aioc``
can look at the workers and act on them.

The commands act through the paths the signals take, so each behaves as its signal does:
reload, reopen and shutdown signal the master itself (HUP, USR1, TERM or INT: gunicorn does
the same), ``worker add``/``remove`` change the target as TTIN/TTOU do (``set_num_workers``),
and ``worker kill`` stops one worker as the master stops any (``stop_worker``), so it is
replaced rather than counted as a crash.  The per-worker numbers (requests, threads, memory,
the longest request) are what the workers last reported over their heartbeat channel.

Unlike gunicorn's, this server never takes the path from a live server: two instances on one
host would otherwise steal each other's socket, each start leaving the previous one unreachable.
A socket nobody answers on is stale and replaced; at exit the file is removed only if it is
still ours.  The one exception is the old master of a USR2 upgrade: its successor takes over.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import shlex
import signal
import socket
import stat
import struct
import time
from typing import TYPE_CHECKING, Any, Callable, Iterator

from unicorn_aio.ctl.protocol import (
    HEADER,
    ProtocolError,
    decode_payload,
    encode,
    error,
    ok,
    payload_length,
    socket_path,
)
from unicorn_aio.sockets import listener_url, unix_files, unlink_own_files

if TYPE_CHECKING:
    from unicorn_aio.prefork.arbiter import Arbiter

IDLE_TIMEOUT = 300.0  # gunicorn's: a client silent this long is disconnected
PROBE_TIMEOUT = 1.0   # for a server that may answer at the socket we want
MAX_WORKER_STEP = 100  # worker add/remove N: at most this many per command (gunicorn: no cap)
CONFIG_KEYS = (       # gunicorn's "show config" keys, in its order
    "bind", "workers", "worker_class", "threads", "timeout", "graceful_timeout", "keepalive",
    "max_requests", "max_requests_jitter", "worker_connections", "preload_app", "daemon",
    "pidfile", "proc_name", "reload", "dirty_workers", "dirty_apps", "dirty_timeout",
    "control_socket", "control_socket_disable")
HELP = {
    "show all": "Show all processes (arbiter, web workers, dirty workers)",
    "show workers": "List HTTP workers with their status and load",
    "show dirty": "List dirty workers and apps (none: unicorn_aio has no dirty arbiter)",
    "show config": "Show current effective configuration",
    "show stats": "Show server statistics",
    "show listeners": "Show bound sockets",
    "worker add [N]": "Spawn N workers (default 1)",
    "worker remove [N]": "Remove N workers (default 1)",
    "worker kill <PID>": "Gracefully terminate specific worker (it is replaced)",
    "reload": "Graceful reload (HUP)",
    "reopen": "Reopen log files (USR1)",
    "shutdown [graceful|quick]": "Shutdown server (TERM/INT)",
    "help": "Show this help message",
}

# Descriptors a forked worker must not keep: it would hold the socket open after the master
# is gone, and a client (or the next master's probe) would find it "answering".  With each
# one's inode: a client's fd may be closed under us (and its number reused, say for the new
# worker's channel) a moment before its handler forgets it.
_master_fds: dict[int, int] = {}


def _remember(fd: int) -> None:
    with contextlib.suppress(OSError):
        _master_fds[fd] = os.fstat(fd).st_ino


def _close_in_child() -> None:
    for fd, inode in _master_fds.items():
        with contextlib.suppress(OSError):
            if os.fstat(fd).st_ino == inode:
                os.close(fd)
    _master_fds.clear()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_close_in_child)


def open_control_socket(arbiter: Arbiter) -> ControlServer | None:
    """The master's control server, listening; None when disabled or the path is taken
    (said in one WARNING: the master serves on without it)."""
    cfg = arbiter.cfg
    if cfg.control_socket_disable:
        return None
    path = socket_path(cfg.control_socket, arbiter.start_cwd)
    try:
        sock = claim(path, cfg.control_socket_mode, arbiter.master_pid, arbiter.log.warning)
    except OSError as exc:
        arbiter.log.warning("Control socket %s: %s; running without a control socket", path,
                            exc.strerror or exc)
        return None
    if sock is None:
        return None
    server = ControlServer(arbiter, sock, path, cfg.control_socket_mode)
    arbiter.log.info("Control socket listening at %s", path)  # gunicorn's line
    return server


def claim(path: str, mode: int, predecessor: int, warn: Callable[..., None]) -> socket.socket | None:
    """Bind and listen at ``path``, replacing a stale socket; None (after one warning) when a
    live server answers there, unless that server is ``predecessor`` (our USR2 parent)."""
    directory = os.path.dirname(path)
    if not os.path.isdir(directory):
        os.makedirs(directory, mode=0o700, exist_ok=True)
    with _locked(directory):  # two masters starting at once: one probes, replaces, binds
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            st = None
        if st is not None:
            if not stat.S_ISSOCK(st.st_mode):
                warn("Control socket %s: a file that is not a socket is there; running without "
                     "a control socket", path)
                return None
            owner = answering_pid(path)
            if owner is not None and not (predecessor and owner == predecessor):
                who = f"pid {owner}" if owner > 0 else "another process"
                warn("Control socket %s: %s answers there (another server?); running without a "
                     "control socket", path, who)
                return None
            os.unlink(path)  # stale: its server is gone (or is our USR2 predecessor)
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            umask = os.umask(0o777 & ~mode)  # never, even for a moment, wider than mode
            try:
                sock.bind(path)
            finally:
                os.umask(umask)
            os.chmod(path, mode)
            sock.listen(16)
        except BaseException:
            sock.close()
            raise
    sock.setblocking(False)
    return sock


def answering_pid(path: str) -> int | None:
    """None if nobody listens at ``path``; else the listener's pid (0 when the system does
    not say).  A socket we may not connect to is someone else's: it counts as answering."""
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    probe.settimeout(PROBE_TIMEOUT)
    try:
        probe.connect(path)
    except (ConnectionRefusedError, FileNotFoundError):
        return None
    except OSError:
        return 0
    else:
        if not hasattr(socket, "SO_PEERCRED"):
            return 0
        creds = probe.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
        return struct.unpack("3i", creds)[0]
    finally:
        probe.close()


@contextlib.contextmanager
def _locked(directory: str) -> Iterator[None]:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        yield
        return
    try:
        with contextlib.suppress(OSError):  # a filesystem without flock: go on unlocked
            fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the lock


class ControlServer:
    """Answers control clients on the master's loop; ``close()`` at the master's exit."""

    def __init__(self, arbiter: Arbiter, sock: socket.socket, path: str, mode: int) -> None:
        self.arbiter = arbiter
        self.path = path
        self.mode = mode
        self.started = time.time()
        self._writers: set[asyncio.StreamWriter] = set()
        self._server: asyncio.AbstractServer | None = None
        self._listen(sock)

    def _listen(self, sock: socket.socket) -> None:
        self._own = unix_files([sock])
        self._sock = sock
        self._fd = sock.fileno()
        _remember(self._fd)
        self._task = self.arbiter.loop.create_task(self._serve(sock))

    async def _serve(self, sock: socket.socket) -> None:
        try:
            self._server = await asyncio.start_unix_server(self._client, sock=sock)
        except OSError as exc:  # the loop refused the socket: the master serves on without it
            self.arbiter.log.warning("Control socket %s: %s; running without a control socket",
                                     self.path, exc)

    def _stop_listening(self) -> None:
        self._task.cancel()
        if self._server is not None:
            self._server.close()
            self._server = None
        _master_fds.pop(self._fd, None)
        self._sock.close()  # already closed if the server started; not if it never did

    def reclaim(self) -> None:
        """USR2's new master took the path and has exited (removing the file): this master
        carries on, so it listens there again, unless another server answers there now."""
        log = self.arbiter.log
        try:
            sock = claim(self.path, self.mode, 0, log.warning)
        except OSError as exc:
            log.warning("Control socket %s: %s; running without a control socket", self.path,
                        exc.strerror or exc)
            return
        if sock is not None:
            self._stop_listening()
            self._listen(sock)
            log.info("Control socket listening at %s", self.path)

    def close(self) -> None:
        self._stop_listening()
        for writer in list(self._writers):
            writer.close()
        unlink_own_files(self._own)

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        fd = writer.get_extra_info("socket").fileno()
        self._writers.add(writer)
        _remember(fd)
        try:
            while True:
                try:
                    header = await asyncio.wait_for(reader.readexactly(HEADER.size), IDLE_TIMEOUT)
                    message = decode_payload(await reader.readexactly(payload_length(header)))
                except (asyncio.IncompleteReadError, TimeoutError, ProtocolError, OSError):
                    break  # gone, idle or not speaking the protocol: as gunicorn, hang up
                writer.write(encode(self.dispatch(message)))
                await writer.drain()
        except OSError:
            pass
        finally:
            self._writers.discard(writer)
            _master_fds.pop(fd, None)
            writer.close()

    # -- commands ---------------------------------------------------------------------------

    def dispatch(self, message: dict[str, Any]) -> dict[str, Any]:
        """The answer to one request, as gunicorn words it, errors included."""
        request_id = message.get("id", 0)
        command = message.get("command", "")
        if not isinstance(command, str) or not command.strip():
            return error(request_id, "Empty command")
        args = message.get("args") or []
        if not isinstance(args, list):
            return error(request_id, "Invalid argument: args must be a list")
        try:
            parts = shlex.split(command) + [str(a) for a in args]
            return ok(request_id, self.execute(parts))
        except ValueError as exc:
            return error(request_id, f"Invalid argument: {exc}")
        except Exception as exc:
            self.arbiter.log.exception("Control command %r failed", command)
            return error(request_id, f"Command failed: {exc}")

    def execute(self, parts: list[str]) -> dict[str, Any]:
        if not parts:
            raise ValueError("Empty command")
        cmd, rest = parts[0].lower(), parts[1:]
        if cmd == "show":
            target = rest[0].lower() if rest else ""
            if target not in ("all", "workers", "dirty", "config", "stats", "listeners"):
                raise ValueError(f"Unknown show target: {target}" if target else
                                 "Missing show target (all|workers|dirty|config|stats|listeners)")
            show: Callable[[], dict[str, Any]] = getattr(self, "show_" + target)
            return show()
        if cmd in ("worker", "dirty"):
            action = rest[0].lower() if rest else ""
            if cmd == "dirty" and action in ("add", "remove"):
                return {"success": False, "error": "Dirty arbiter not running"}  # gunicorn's
            if cmd == "worker" and action in ("add", "remove"):
                count = max(1, int(rest[1])) if len(rest) > 1 else 1
                if count > MAX_WORKER_STEP:  # a typo's extra zeros must not fork thousands
                    raise ValueError(f"worker {action} takes at most {MAX_WORKER_STEP} workers "
                                     f"at a time, not {count}")
                return self.add_workers(count) if action == "add" else self.remove_workers(count)
            if cmd == "worker" and action == "kill":
                if len(rest) < 2:
                    raise ValueError("Missing PID for worker kill")
                return self.kill_worker(int(rest[1]))
            raise ValueError(f"Unknown {cmd} action: {action}" if action else
                             f"Missing {cmd} action (add|remove{'|kill' * (cmd == 'worker')})")
        if cmd == "reload":
            return self._signal(signal.SIGHUP, {"status": "reloading"})
        if cmd == "reopen":
            return self._signal(signal.SIGUSR1, {"status": "reopening"})
        if cmd == "shutdown":
            mode = rest[0].lower() if rest else "graceful"
            if mode not in ("graceful", "quick"):
                raise ValueError(f"Unknown shutdown mode: {mode} (graceful|quick)")
            sig = signal.SIGINT if mode == "quick" else signal.SIGTERM
            return self._signal(sig, {"status": "shutting_down", "mode": mode})
        if cmd == "help":
            return {"commands": dict(HELP)}
        raise ValueError(f"Unknown command: {cmd}")

    def _signal(self, sig: int, answer: dict[str, Any]) -> dict[str, Any]:
        # To ourselves, as gunicorn: the master handles it exactly as the operator's signal
        # (its log line, its handler, at its point in the supervisor's loop).
        os.kill(self.arbiter.pid, sig)
        return answer

    def add_workers(self, count: int) -> dict[str, Any]:
        arbiter = self.arbiter
        previous = arbiter.num_workers
        arbiter.set_num_workers(previous + count)
        arbiter.wake()
        return {"added": count, "previous": previous, "total": arbiter.num_workers}

    def remove_workers(self, count: int) -> dict[str, Any]:
        arbiter = self.arbiter
        previous = arbiter.num_workers
        total = max(1, previous - count)  # as TTOU, never below one
        if total != previous:
            arbiter.set_num_workers(total)
            arbiter.wake()
        return {"removed": previous - total, "previous": previous, "total": total}

    def kill_worker(self, pid: int) -> dict[str, Any]:
        worker = self.arbiter.workers.get(pid)
        if worker is None:
            return {"success": False, "error": f"Worker {pid} not found"}
        self.arbiter.stop_worker(worker, signal.SIGTERM)
        self.arbiter.wake()  # its replacement starts now, as after a TTOU/TTIN pair
        return {"success": True, "killed": pid}

    def show_workers(self) -> dict[str, Any]:
        rows = self.worker_rows()
        return {"workers": rows, "count": len(rows)}

    def worker_rows(self) -> list[dict[str, Any]]:
        """gunicorn's keys first (pid, age, booted, aborted, last_heartbeat), then ours: what
        each worker last reported over its heartbeat channel (fleet.WorkerStats)."""
        workers = self.arbiter.workers
        rows = []
        for stats in self.arbiter.fleet.workers():  # oldest first, as gunicorn sorts them
            w = workers.get(stats.pid)
            row: dict[str, Any] = {"pid": stats.pid, "age": stats.age, "booted": stats.booted,
                                   "aborted": bool(w and w.aborted),
                                   "last_heartbeat": round(stats.heartbeat_age, 2)}
            row.update((k, v) for k, v in stats.as_json().items()
                       if k not in row and k != "heartbeat_age")
            rows.append(row)
        return rows

    def show_stats(self) -> dict[str, Any]:
        arbiter = self.arbiter
        totals = arbiter.fleet.totals().as_json()
        stats = {
            "uptime": round(time.time() - self.started, 2),
            "pid": arbiter.pid,
            "workers_current": len(arbiter.workers),
            "workers_target": arbiter.num_workers,
            "workers_spawned": arbiter.worker_age,
            # gunicorn counts the TERMs and KILLs it sent; here: the workers that have exited
            "workers_killed": arbiter.worker_age - len(arbiter.workers),
            "reloads": arbiter.generation,  # the reloads applied (one whose workers failed is not)
            "dirty_arbiter_pid": None,
            "stopping": arbiter.stopping,
        }
        stats.update((k, v) for k, v in totals.items() if k not in ("workers", "workers_target"))
        return stats

    def show_config(self) -> dict[str, Any]:
        cfg = self.arbiter.cfg
        config = {key: _plain(getattr(cfg, key)) for key in CONFIG_KEYS}
        config["control_socket"] = self.path
        return config

    def show_listeners(self) -> dict[str, Any]:
        tls = bool(self.arbiter.cfg.certfile)
        listeners = []
        for sock in self.arbiter.listeners:
            if sock.fileno() < 0:
                continue  # closed as the master stops
            kind = {socket.AF_UNIX: "unix", socket.AF_INET: "tcp", socket.AF_INET6: "tcp6"}
            listeners.append({"address": listener_url(sock, tls), "fd": sock.fileno(),
                              "type": kind.get(sock.family, "unknown")})
        return {"listeners": listeners, "count": len(listeners)}

    def show_dirty(self) -> dict[str, Any]:
        return {"enabled": False, "pid": None, "workers": [], "apps": []}

    def show_all(self) -> dict[str, Any]:
        web = [{"pid": r["pid"], "type": "web", "age": r["age"], "booted": r["booted"],
                "last_heartbeat": r["last_heartbeat"]} for r in self.worker_rows()]
        return {"arbiter": {"pid": self.arbiter.pid, "type": "arbiter", "role": "master"},
                "web_workers": web, "web_worker_count": len(web),
                "dirty_arbiter": None, "dirty_workers": [], "dirty_worker_count": 0}


def _plain(value: Any) -> Any:
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return str(value)
