"""Process titles: ``unicorn_aio: master [app]`` in ps and top, as gunicorn shows them."""

from __future__ import annotations

try:  # optional, like gunicorn: rewrites the whole command line that `ps` shows
    from setproctitle import setproctitle as _setproctitle
except ImportError:
    _setproctitle = None


def set_proc_title(title: str) -> None:
    """Set the title ps shows (with setproctitle) and always the kernel's 15-byte comm.

    comm is what `ps -o comm`, top and /proc/PID/comm show; the prefix is the useful part.
    Writing /proc/self/comm does what prctl(PR_SET_NAME) does, without loading ctypes
    (about 1 MB of RSS in every worker).
    """
    if _setproctitle is not None:
        _setproctitle(title)
    try:
        with open("/proc/self/comm", "w") as f:
            f.write(title.replace("unicorn_aio: ", "unicorn_aio:")[:15])
    except OSError:
        pass
