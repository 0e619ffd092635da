"""The master's side of its children: how it hears that one exited, its record of each worker,
and the words master and workers say to each other.

Hearing of an exit: ``PidfdWatcher`` where the kernel gives pidfds (Linux 5.3 and later), each
child's pidfd readable once it has exited, one more event on the loop, naming that child alone.
``PollWatcher`` elsewhere (macOS, the BSDs, an old kernel, a sandbox that refuses pidfd_open):
``waitpid(pid, WNOHANG)`` for each watched child every ``POLL_PERIOD``, and at once when the
master has a hint (a worker's channel closed, as it does when the worker dies).  Not SIGCHLD:
uvloop refuses a handler for it (it keeps it for its own subprocesses).  Both wait for our own
pids only, never ``waitpid(-1)``, which would steal the exit of a hook's subprocess.

``UNICORN_AIO_CHILD_WATCHER=pidfd`` or ``=poll`` forces one; the master reads it once as it
starts, and the tests run the master under both.

Messages on a worker's socketpair are single bytes.  Worker to master: ``BOOTED`` serving,
``BEAT`` alive, ``RETIRE`` replace me (max-requests, memory, --reload).  Master to worker:
``HAND_OFF``: your siblings serve, leave new clients to them while your replacement boots.
With its beats a worker also sends its running totals, in the framed ``STATS`` message of
stats.py (fleet.py splits them from the single bytes).
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import socket
from typing import Callable, Protocol

from unicorn_aio.errors import ConfigError

CHILD_WATCHER_ENV = "UNICORN_AIO_CHILD_WATCHER"
POLL_PERIOD = 0.25  # PollWatcher: the longest an exit goes unnoticed without a hint

BOOTED, BEAT, RETIRE, HAND_OFF = b"B", b".", b"R", b"H"
WORKER_BOOT_ERROR = 3  # gunicorn's exit codes: the master halts instead of respawning
APP_LOAD_ERROR = 4


def heartbeat_interval(timeout: float) -> float:
    """How often a worker beats, and how often the master looks for one gone silent: well
    inside --timeout (a hang is caught within 1.25 times it), but at most once a second."""
    return min(1.0, timeout / 4) if timeout else 1.0


class WorkerProcess:
    """The master's record of one worker (the ``worker`` gunicorn's master hooks receive)."""

    def __init__(self, age: int, generation: int, channel: socket.socket) -> None:
        self.age = age
        self.generation = generation
        self.channel = channel  # the master's end of the worker's socketpair
        self.pid = 0            # once forked
        self.last_beat = 0.0    # loop time of its last message
        self.booted = False
        self.aborted = False
        self.aborted_at = 0.0
        self.killed = False      # we sent SIGKILL, so its death is no mystery
        self.retiring = False    # asked to be replaced (max-requests, memory, --reload)
        self.handed_off = False  # told to leave new clients to its siblings
        self.stopping = False    # we sent TERM/QUIT

    def exit_report(self, code: int) -> tuple[int, str] | None:
        """What the master logs as this worker exits with ``code`` (-N: killed by signal N),
        as a log level and gunicorn's words; None when the exit was asked for and says nothing,
        or was clean (0: the worker logged its own "Worker exiting", as gunicorn's do)."""
        pid = self.pid
        if code < 0:
            name = signal.Signals(-code).name
            if -code == signal.SIGKILL and not self.killed:
                return logging.ERROR, f"Worker (pid:{pid}) was sent SIGKILL! Perhaps out of memory?"
            if self.aborted or self.killed:
                return logging.WARNING, f"Worker (pid:{pid}) killed by {name} after its timeout"
            return None if self.stopping else (logging.ERROR, f"Worker (pid:{pid}) was sent {name}!")
        if self.aborted:
            return (logging.WARNING,
                    f"Worker (pid:{pid}) exited after its timeout (its stacks are above)")
        if code:
            return logging.ERROR, f"Worker (pid:{pid}) exited with code {code}"
        return None


ExitCallback = Callable[[int], None]  # called with the exit code: -N for killed by signal N


class ChildWatcher(Protocol):
    name: str

    def watch(self, pid: int, on_exit: ExitCallback) -> None:
        """Reap ``pid`` (our child) once it exits and call ``on_exit`` with its exit code."""

    def hint(self) -> None:
        """Something suggests a child just exited: look now rather than at the next poll."""

    def forget_in_child(self) -> None:
        """In a forked child: drop the parent's watches without touching the parent's loop."""


class PidfdWatcher:
    name = "pidfd"

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self._pidfds: dict[int, int] = {}

    def watch(self, pid: int, on_exit: ExitCallback) -> None:
        pidfd = os.pidfd_open(pid)
        self._pidfds[pid] = pidfd
        self.loop.add_reader(pidfd, self._reap, pid, on_exit)

    def _reap(self, pid: int, on_exit: ExitCallback) -> None:
        pidfd = self._pidfds.pop(pid)
        self.loop.remove_reader(pidfd)
        os.close(pidfd)
        _, status = os.waitpid(pid, 0)  # the pidfd is readable: it has exited, no wait
        on_exit(os.waitstatus_to_exitcode(status))

    def hint(self) -> None:
        pass  # every exit is an event already

    def forget_in_child(self) -> None:
        for pidfd in self._pidfds.values():
            os.close(pidfd)
        self._pidfds.clear()


class PollWatcher:
    name = "poll"

    def __init__(self, loop: asyncio.AbstractEventLoop, period: float = POLL_PERIOD) -> None:
        self.loop = loop
        self.period = period
        self._watched: dict[int, ExitCallback] = {}
        self._timer: asyncio.TimerHandle | None = None

    def watch(self, pid: int, on_exit: ExitCallback) -> None:
        self._watched[pid] = on_exit
        if self._timer is None:
            self._timer = self.loop.call_later(self.period, self._tick)

    def _tick(self) -> None:
        self._timer = None
        self.sweep()
        if self._watched:
            self._timer = self.loop.call_later(self.period, self._tick)

    def sweep(self) -> None:
        for pid, on_exit in list(self._watched.items()):
            reaped, status = os.waitpid(pid, os.WNOHANG)
            if reaped:
                del self._watched[pid]
                on_exit(os.waitstatus_to_exitcode(status))

    def hint(self) -> None:
        # A worker's channel reaches EOF as its process closes its files, a moment before the
        # kernel makes it a zombie that waitpid can reap: look now, and twice more shortly.
        self.sweep()
        for delay in (0.01, 0.05):
            self.loop.call_later(delay, self.sweep)

    def forget_in_child(self) -> None:
        self._watched.clear()
        self._timer = None  # a handle on the parent's loop, which this process never runs


def pidfd_works() -> bool:
    if not hasattr(os, "pidfd_open"):
        return False
    try:
        os.close(os.pidfd_open(os.getpid()))
    except OSError:  # ENOSYS: a kernel before 5.3; EPERM: a sandbox's seccomp filter
        return False
    return True


def child_watcher(loop: asyncio.AbstractEventLoop, forced: str | None = None) -> ChildWatcher:
    """pidfd where it works, else poll; ``forced`` is CHILD_WATCHER_ENV's value, if set."""
    if forced not in (None, "", "pidfd", "poll"):
        raise ConfigError(f"{CHILD_WATCHER_ENV} must be pidfd or poll, not {forced!r}")
    has_pidfd = pidfd_works()
    if forced == "pidfd" and not has_pidfd:
        raise ConfigError(f"{CHILD_WATCHER_ENV}=pidfd, but this system has no pidfd_open "
                          "(Linux 5.3 and later): unset it or use poll")
    return PidfdWatcher(loop) if has_pidfd and forced != "poll" else PollWatcher(loop)
