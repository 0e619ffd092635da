"""One worker process: a fresh uvloop loop serving the shared listeners, beating to the master.

The master forks while its own loop is running.  The child must not touch that loop (its epoll
fd and signal pipe are shared with the parent), so ``Worker.run`` starts from scratch: default
signal dispositions, no wakeup fd, a new uvloop loop, and only its own end of its socketpair.

It speaks to the master in the single bytes of children.py: booted, beats, retire; and hears
hand-off.  Beats come from the loop thread, so a long response never looks like a hang - only
a loop that stops turning does.  With a beat, when a number changed, go its running totals
(stats.py: requests by status and duration, threads, connections, RSS), for /metrics and the
control socket; a send never blocks the loop (stats.Outbox).
"""

from __future__ import annotations

import asyncio
import faulthandler
import gc
import logging
import os
import signal
import socket
import sys
import time
from typing import TYPE_CHECKING, NoReturn

from unicorn_aio.apploader import load_wsgi_app, one_line
from unicorn_aio.errors import AppBootError, AppImportError
from unicorn_aio.prefork.children import (
    APP_LOAD_ERROR,
    BEAT,
    BOOTED,
    HAND_OFF,
    RETIRE,
    WORKER_BOOT_ERROR,
    WorkerProcess,
    heartbeat_interval,
)
from unicorn_aio.prefork.proctitle import set_proc_title
from unicorn_aio.prefork.stats import Outbox, RequestStats, encode, snapshot
from unicorn_aio.sockets import worker_listeners
from unicorn_aio.wsgi.threadpool import schedule_as_batch

if TYPE_CHECKING:
    from unicorn_aio.server import Server

QUICK_GRACE = 1.0  # seconds a quick shutdown gives requests already being answered
# Signals the master handles; a child must not inherit its handlers (or its wakeup fd).
MASTER_SIGNALS = ("SIGHUP", "SIGQUIT", "SIGINT", "SIGTERM", "SIGTTIN", "SIGTTOU", "SIGUSR1",
                  "SIGUSR2", "SIGWINCH", "SIGCHLD", "SIGABRT")
# What the master sends its workers; blocked from fork until the worker's handlers are set.
WORKER_STOP_SIGNALS = {signal.SIGTERM, signal.SIGINT, signal.SIGQUIT, signal.SIGUSR1,
                       signal.SIGHUP, signal.SIGWINCH, signal.SIGABRT}


class Worker:
    """The child side of a worker: what gunicorn's hooks receive as ``worker``."""

    def __init__(self, age: int, ppid: int, sockets, app, cfg, log, channel: socket.socket,
                 arbiter=None):
        self.arbiter = arbiter
        self.age = age
        self.ppid = ppid
        self.reopen_pending = False  # a USR1 came while booting
        self.pid = os.getpid()
        self.sockets = sockets
        self.app = app
        self.cfg = cfg
        self.log = log
        self.channel = channel
        self.timeout = cfg.timeout
        self.booted = False
        self.aborted = False
        self.alive = True
        self.server: Server | None = None
        self.loop: asyncio.AbstractEventLoop | None = None
        self.max_requests = 0
        if cfg.max_requests > 0:
            import random  # only here: it costs every worker 300 KB otherwise

            self.max_requests = cfg.max_requests + random.randint(0, cfg.max_requests_jitter)
        self._retire_sent = False
        self._retire_reason: str | None = None  # a stats.RESTART_REASONS word
        # Counted only for a reader of them: the control socket, --metrics-bind.
        self.stats = RequestStats() if cfg.metrics_bind or not cfg.control_socket_disable \
            else None
        self.outbox = Outbox(channel)
        self._last_stats: dict | None = None  # the last numbers sent, to send only changes
        self._stopping: asyncio.Future[bool] | None = None  # its result: graceful or not

    # -- process setup ----------------------------------------------------------------------

    def run(self) -> int:
        """Runs in the forked child; returns the exit code."""
        self._reset_signals()
        self.channel.setblocking(False)
        try:
            self.sockets = worker_listeners(self.sockets, self.cfg)
            self._set_owner()
            if self.app is None:
                self.loading_ns = time.time_ns()  # --reload: changes from here on count
                self.app = load_wsgi_app(self.cfg)
        except AppBootError as exc:
            # --log-level debug: the app's own error with its whole traceback, as gunicorn
            debug = exc.__cause__ is not None and self.log.error_log.isEnabledFor(logging.DEBUG)
            self.log.error("Worker failed to boot: %s", exc,
                           exc_info=exc.__cause__ if debug else None)
            return WORKER_BOOT_ERROR
        except AppImportError as exc:
            self.log.error("Worker failed to load the app: %s", exc)
            return APP_LOAD_ERROR
        except Exception as exc:
            self.log.error("Worker failed to boot: %s: %s", type(exc).__name__, exc)
            return WORKER_BOOT_ERROR
        import uvloop
        loop = self.loop = uvloop.new_event_loop()
        asyncio.set_event_loop(loop)
        try:
            return loop.run_until_complete(self._serve())
        finally:
            loop.close()

    def _reset_signals(self) -> None:
        # We are inside a callback of the master's running loop: forget it in this process.
        asyncio.events._set_running_loop(None)
        signal.set_wakeup_fd(-1)
        for name in MASTER_SIGNALS:
            signal.signal(getattr(signal, name), signal.SIG_DFL)
        # SIGABRT from the master means "you are hung": write every thread's stack to the error
        # log before dying, so a timeout comes with the reason for it.
        signal.signal(signal.SIGABRT, self._on_abort)
        signal.signal(signal.SIGPIPE, signal.SIG_IGN)
        # Until the loop's handlers are set, after the app is imported (seconds, for some apps),
        # USR1 and HUP would end the worker by their default action: a logrotate that came as a
        # worker booted killed it.  A USR1 is remembered and honoured once serving; HUP is the
        # master's business.
        signal.signal(signal.SIGUSR1, self._reopen_when_serving)
        signal.signal(signal.SIGHUP, signal.SIG_IGN)
        # Blocked by the master across the fork: one that came meanwhile is delivered now (a
        # TERM while booting stops the worker, as the default action does from here on).
        signal.pthread_sigmask(signal.SIG_UNBLOCK, WORKER_STOP_SIGNALS)

    def _set_owner(self) -> None:
        gid, uid = self.cfg.gid, self.cfg.uid
        if gid != os.getgid():
            os.setgid(gid)
        if uid != os.getuid():
            if self.cfg.initgroups:
                import pwd
                os.initgroups(pwd.getpwuid(uid).pw_name, gid)
            os.setuid(uid)

    def _on_abort(self, signum, frame) -> None:
        # A plain signal handler, not a loop one: the loop is what is stuck.
        self.aborted = True
        try:
            self.cfg.worker_abort(self)
        except Exception:
            self.log.exception("worker_abort hook failed")
        try:
            self.log.flush_access()  # the lines of the iteration that hung
        except Exception:
            pass
        self.log.critical("WORKER TIMEOUT (pid:%d): the event loop stopped answering; "
                          "stacks of every thread follow", os.getpid())
        stream = error_stream(self.log)
        stream.flush()
        faulthandler.dump_traceback(file=stream, all_threads=True)
        stream.flush()
        try:
            self._fail_unanswered()
        except Exception:
            pass
        os._exit(1)

    def _fail_unanswered(self) -> None:
        """Dying of a timeout: answer 500 where no response has begun, as gunicorn does, rather
        than leave the client a bare reset.  This runs in the loop thread (a signal handler
        between two bytecodes of whatever hung it), so the connections are ours to write."""
        server = self.server
        if server is None:
            return
        from unicorn_aio.http.protocol import HttpProtocol
        from unicorn_aio.http.response import error_response

        for conn in list(server.connections):
            # HTTP/2 frames what its streams write on a later turn of the loop, which never comes.
            if not isinstance(conn, HttpProtocol) or conn.transport.is_closing():
                continue
            req = conn.requests[0] if conn.requests else None
            if req is not None and req.cycle is not None and not req.cycle.head_sent:
                conn.write(error_response(500, "worker timeout", req.method))
            # Through the connection and flushed: held bytes (responses finished in the iteration
            # that hung, pipelined before this one) go first, rather than die with the process.
            conn.flush()

    # -- serving ----------------------------------------------------------------------------

    async def _serve(self) -> int:
        from unicorn_aio.server import Server

        loop = asyncio.get_running_loop()
        self._stopping = loop.create_future()
        self.server = server = Server(self.app, self.cfg, log=self.log, sockets=self.sockets)
        if self.max_requests:  # otherwise nothing to do per request (nr reads the server's count)
            server.services.on_request_finished = self._on_request_finished
        server.services.stats = self.stats
        server.worker = self
        server.close_listeners = True  # our inherited copies; see Server._accept_backlog
        for name, handler in (("SIGTERM", self._graceful), ("SIGINT", self._quick),
                              ("SIGQUIT", self._quick), ("SIGUSR1", self._reopen_logs),
                              ("SIGWINCH", lambda: None), ("SIGHUP", lambda: None)):
            loop.add_signal_handler(getattr(signal, name), handler)
        if self.reopen_pending:
            self._reopen_logs()
        loop.add_reader(self.channel.fileno(), self._on_master_message)
        # Beating from here on: the loop answers while an ASGI app's lifespan startup runs, so
        # a startup that never ends is named as such below, not killed as a hung loop.
        self._beat()
        try:
            await asyncio.wait_for(server.start(), self.timeout or None)
        except TimeoutError:
            self.log.error("Worker failed to boot: the app's startup did not finish within "
                           "--timeout (%ss)", self.timeout)
            return WORKER_BOOT_ERROR
        except Exception as exc:
            self.log.error("Worker failed to start serving: %s", exc)
            return WORKER_BOOT_ERROR
        if server.interface == "wsgi" and self.cfg.dispatch == "threads":
            # The loop thread too, as the app threads (threadpool.schedule_as_batch): woken by a
            # socket or a finished response, it preempted the app thread holding the GIL only to
            # wait for it.  5 workers, 1 thread, 2 cores, wrk -c100 (busy machine, A/B 8 times):
            # futex calls 0.45-3.1 -> 0.1-0.26, context switches 0.6-3.6 -> 0.35-0.6 a request.
            # Only in our own worker process: the Server API leaves its caller's thread alone.
            schedule_as_batch()
        try:
            self.cfg.post_worker_init(self)
        except Exception as exc:  # one line, as post_fork: every replacement would fail alike
            self.log.error("Worker failed to boot: post_worker_init hook failed: %s",
                           one_line(exc))
            return WORKER_BOOT_ERROR
        if self.age == 1 and self.cfg.interface == "auto" and self.arbiter is not None \
                and self.arbiter.app is None:
            # The master's start line could not say: only the workers import the app.
            self.log.info("Serving %s as %s (detected from the app)", self.cfg.app_uri,
                          (server.interface or "wsgi").upper())
        # What is alive now (the app, its modules, the server) lives as long as the worker.
        # Frozen, the collector stops walking it on every full collection: those walks were
        # pauses that showed in the tail latency of every request.
        gc.collect()
        gc.freeze()
        self.booted = True
        self._send(self._stats_message() + BOOTED)  # numbers from the start: /metrics, ctl
        if self.cfg.reload:
            from unicorn_aio.prefork.reloader import start_reloader
            start_reloader(self)
        graceful = await self._stopping
        self.alive = False
        # Quick (INT/QUIT) still answers what is already in flight, for a moment: QUIT to the
        # old master after USR2 must not cut the requests its workers are finishing.
        grace = self.cfg.graceful_timeout
        await server.shutdown(grace if graceful else min(QUICK_GRACE, grace))
        self._send_last_stats()
        return 0

    def _beat(self) -> None:
        rss = rss_mb()
        self._send(self._stats_message(rss) + BEAT, droppable=True)
        limit = self.cfg.max_worker_memory
        if limit and not self._retire_sent and rss > limit:
            self.log.info("Worker (pid:%d) RSS %.0f MB is over --max-worker-memory %d MB; "
                          "retiring", os.getpid(), rss, limit)
            self._retire("memory")
        asyncio.get_running_loop().call_later(heartbeat_interval(self.timeout), self._beat)

    def _stats_message(self, rss: float | None = None) -> bytes:
        """The STATS message (stats.py) when a number changed since the last one sent."""
        server = self.server
        if server is None or server.pool is None or self.stats is None:  # nothing to say
            return b""
        rss = rss_mb() if rss is None else rss
        numbers = snapshot(server, self.stats, int(rss * 1024 * 1024), self._retire_reason)
        if numbers == self._last_stats:
            return b""
        self._last_stats = numbers
        return encode(numbers)

    def _send(self, message: bytes, droppable: bool = False) -> None:
        try:
            self.outbox.send(message, droppable)
        except OSError:
            self._quick()  # the master is gone

    def _send_last_stats(self) -> None:
        """Exiting gracefully: the final numbers, so a retirement or a HUP loses none.  The
        master reads them before it hears of the exit; a second at most."""
        self._last_stats = None
        try:
            self.channel.settimeout(1.0)
            self.channel.sendall(self.outbox.unsent + self._stats_message())
        except OSError:
            pass

    def _on_master_message(self) -> None:
        try:
            data = self.channel.recv(64)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        if not data:  # EOF: the master died; do not serve as an orphan
            self.log.warning("Master is gone; worker (pid:%d) shutting down", os.getpid())
            asyncio.get_running_loop().remove_reader(self.channel.fileno())
            self._graceful()
        elif HAND_OFF in data and self.server is not None:
            self.server.hand_off()

    @property
    def nr(self) -> int:
        """Requests answered, as gunicorn's ``worker.nr`` that hooks read."""
        return self.server.requests_total if self.server is not None else 0

    def _on_request_finished(self, total: int) -> None:
        if total >= self.max_requests and not self._retire_sent:
            # gunicorn's line first: what its users grep for.
            self.log.info("Autorestarting worker after current request. Worker (pid:%d) "
                          "reached max requests (%d)", os.getpid(), self.max_requests)
            self._retire("max-requests")

    def reload_code(self, path: str) -> None:
        """--reload saw ``path`` change: a fresh worker will import the new code."""
        if not self._retire_sent and self.alive:
            self.log.info("Worker reloading: %s modified", path)
            self._retire("reload")

    def retire(self, reason: str) -> None:
        """Ask for a fresh worker in our place (the request watchdog, wsgi/watchdog.py: app
        threads stuck where they cannot be interrupted).  Once it serves we stop gracefully:
        healthy requests finish, or --graceful-timeout passes, and the exit ends the stuck
        threads with the process."""
        if not self._retire_sent and self.alive:
            self.log.warning("Worker (pid:%d) retiring: %s", os.getpid(), reason)
            self._retire("stuck")

    def _retire(self, reason: str) -> None:
        # The master starts our replacement first and sends TERM once it is serving, so
        # capacity never dips; until then we keep serving, or hand off if siblings serve.
        # The reason goes first, in a STATS message (its restarts by reason, fleet.py).
        self._retire_sent = True
        self._retire_reason = reason
        self._send(self._stats_message() + RETIRE)

    def _graceful(self) -> None:
        self._stop(graceful=True)

    def _quick(self) -> None:
        try:
            self.cfg.worker_int(self)
        except Exception:
            self.log.exception("worker_int hook failed")
        self._stop(graceful=False)

    def _stop(self, graceful: bool) -> None:
        if self._stopping is not None and not self._stopping.done():  # the first word counts
            self._stopping.set_result(graceful)

    def _reopen_logs(self) -> None:
        self.reopen_pending = False
        self.log.reopen_files()

    def _reopen_when_serving(self, signum: int, frame: object) -> None:
        self.reopen_pending = True


def error_stream(log):
    """The error log's file, for faulthandler (which writes to a raw fd, not a logger)."""
    for handler in log.error_log.handlers:
        stream = getattr(handler, "stream", None)
        if stream is not None and hasattr(stream, "fileno"):
            try:
                stream.fileno()
                return stream
            except (OSError, ValueError):
                continue
    return sys.stderr


def rss_mb() -> float:
    """This process's resident memory; without /proc (macOS, the BSDs), its peak, which errs
    only towards retiring a worker early."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / (1024 * 1024)
    except OSError:
        return peak_rss_mb()


def peak_rss_mb() -> float:
    import resource  # only where there is no /proc

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024  # bytes, or KB


def run_forked_worker(arbiter, record: WorkerProcess, channel: socket.socket) -> NoReturn:
    """The body of a child the master just forked, holding only its own end of ``channel``:
    the post_fork hook, then the worker; never returns."""
    worker = Worker(record.age, arbiter.pid, arbiter.listeners, arbiter.app, arbiter.cfg,
                    arbiter.log, channel, arbiter=arbiter)
    record.pid = worker.pid
    set_proc_title(f"unicorn_aio: worker [{arbiter.proc_name}]")
    # Logged by the worker, as gunicorn does, so the line's [pid] is the worker's own.
    worker.log.info("Booting worker with pid: %d", worker.pid)
    try:
        arbiter.cfg.post_fork(arbiter, worker)
    except Exception as exc:
        # It would fail the same way in every replacement: the master halts.
        worker.log.error("Worker failed to boot: post_fork hook failed: %s", one_line(exc))
        worker.log.info("Worker exiting (pid: %d)", worker.pid)
        os._exit(WORKER_BOOT_ERROR)
    run_worker(worker)


def run_worker(worker: Worker) -> NoReturn:
    """The body of a forked child; never returns."""
    code = 1
    try:
        code = worker.run()
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    except BaseException:
        worker.log.exception("Worker (pid:%d) crashed", os.getpid())
        if not worker.booted:  # the same failure would greet every replacement: halt
            code = WORKER_BOOT_ERROR
    finally:
        worker.log.info("Worker exiting (pid: %d)", worker.pid)
        try:
            worker.cfg.worker_exit(worker.arbiter, worker)
        except BaseException:
            worker.log.exception("worker_exit hook failed")
        finally:
            try:
                worker.log.flush_access()  # a crash skipped the server's shutdown
            except Exception:
                pass
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(code)
