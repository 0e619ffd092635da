"""Apps for the master tests, which run them in real worker processes."""

import os
import time


def hello(environ, start_response):
    body = b"pid=%d\n" % os.getpid()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]


def app(environ, start_response):
    """/ answers at once; /slow?s=N sleeps N seconds; /stream?s=N streams for N seconds;
    /hang blocks the thread it runs on (the loop itself in inline mode)."""
    path = environ["PATH_INFO"]
    seconds = float(environ.get("QUERY_STRING", "").partition("=")[2] or 0)
    if path == "/slow":
        time.sleep(seconds)
    elif path == "/crash":
        os._exit(7)
    elif path == "/hang":
        while True:
            time.sleep(0.1)
    elif path == "/stream":
        start_response("200 OK", [("Content-Type", "text/plain")])
        return _stream(seconds)
    return hello(environ, start_response)


def _stream(seconds):
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        yield b"tick\n"
        time.sleep(0.2)
    yield b"done\n"


def broken_factory():
    raise RuntimeError("database is down")


_hoard = []


def grow(environ, start_response):
    """Each request keeps 16 MB alive: a leaky app for --max-worker-memory."""
    _hoard.append(bytearray(16 * 1024 * 1024))
    return hello(environ, start_response)


IMPORTED_BY = os.getpid()  # with --preload, the master's pid


def whoami(environ, start_response):
    body = b"imported_by=%d pid=%d uid=%d\n" % (IMPORTED_BY, os.getpid(), os.getuid())
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]


def frozen(environ, start_response):
    """How many objects the worker moved out of the collector's sight at boot."""
    import gc
    body = b"%d" % gc.get_freeze_count()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]


def env_value(environ, start_response):
    """The CONFV variable the worker was started with (raw_env)."""
    body = os.environ.get("CONFV", "-").encode()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]


def policies(environ, start_response):
    """The scheduling policies of the worker's loop (main) thread and of the thread running this."""
    body = b"loop=%d app=%d" % (os.sched_getscheduler(os.getpid()), os.sched_getscheduler(0))
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]
