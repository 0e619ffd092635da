"""Where an app thread enters the request path: Python frames the request watchdog can find.

The watchdog (watchdog.py) reads the stacks of the app threads to tell which request each one
runs and whether it waits on its client right now.  The request path is compiled (setup.py),
and a compiled function leaves no frame in a stack: so an app thread enters it through these
functions, which are never compiled, each with the request's cycle as its first argument.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from unicorn_aio.wsgi.environ import FileWrapper
    from unicorn_aio.wsgi.handler import WSGICycle
    from unicorn_aio.wsgi.outbox import Outbox


# The app's time: the watchdog's "runs".

def run(cycle: WSGICycle) -> None:
    """The whole request, from environ to the last byte."""
    cycle.run()


def respond(cycle: WSGICycle, result: Any) -> None:
    """The response an app began inline, finished on a thread: its iterable may block."""
    cycle._respond(result)


# The client's time: the watchdog's "waits".

def wait_for_client(cycle: Outbox) -> None:
    """Until the loop has written enough of the queued response, or the client resumes reading."""
    cycle._wait_for_loop()


def send_file(cycle: WSGICycle, wrapper: FileWrapper) -> bool:
    """``wsgi.file_wrapper`` with sendfile(2), as fast as the client reads it."""
    return cycle._try_sendfile(wrapper)
