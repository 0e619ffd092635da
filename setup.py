"""The request path, compiled with mypyc (pyproject.toml holds everything else).

Hello-world throughput is per-request Python: parsing a head, building the environ, writing the
response.  mypyc compiles these modules, unchanged and fully annotated, to C: method calls and
attribute reads on their classes become C calls and struct reads.  bench/results/issue22.md has
the measurements.  Every module here stays plain Python too: with UNICORN_AIO_COMPILE=0, or
where the modules were never built, the same source runs interpreted, only slower.

Not compiled: whatever the watchdog must see in an app thread's stack (wsgi/appthread.py, the
body reads of http/body.py: compiled functions have no Python frames), and everything off the
request path.
"""

import os

from setuptools import setup

# The request path of HTTP/1.1 and WSGI, in import order.
COMPILED = [
    "unicorn_aio/http/request.py",
    "unicorn_aio/http/rules.py",
    "unicorn_aio/http/response.py",
    "unicorn_aio/http/output.py",
    "unicorn_aio/http/rawhead.py",
    "unicorn_aio/http/protocol.py",
    "unicorn_aio/wsgi/outbox.py",
    "unicorn_aio/wsgi/sendfile.py",
    "unicorn_aio/wsgi/environ.py",
    "unicorn_aio/wsgi/handler.py",
    "unicorn_aio/http2/negotiate.py",  # its H1OrH2 is an HttpProtocol
]


def ext_modules() -> list:
    if os.environ.get("UNICORN_AIO_COMPILE", "1") == "0":
        return []
    from mypyc.build import mypycify

    # The shared library goes in the package (unicorn_aio/_compiled__mypyc.*.so), where the
    # modules find it however the package is found.
    return mypycify(COMPILED, opt_level="3", group_name="unicorn_aio._compiled")


if __name__ == "__main__":  # as setuptools runs it; tests/server/test_build.py reads COMPILED
    setup(ext_modules=ext_modules())
