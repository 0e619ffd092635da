"""The request path, compiled with mypyc (pyproject.toml holds everything else).

Hello-world throughput is per-request Python: parsing a head, building the environ or scope,
writing the response, handing work to app threads.  mypyc compiles these modules, unchanged and
fully annotated, to C: calls and attribute reads on their classes become C calls and struct
reads (bench/results/issue22.md has the measurements).  The same source runs interpreted with
UNICORN_AIO_COMPILE=0, or wherever the build is missing; only slower.

What compiling asks of the code: classes form single chains (no mixins), are not subclassed or
given new attributes from interpreted code, and an attribute the checker has narrowed is not
changed behind its back by a call. What it rewards: per-request calls into compiled objects
(``Server`` hands connections its compiled ``HostServices``), and ``Final`` module constants,
which compiled code reads from C statics rather than the module's dict. Not compiled: what must
show in a thread's or a task's stack (wsgi/appthread.py, the app's coroutine: compiled
functions have no Python frames); http/body.py (its reads are the watchdog's waits too, and its
errors are OSErrors, which a compiled class cannot extend); ``Server``, which embedders may
extend; and everything off the request path.
"""

import os

from setuptools import setup

# The request path of HTTP/1.1, WSGI and ASGI, in import order.
COMPILED = [
    "unicorn_aio/wsgi/threadpool.py",
    "unicorn_aio/http/request.py",
    "unicorn_aio/http/rules.py",
    "unicorn_aio/http/response.py",
    "unicorn_aio/http/output.py",
    "unicorn_aio/http/services.py",
    "unicorn_aio/http/options.py",
    "unicorn_aio/http/rawhead.py",
    "unicorn_aio/http/protocol.py",
    "unicorn_aio/wsgi/outbox.py",
    "unicorn_aio/wsgi/sendfile.py",
    "unicorn_aio/wsgi/environ.py",
    "unicorn_aio/wsgi/handler.py",
    "unicorn_aio/http2/negotiate.py",  # its H1OrH2 is an HttpProtocol
    "unicorn_aio/asgi/scope.py",
    "unicorn_aio/asgi/handler.py",
    "unicorn_aio/prefork/stats.py",
]


def ext_modules() -> list:
    if os.environ.get("UNICORN_AIO_COMPILE", "1") == "0":
        return []
    from mypyc.build import mypycify

    # --ignore-missing-imports and --no-warn-unused-ignores: a wheel is built where only the
    # build requirements are, without httptools and the optional libraries (h2, wsproto, cffi),
    # and nothing compiled needs their types.  The group name puts the shared library in the
    # package (unicorn_aio/_compiled__mypyc.*.so), where the modules find it however the
    # package is found.
    return mypycify(["--ignore-missing-imports", "--no-warn-unused-ignores", *COMPILED],
                    opt_level="3", group_name="unicorn_aio._compiled")

if __name__ == "__main__":  # as setuptools runs it; tests/server/test_build.py reads COMPILED
    setup(ext_modules=ext_modules())
