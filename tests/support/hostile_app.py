"""The app the hostile-client, fault and fuzz tests run in a real worker process.

Routed on PATH_INFO.  The /bad-* routes break PEP 3333 in one way each: the server must answer
500, log the traceback, and keep serving.
"""

from __future__ import annotations

import os

CHUNK = b"x" * 65536


def _ok(start_response, body: bytes):
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]


def _big(environ, start_response):
    mb = int(environ.get("QUERY_STRING") or "1")
    start_response("200 OK", [("Content-Type", "application/octet-stream"),
                              ("Content-Length", str(mb * 16 * len(CHUNK)))])
    return (CHUNK for _ in range(mb * 16))


def _upload(environ, start_response):
    inp = environ["wsgi.input"]
    total = 0
    while True:
        block = inp.read(65536)
        if not block:
            break
        total += len(block)
    return _ok(start_response, b"%d" % total)


def _bad(name, start_response):
    if name == "raise":
        raise RuntimeError("the app failed on purpose")
    if name == "none":
        return None  # without calling start_response
    if name == "none-started":
        start_response("200 OK", [])
        return None
    if name == "int":
        start_response("200 OK", [])
        return 42
    if name == "str-items":
        start_response("200 OK", [])
        return ["text, not bytes"]
    if name == "status-int":
        start_response(200, [])
        return [b"x"]
    if name == "status-bytes":
        start_response(b"200 OK", [])
        return [b"x"]
    if name == "status-garbage":
        start_response("OK 200", [])
        return [b"x"]
    if name == "hdr-1tuple":
        start_response("200 OK", [("X-Only",)])
        return [b"x"]
    if name == "hdr-3tuple":
        start_response("200 OK", [("X-A", "1", "extra")])
        return [b"x"]
    if name == "hdr-bytes-name":
        start_response("200 OK", [(b"X-A", "1")])
        return [b"x"]
    if name == "hdr-int-value":
        start_response("200 OK", [("X-A", 1)])
        return [b"x"]
    if name == "hdr-none":
        start_response("200 OK", None)
        return [b"x"]
    if name == "hdr-crlf":
        start_response("200 OK", [("X-A", "1\r\nSet-Cookie: evil=1")])
        return [b"x"]
    if name == "hdr-str":
        start_response("200 OK", "X-A: 1")
        return [b"x"]
    raise LookupError(name)


BAD = ("raise", "none", "none-started", "int", "str-items", "status-int", "status-bytes",
       "status-garbage", "hdr-1tuple", "hdr-3tuple", "hdr-bytes-name", "hdr-int-value",
       "hdr-none", "hdr-crlf", "hdr-str")


def app(environ, start_response):
    path = environ["PATH_INFO"]
    if path == "/big":
        return _big(environ, start_response)
    if path == "/upload":
        return _upload(environ, start_response)
    if path == "/pid":
        return _ok(start_response, b"%d" % os.getpid())
    if path.startswith("/bad-"):
        return _bad(path[5:], start_response)
    if path == "/echo":
        return _ok(start_response, environ["wsgi.input"].read())
    return _ok(start_response, b"ok")
