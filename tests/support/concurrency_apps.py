"""A WSGI app that shows how many requests a worker runs at once.

/sleep?S sleeps S seconds; /overlap?S sleeps too, counting the calls inside the app at the same
time; /max returns the most seen so far; /threads the worker's thread count.
"""

from __future__ import annotations

import os
import threading
import time

_lock = threading.Lock()
_inside = 0
_most = 0


def app(environ, start_response):
    global _inside, _most
    path = environ["PATH_INFO"]
    seconds = float(environ.get("QUERY_STRING") or 0)
    if path == "/overlap":
        with _lock:
            _inside += 1
            _most = max(_most, _inside)
        try:
            time.sleep(seconds)
        finally:
            with _lock:
                _inside -= 1
        body = b"done"
    elif path == "/sleep":
        time.sleep(seconds)
        body = b"slept"
    elif path == "/max":
        body = str(_most).encode()
    elif path == "/threads":
        body = str(len(os.listdir("/proc/self/task"))).encode()
    else:
        body = b"pid=%d" % os.getpid()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]
