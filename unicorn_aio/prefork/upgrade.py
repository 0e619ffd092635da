"""HUP and USR2: the master's two ways to change what serves without dropping a connection.

HUP reads the settings again and starts a new generation of workers (``manage_workers`` retires
the old one once the new one serves); USR2 starts a new master from the same command on the same
listening sockets.  A mixin of ``Arbiter``, kept apart so the supervisor reads on its own.
"""

from __future__ import annotations

import os
import socket
import sys
from typing import Any

from unicorn_aio.apploader import prepare_process
from unicorn_aio.config.config import load_config
from unicorn_aio.errors import ConfigError
from unicorn_aio.prefork.children import ChildWatcher
from unicorn_aio.prefork.control import ControlServer
from unicorn_aio.prefork.daemon import exec_new_master, move_pidfile
from unicorn_aio.prefork.proctitle import set_proc_title
from unicorn_aio.prefork.systemd import notify
from unicorn_aio.sockets import INHERIT_ENV, bind_all, describe, listener_url, unix_files
from unicorn_aio.tls import check_tls

MASTER_PID_ENV = "UNICORN_AIO_MASTER_PID"


class ReloadAndUpgrade:
    """The Arbiter's HUP (``reload``) and USR2 (``reexec``)."""

    # The Arbiter's, used here.
    cfg: Any
    log: Any
    pid: int
    listeners: list[socket.socket]
    num_workers: int
    generation: int
    reexec_pid: int
    master_pid: int
    pidfile: str | None
    start_cwd: str
    children: ChildWatcher
    control: ControlServer | None
    _binds: list[str]
    _unix_files: dict[str, tuple[int, int]]

    @property
    def proc_name(self) -> str:
        return self.cfg.proc_name

    def _hook(self, name: str, *args: Any, startup: bool = False) -> bool:
        raise NotImplementedError

    def set_num_workers(self, value: int) -> None:
        raise NotImplementedError

    def reload(self) -> None:
        notify("RELOADING=1")
        try:
            cfg = self.load_config()
            check_tls(cfg)  # a certificate renewed wrong must not take the workers down
            prepare_process(cfg)  # raw_env, chdir, pythonpath: the new workers start from them
        except (ConfigError, OSError) as exc:
            self.log.error("Reload failed, keeping the current configuration: %s", exc)
            prepare_process(self.cfg)  # undo what the new one may have done
            notify("READY=1")
            return
        old_binds = [describe(s) for s in self.listeners]
        self.cfg = cfg
        self.log.setup(cfg)
        for message in cfg.warnings:
            self.log.warning("%s", message)
        if cfg.bind != self._binds:
            self._rebind(cfg, old_binds)
        if cfg.preload_app:
            self.log.info("--preload: the app was imported by the master; a HUP reloads the "
                          "configuration but not the code (restart or USR2 for new code)")
        self._hook("on_reload")
        if cfg.workers != self.num_workers:
            self.set_num_workers(cfg.workers)
        self.generation += 1
        set_proc_title(f"unicorn_aio: master [{self.proc_name}]")

    def load_config(self):
        """The settings a HUP reloads: the same command line, read again."""
        return load_config(self.cfg.argv if self.cfg.argv is not None else sys.argv[1:])

    def _rebind(self, cfg, old_binds) -> None:
        try:
            new = bind_all(cfg)
        except (ConfigError, OSError) as exc:
            self.log.error("Reload: cannot bind %s (%s); keeping %s", cfg.bind, exc, old_binds)
            return
        for sock in self.listeners:
            sock.close()
        self.listeners = new
        self._unix_files = unix_files(new)
        self._binds = list(cfg.bind)
        self.log.info("Listening at: %s", ", ".join(
            listener_url(sock, bool(cfg.certfile)) for sock in new))

    def reexec(self) -> None:
        """USR2: start a new master from the same command, on the same listening sockets."""
        if self.reexec_pid:
            self.log.warning("USR2 ignored: a new master (pid:%d) already runs", self.reexec_pid)
            return
        if self._old_master_alive():
            self.log.warning("USR2 ignored: the old master (pid:%d) still runs", self.master_pid)
            return
        if not self._hook("pre_exec"):
            self.log.error("USR2 cancelled: the pre_exec hook failed; this master serves on")
            return
        if self.pidfile:  # the new master writes its own; ours is the old one now
            self.pidfile = move_pidfile(self.pidfile, self.pidfile + ".oldbin")
        env = dict(os.environ)
        env[INHERIT_ENV] = ",".join(str(s.fileno()) for s in self.listeners)
        env[MASTER_PID_ENV] = str(self.pid)
        argv = self.cfg.argv if self.cfg.argv is not None else sys.argv[1:]
        pid = exec_new_master(["-m", "unicorn_aio", *argv], env, self.listeners, self.start_cwd)
        self.reexec_pid = pid
        self.log.info("USR2: started new master (pid:%d); send QUIT or TERM to this one (pid:%d) "
                      "once it serves", pid, self.pid)
        self.children.watch(pid, self._new_master_exited)

    def _new_master_exited(self, code: int) -> None:
        self.log.warning("New master (pid:%d) exited with code %d; this master carries on",
                         self.reexec_pid, code)
        self.reexec_pid = 0
        if self.control:  # it took the control socket, and removed it as it exited
            self.control.reclaim()
        if self.pidfile and self.pidfile.endswith(".oldbin"):
            self.pidfile = move_pidfile(self.pidfile, self.pidfile.removesuffix(".oldbin"))
        set_proc_title(f"unicorn_aio: master [{self.proc_name}]")

    def _old_master_alive(self) -> bool:
        return bool(self.master_pid) and os.getppid() == self.master_pid
