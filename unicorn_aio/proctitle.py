"""Process titles: ``unicorn_aio: master [app]`` in ps and top, as gunicorn shows them."""

from __future__ import annotations

import ctypes
import ctypes.util

PR_SET_NAME = 15

try:  # optional, like gunicorn: rewrites the whole command line that `ps` shows
    from setproctitle import setproctitle as _setproctitle
except ImportError:
    _setproctitle = None


def set_proc_title(title: str) -> None:
    """Set the title ps shows (with setproctitle) and always the kernel's 15-byte comm."""
    if _setproctitle is not None:
        _setproctitle(title)
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
        # comm is what `ps -o comm`, top and /proc/PID/comm show; the prefix is the useful part.
        libc.prctl(PR_SET_NAME, title.replace("unicorn_aio: ", "unicorn_aio:")[:15].encode(), 0, 0, 0)
    except (OSError, AttributeError):
        pass
