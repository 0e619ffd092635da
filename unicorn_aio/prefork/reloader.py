"""``--reload``: a worker asks to be replaced when a source file of the app changes.

The watching happens in the worker, never in the master: the master forks, and a process with
threads must not fork (another thread may hold a lock the child then never sees released).  Each
worker, once serving, watches the files of the modules it imported from the app's directories
(the python path entries outside the interpreter's own prefix) plus ``--reload-extra-file``.
On a change it asks the master for a replacement, the same way --max-requests does: the master
forks a fresh worker, which imports the new code, and stops this one once the new one serves.
Code that no longer imports never replaces a working worker; the old one keeps serving.
"""

from __future__ import annotations

import os
import sys
import sysconfig
import threading

# Directories whose modules are the interpreter's and installed packages', not the app's.
_SYSTEM_DIRS = tuple(sorted({os.path.realpath(p) + os.sep for p in (
    sys.prefix, sys.base_prefix, sys.exec_prefix, sysconfig.get_paths()["stdlib"],
    sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"],
    os.path.dirname(os.path.abspath(__file__)))}))


def app_files(cfg) -> set[str]:
    """Source files of the loaded modules that belong to the app, plus reload_extra_files."""
    roots = {os.path.realpath(p) + os.sep
             for p in [os.getcwd(), *sys.path] if p and os.path.isdir(p)}
    roots = {r for r in roots if not r.startswith(_SYSTEM_DIRS) and r != os.sep}
    files = set()
    for module in list(sys.modules.values()):
        path = getattr(module, "__file__", None)
        if not path or not path.endswith(".py"):
            continue
        path = os.path.realpath(path)
        if path.startswith(tuple(roots)) and not path.startswith(_SYSTEM_DIRS):
            files.add(path)
    if cfg.paste:
        files.add(os.path.realpath(cfg.paste.partition("#")[0]))
    files.update(os.path.realpath(f) for f in cfg.reload_extra_files or ())
    return files


class Reloader:
    """A thread watching ``files`` (through their directories: editors save by rename)."""

    def __init__(self, files: set[str], on_change, force_polling: bool | None = None,
                 since_ns: int = 0) -> None:
        self.files = files
        self.since_ns = since_ns  # files changed after this (the app's import) count too
        self.on_change = on_change
        self.force_polling = force_polling
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="unicorn_aio-reloader", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def _run(self) -> None:
        import watchfiles

        dirs = sorted({os.path.dirname(f) for f in self.files})
        if not dirs:
            return
        watched = self.files
        first = True
        for changes in watchfiles.watch(*dirs, watch_filter=lambda _c, path: path in watched,
                                        recursive=False, stop_event=self._stop, debounce=200,
                                        step=50, force_polling=self.force_polling,
                                        raise_interrupt=False, rust_timeout=300,
                                        yield_on_timeout=True):
            changed = sorted(path for _change, path in changes)
            if first and self.since_ns:
                # The watch is set up by now: catch edits made between the import and it.
                changed += sorted(f for f in self.files if _mtime_ns(f) > self.since_ns)
            first = False
            if changed:
                self.on_change(changed[0])
                return


def _mtime_ns(path: str) -> int:
    try:
        return os.stat(path).st_mtime_ns
    except OSError:
        return 0


def start_reloader(worker) -> Reloader:
    """Called by a worker once it serves: watch, and on a change ask to be replaced."""
    cfg = worker.cfg
    loop = worker.loop

    def on_change(path: str) -> None:  # in the watcher thread
        loop.call_soon_threadsafe(worker.reload_code, path)

    polling = {"poll": True, "inotify": False}.get(cfg.reload_engine)
    reloader = Reloader(app_files(cfg), on_change, force_polling=polling,
                        since_ns=getattr(worker, "loading_ns", 0))
    reloader.start()
    return reloader
