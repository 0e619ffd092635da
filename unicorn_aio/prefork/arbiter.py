"""The master process: binds, forks workers, and keeps the right number of them alive.

One loop a newcomer can read top to bottom (``_supervise``): wait for a signal, a worker's
news or a tick, then ``murder_workers`` (hung ones) and ``manage_workers`` (spawn or retire to
reach the target).  Each signal has its own small ``handle_*`` method, found by name.
Everything arrives as an asyncio event: signals through ``loop.add_signal_handler``, heartbeats
as readable socketpairs, exits through the child watcher (children.py: pidfds on Linux).
"""

from __future__ import annotations

import asyncio
import collections
import functools
import os
import signal
import socket
from typing import Any, Callable

import uvloop

# The serving code is imported here, before any fork: workers share its pages, and one that
# drops privileges (--user) may no longer be able to read the interpreter's own library.
import unicorn_aio.asgi.handler  # noqa: F401
import unicorn_aio.server  # noqa: F401
import unicorn_aio.wsgi.handler  # noqa: F401
from unicorn_aio import __version__, compiled
from unicorn_aio.apploader import load_wsgi_app, one_line
from unicorn_aio.errors import AppBootError, AppImportError, ConfigError
from unicorn_aio.log import logger_for
from unicorn_aio.prefork.children import (
    APP_LOAD_ERROR,
    BOOTED,
    CHILD_WATCHER_ENV,
    HAND_OFF,
    RETIRE,
    WORKER_BOOT_ERROR,
    ChildWatcher,
    WorkerProcess,
    child_watcher,
    heartbeat_interval,
)
from unicorn_aio.prefork.control import ControlServer, open_control_socket
from unicorn_aio.prefork.daemon import (
    daemonize,
    remove_pidfile,
    report_start,
    write_pidfile,
)
from unicorn_aio.prefork.fleet import Fleet
from unicorn_aio.prefork.metrics import MetricsServer
from unicorn_aio.prefork.proctitle import set_proc_title
from unicorn_aio.prefork.systemd import notify
from unicorn_aio.prefork.upgrade import MASTER_PID_ENV, ReloadAndUpgrade
from unicorn_aio.prefork.worker import WORKER_STOP_SIGNALS, run_forked_worker
from unicorn_aio.sockets import (
    INHERIT_ENV,
    accept_queue,
    bind_all,
    listener_url,
    unix_files,
    unlink_own_files,
)

ABORT_GRACE = 1.0      # after SIGABRT (stack dump), seconds before SIGKILL
TICK = 0.5             # the supervisor's longest sleep: respawn delays end on time
CRASH_WINDOW = 60.0    # crashes within this many seconds slow respawning down
BACKLOG_PERIOD = 1.0   # gunicorn.backlog: gunicorn samples once per turn of its 1 s loop
SPAWN_BATCH = 4        # forks per turn of the loop: signals and control commands between them


class HaltServer(Exception):
    def __init__(self, reason: str, exit_status: int = 1) -> None:
        super().__init__(reason)
        self.reason = reason
        self.exit_status = exit_status


class StopServing(Exception):
    def __init__(self, graceful: bool) -> None:
        self.graceful = graceful


class Arbiter(ReloadAndUpgrade):
    SIGNALS = ("HUP", "QUIT", "INT", "TERM", "TTIN", "TTOU", "USR1", "USR2", "WINCH")

    def __init__(self, cfg) -> None:
        self.cfg = cfg
        self.log = logger_for(cfg)
        self.app: Callable[..., Any] | None = None  # --preload (or paste): loaded here
        self.num_workers = cfg.workers
        self.workers: dict[int, WorkerProcess] = {}
        self.listeners: list[socket.socket] = []
        self.pid = os.getpid()
        self.generation = 0
        self.good_generation = -1   # the newest generation that fully booted
        self.worker_age = 0
        self.reexec_pid = 0
        self.master_pid = int(os.environ.pop(MASTER_PID_ENV, 0) or 0)
        self.pidfile: str | None = None
        self.crashes: collections.deque[float] = collections.deque()
        self.spawn_after = 0.0
        self.spawn_pending = False  # workers still missing after this turn's batch of forks
        self.stopping = False
        self.reported_workers = -1  # the last gunicorn.workers gauge sent
        self.backlog_due = 0.0      # when the next gunicorn.backlog sample is due
        self.start_cwd = os.getcwd()
        self._start_report: int | None = None  # --daemon: the pipe to the starting command
        self._unix_files: dict[str, tuple[int, int]] = {}  # what we may unlink at exit
        self.loop: asyncio.AbstractEventLoop  # these two exist while the master runs (_main)
        self.children: ChildWatcher
        self._watcher_choice = os.environ.get(CHILD_WATCHER_ENV)
        self._signals: collections.deque[str] = collections.deque()  # names, oldest first
        self._woken = asyncio.Event()  # set by a signal or by a worker's news
        self._halt: HaltServer | None = None  # raised by the supervisor, set by callbacks
        self._binds = list(cfg.bind)
        self.fleet = Fleet(self)  # the workers' numbers, from their heartbeats
        self.metrics = MetricsServer(self, self.fleet)  # --metrics-bind, --shutdown-delay
        self.control: ControlServer | None = None  # the control socket's server, once started

    # -- entry ------------------------------------------------------------------------------

    def run(self) -> int:
        """Run the master until it stops; returns the process exit code."""

        if self.cfg.daemon:
            self._start_report = daemonize(self.cfg.enable_stdio_inheritance)
            self.pid = os.getpid()
        try:
            return uvloop.run(self._main())
        except HaltServer as exc:
            self.log.error("Shutting down: %s", exc.reason)
            errorlog = self.cfg.errorlog
            self._report_start(exc.exit_status, f"{exc.reason} The reason is in the error log"
                               + (f" ({errorlog})." if errorlog and errorlog != "-" else "."))
            return exc.exit_status
        except KeyboardInterrupt:
            return 1
        finally:
            self._report_start(1, "the master stopped during startup; see the error log")

    async def _main(self) -> int:
        self.loop = asyncio.get_running_loop()
        try:
            self.start()
        except (ConfigError, AppImportError, OSError) as exc:
            self.log.error("%s", exc)
            # --preload: the exit code the workers' import of the same app would have ended in
            code = WORKER_BOOT_ERROR if isinstance(exc, AppBootError) \
                else APP_LOAD_ERROR if isinstance(exc, AppImportError) else 1
            self._report_start(code, str(exc))
            self._cleanup(unlink=False)
            return code
        try:
            await self._supervise()
        except StopServing as stop:
            await self.stop(stop.graceful)
        except HaltServer:
            await self.stop(graceful=False)
            raise
        finally:
            self._cleanup(unlink=not self.reexec_pid and not self._old_master_alive())
        return 0

    def _report_start(self, code: int, message: str) -> None:
        """--daemon: tell the command that started us how the start went, once."""
        fd, self._start_report = self._start_report, None
        if fd is not None:
            report_start(fd, code, message)

    def _hook(self, name: str, *args, startup: bool = False) -> bool:
        """Run a master hook.  At startup one that raises stops the start in one line
        (gunicorn: "Error: <message>"); later it is logged with its traceback and what it was
        part of goes on, unless the caller cancels that on False (pre_exec)."""
        try:
            getattr(self.cfg, name)(self, *args)
        except Exception as exc:
            if startup:
                raise ConfigError(f"{name} hook failed: {one_line(exc)}") from None
            self.log.exception("%s hook failed", name)
            return False
        return True

    def start(self) -> None:
        cfg = self.cfg
        self.children = child_watcher(self.loop, self._watcher_choice)
        self._hook("on_starting", startup=True)
        self._hook("nworkers_changed", self.num_workers, None, startup=True)  # as gunicorn
        self.log.info("Starting unicorn_aio %s", __version__)
        if not compiled():
            self.log.info("The request path runs interpreted, not compiled (setup.py): "
                          "small requests cost about a fifth more CPU")
        for message in cfg.warnings:
            self.log.warning("%s", message)
        if cfg.pidfile:  # first: a second instance must not take the first one's sockets
            self.pidfile = write_pidfile(cfg.pidfile, self.pid, self.master_pid)
        self.listeners = bind_all(cfg, self.log)
        self._unix_files = unix_files(self.listeners)
        # Inherited fds are ours now; do not leak the variables to workers or the app.
        for name in (INHERIT_ENV, "LISTEN_FDS", "LISTEN_PID", "LISTEN_FDNAMES"):
            os.environ.pop(name, None)
        self.log.info("Listening at: %s (%d)", ", ".join(
            listener_url(sock, bool(cfg.certfile)) for sock in self.listeners), self.pid)
        if cfg.preload_app:
            self.app = load_wsgi_app(cfg)
        for line in cfg.start_lines(self.app):
            self.log.info("%s", line)
        for name in self.SIGNALS:
            self.loop.add_signal_handler(getattr(signal, "SIG" + name), self._on_signal, name)
        self.log.debug("Child watcher: %s", self.children.name)
        set_proc_title(f"unicorn_aio: master [{self.proc_name}]")
        self.metrics.start()
        self.control = open_control_socket(self)
        self._hook("when_ready", startup=True)

    async def _supervise(self) -> None:
        while True:
            self.manage_workers()
            if self.spawn_pending:  # one turn of the loop, then the next batch
                await asyncio.sleep(0)
            else:
                await self._wait(min(TICK, heartbeat_interval(self.cfg.timeout)))
            while self._signals:
                name = self._signals.popleft().lower()
                self.log.info("Handling signal: %s", name)  # gunicorn's line, word for word
                getattr(self, "handle_" + name)()
            if self._halt is not None:
                raise self._halt
            self.murder_workers()
            self._report_backlog()

    async def _wait(self, timeout: float) -> None:
        """Until a signal comes, a worker's news wakes us, or ``timeout`` seconds pass."""
        try:
            await asyncio.wait_for(self._woken.wait(), timeout)
        except TimeoutError:
            pass
        self._woken.clear()

    def _on_signal(self, name: str) -> None:
        self._signals.append(name)
        self._woken.set()

    def wake(self) -> None:
        """A worker booted, retired or exited: manage_workers has work before the next tick."""
        self._woken.set()

    # -- signals ----------------------------------------------------------------------------

    def handle_term(self) -> None:
        if not self.metrics.delay_stop():  # --shutdown-delay: serve on, TERM comes again
            raise StopServing(graceful=True)

    def handle_int(self) -> None:
        raise StopServing(graceful=False)

    def handle_quit(self) -> None:
        raise StopServing(graceful=False)

    def handle_hup(self) -> None:
        self.log.info("Hang up: reloading")
        self.reload()

    def handle_ttin(self) -> None:
        self.set_num_workers(self.num_workers + 1)

    def handle_ttou(self) -> None:
        if self.num_workers > 1:
            self.set_num_workers(self.num_workers - 1)

    def handle_usr1(self) -> None:
        self.log.reopen_files()
        self.kill_workers(signal.SIGUSR1)

    def handle_usr2(self) -> None:
        self.reexec()

    def handle_winch(self) -> None:
        if self.cfg.daemon:
            self.log.info("graceful stop of workers")
            self.set_num_workers(0)
        else:
            self.log.debug("SIGWINCH ignored: not daemonized")

    def set_num_workers(self, value: int) -> None:
        old, self.num_workers = self.num_workers, value
        self._hook("nworkers_changed", value, old)

    # -- workers ----------------------------------------------------------------------------

    def manage_workers(self) -> None:
        """Spawn or retire workers until the current generation has ``num_workers`` serving."""
        if self.stopping:
            return
        self._hand_off_retirees()  # before spawning: a fork takes milliseconds of serving
        current = [w for w in self.workers.values()
                   if w.generation == self.generation and not w.retiring and not w.stopping]
        missing = self.num_workers - len(current)
        self.spawn_pending = False
        if missing > 0 and self.loop.time() >= self.spawn_after:
            # A few at a time: forking hundreds in one go (worker add 500) would leave TERM
            # and the control socket unanswered until the last fork.
            for _ in range(min(missing, SPAWN_BATCH)):
                self.spawn_worker()
            self.spawn_pending = missing > SPAWN_BATCH
        serving = sum(1 for w in current if w.booted)
        if serving >= self.num_workers:
            if self.good_generation != self.generation:
                self._generation_ready()
            # Replaced workers (older generations, retirees) stop only once their
            # replacements serve: capacity never dips during HUP or max-requests.
            for w in list(self.workers.values()):
                if (w.generation != self.generation or w.retiring) and not w.stopping:
                    self.stop_worker(w, signal.SIGTERM)
        for w in sorted(current, key=lambda w: w.age)[:max(0, len(current) - self.num_workers)]:
            self.stop_worker(w, signal.SIGTERM)  # TTOU: the oldest go first, gracefully
        self._report_worker_count()

    def _hand_off_retirees(self) -> None:
        """A retiring worker serves until its replacement boots; if a sibling serves meanwhile,
        it takes the new clients instead, or a busy worker overshoots --max-requests by all
        it serves in that time (hundreds, where gunicorn's overshoot is a handful)."""
        for w in self.workers.values():
            if w.retiring and not w.handed_off and not w.stopping and any(
                    o.booted and not (o.retiring or o.stopping) for o in self.workers.values()):
                w.handed_off = True
                try:
                    w.channel.send(HAND_OFF)
                except OSError:
                    pass  # gone or busy: it still stops when its replacement serves

    def _report_worker_count(self) -> None:
        # gunicorn's "gunicorn.workers" gauge: every worker process alive, once per change.
        count = len(self.workers)
        if count != self.reported_workers:
            self.reported_workers = count
            self.log.debug("%d workers", count,
                           extra={"metric": "gunicorn.workers", "value": count, "mtype": "gauge"})

    def _report_backlog(self) -> None:
        # gunicorn's enable_backlog_metric: "gunicorn.backlog" (histogram), the connections
        # waiting to be accepted, summed over the listeners that say (TCP ones, on Linux).
        now = self.loop.time()
        if not (self.cfg.enable_backlog_metric and self.cfg.statsd_host) or now < self.backlog_due:
            return
        self.backlog_due = now + BACKLOG_PERIOD
        queues = [n for n in map(accept_queue, self.listeners) if n is not None]
        if queues:
            self.log.debug("socket backlog: %d", sum(queues), extra={
                "metric": "gunicorn.backlog", "value": sum(queues), "mtype": "histogram"})

    def _generation_ready(self) -> None:
        self.good_generation = self.generation
        if self.generation == 0:  # the first boot, not a reload
            notify("READY=1")
            self._report_start(0, "")
        else:
            notify("READY=1\nSTATUS=reloaded")
            self.log.info("Reload complete: %d new worker(s) serving", self.num_workers)

    def spawn_worker(self) -> WorkerProcess:
        self.worker_age += 1
        parent_end, child_end = socket.socketpair()
        record = WorkerProcess(self.worker_age, self.generation, parent_end)
        try:
            self.cfg.pre_fork(self, record)
        except Exception as exc:
            raise HaltServer(f"pre_fork hook failed: {one_line(exc)}") from None
        # Held back across the fork: until the child has its own handlers, a TERM sent to it
        # would run the master's (a write to the master's wakeup fd) and be lost - a worker
        # told to stop while it boots would serve on.  The child unblocks in _reset_signals.
        masked = signal.pthread_sigmask(signal.SIG_BLOCK, WORKER_STOP_SIGNALS)
        pid = os.fork()
        if pid:
            signal.pthread_sigmask(signal.SIG_SETMASK, masked)
        else:  # the child: never returns
            try:
                parent_end.close()
                if self._start_report is not None:
                    os.close(self._start_report)
                for other in self.workers.values():
                    other.channel.close()
                self.children.forget_in_child()
                self.metrics.forget_in_child()
                run_forked_worker(self, record, child_end)
            finally:
                os._exit(1)
        child_end.close()
        parent_end.setblocking(False)
        record.pid = pid
        record.last_beat = self.loop.time()
        self.workers[pid] = record
        self.children.watch(pid, functools.partial(self._on_worker_exit, record))
        self.loop.add_reader(parent_end.fileno(), self._on_worker_message, record)
        return record

    def _on_worker_message(self, w: WorkerProcess) -> None:
        try:
            data = w.channel.recv(4096)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        if not data:  # the worker closed its end: it is exiting
            self.loop.remove_reader(w.channel.fileno())
            self.children.hint()
            return
        w.last_beat = self.loop.time()
        data = self.fleet.feed(w, data)  # its stats kept, the single-byte words left
        if BOOTED in data and not w.booted:
            w.booted = True
            self.wake()
        if RETIRE in data and not w.retiring:
            w.retiring = True
            self.wake()

    def _on_worker_exit(self, w: WorkerProcess, code: int) -> None:
        self.fleet.exited(w, code, self.stopping)  # before its channel closes: the last stats
        self.loop.remove_reader(w.channel.fileno())
        w.channel.close()
        self.workers.pop(w.pid, None)
        if code in (WORKER_BOOT_ERROR, APP_LOAD_ERROR) and not w.booted:
            self._boot_failed(w, code)
        elif report := w.exit_report(code):
            self.log.log(*report)
        if not (w.stopping or w.killed or self.stopping):
            self._crashed()
        self._hook("child_exit", w)
        self.wake()

    def _boot_failed(self, w: WorkerProcess, code: int) -> None:
        if self.good_generation < 0:
            reason = "App failed to load." if code == APP_LOAD_ERROR else "Worker failed to boot."
            self._halt = HaltServer(reason, code)
            return
        if w.generation == self.generation and self.generation != self.good_generation:
            # A reload whose new code cannot boot: keep serving with the workers we have.
            self.log.error("Reload failed: new workers cannot boot (see above); "
                           "keeping the previous workers")
            for other in list(self.workers.values()):
                if other.generation == self.generation:
                    self.stop_worker(other, signal.SIGTERM)
            self.generation = self.good_generation
            notify("READY=1\nSTATUS=reload failed")

    def _crashed(self) -> None:
        """Back off respawning when workers keep dying, instead of a fork storm."""
        now = self.loop.time()
        self.crashes.append(now)
        while self.crashes and self.crashes[0] < now - CRASH_WINDOW:
            self.crashes.popleft()
        if len(self.crashes) > 3:
            delay = min(0.25 * 2 ** (len(self.crashes) - 4), 10.0)
            self.spawn_after = now + delay
            self.log.warning("%d worker crashes in the last minute; next spawn in %.1fs",
                             len(self.crashes), delay)

    def murder_workers(self) -> None:
        """SIGABRT a worker whose loop went silent (it logs its stacks), SIGKILL if that fails."""
        timeout = self.cfg.timeout
        if not timeout:
            return
        now = self.loop.time()
        for w in list(self.workers.values()):
            if w.aborted:
                if now - w.aborted_at > ABORT_GRACE and not w.killed:
                    w.killed = True
                    self._kill(w, signal.SIGKILL)
            elif now - w.last_beat > timeout:
                self.log.critical("WORKER TIMEOUT (pid:%d): no heartbeat for %.1fs",
                                  w.pid, now - w.last_beat)
                w.aborted, w.aborted_at = True, now
                self._kill(w, signal.SIGABRT)

    def stop_worker(self, w: WorkerProcess, sig: int) -> None:
        w.stopping = True
        self._kill(w, sig)

    def kill_workers(self, sig: int) -> None:
        for w in list(self.workers.values()):
            if sig in (signal.SIGTERM, signal.SIGQUIT, signal.SIGINT):
                w.stopping = True
            self._kill(w, sig)

    def _kill(self, w: WorkerProcess, sig: int) -> None:
        # By pid, safely: an unreaped child's pid is never reused, and its record goes when
        # the child watcher reaps it.
        try:
            os.kill(w.pid, sig)
        except OSError:
            pass  # already gone; the child watcher will report it

    # -- stop -------------------------------------------------------------------------------

    async def stop(self, graceful: bool = True) -> None:
        """Stop every worker: TERM lets in-flight requests finish, QUIT does not."""
        self.stopping = True
        notify("STOPPING=1")
        self.log.info("%s shutdown", "Graceful" if graceful else "Quick")
        # Our copies first: once the workers finish and close theirs, the kernel refuses new
        # clients cleanly instead of queueing them for nobody (see Server._accept_backlog).
        self._close_listeners()
        self.kill_workers(signal.SIGTERM if graceful else signal.SIGQUIT)
        limit = self.loop.time() + (self.cfg.graceful_timeout if graceful else 0) + 2
        while self.workers and self.loop.time() < limit:
            await self._wait(limit - self.loop.time())
            if graceful and {"INT", "QUIT"} & set(self._signals):
                # The operator will not wait for the graceful stop: make it quick, as gunicorn.
                graceful = False
                self.log.info("Quick shutdown requested")
                self.kill_workers(signal.SIGQUIT)
                limit = min(limit, self.loop.time() + 2)
            self._signals.clear()
        for w in list(self.workers.values()):
            w.killed = True
            self._kill(w, signal.SIGKILL)
        limit = self.loop.time() + 5
        while self.workers and self.loop.time() < limit:
            await self._wait(limit - self.loop.time())

    def _close_listeners(self) -> None:
        for sock in self.listeners:
            sock.close()

    def _cleanup(self, unlink: bool) -> None:
        self.metrics.close()
        if self.control:
            self.control.close()
        if unlink:
            unlink_own_files(self._unix_files)
        self._close_listeners()
        if self.pidfile:
            remove_pidfile(self.pidfile, self.pid)
        self._hook("on_exit")
        self.log.info("Shutting down: Master")

