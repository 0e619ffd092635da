"""WSGI apps the serving tests run; each records what the server did to it."""

from __future__ import annotations

import json
import threading
import time


class Recorder:
    """Counts calls and keeps notes an app thread makes, for the test on the loop to check."""

    def __init__(self) -> None:
        self.calls = 0
        self.closed = threading.Event()
        self.notes: list = []
        self.lock = threading.Lock()

    def note(self, item) -> None:
        with self.lock:
            self.notes.append(item)


def text(start_response, body: bytes, status="200 OK", extra=()):
    start_response(status, [("Content-Type", "text/plain"), *extra])
    return [body]


def make_app(rec: Recorder | None = None):
    """One app, routed on PATH_INFO, so a test can mix behaviours on one connection."""
    rec = rec or Recorder()

    def app(environ, start_response):
        rec.calls += 1
        path = environ["PATH_INFO"]
        method = environ["REQUEST_METHOD"]
        if path.startswith("/slow"):
            time.sleep(0.5)
            return text(start_response, path.encode())
        if path == "/echo":
            body = environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0) or 1 << 30)
            return text(start_response, body)
        if path.startswith("/env"):
            env = {k: v for k, v in environ.items() if isinstance(v, str)}
            env["wsgi.input_terminated"] = environ.get("wsgi.input_terminated")
            env["has_file_wrapper"] = "wsgi.file_wrapper" in environ
            body = json.dumps(env).encode()
            return text(start_response, body)
        if path == "/gen":
            start_response("200 OK", [("Content-Type", "text/plain")])
            return (b"part%d;" % i for i in range(3))
        if path == "/status":
            code = environ["QUERY_STRING"]
            start_response(f"{code} X", [("Content-Length", "5")] if code != "204" else [])
            return [b"hello"] if code not in ("204", "304") else []
        if path in ("/short", "/short-list"):  # promises 10 bytes, sends 5
            start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "10")])
            # A generator: a list behind an iterator is framed whole, like a list.
            return [b"hello"] if path == "/short-list" else (c for c in [b"hello"])
        if path in ("/long", "/long-list"):  # promises 5 bytes, sends 10
            start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "5")])
            return [b"hello", b"world"] if path == "/long-list" else \
                (c for c in [b"hello", b"world"])
        if path == "/noread":  # never reads the request body
            return text(start_response, b"ignored your body")
        if path == "/read-later":  # reads the body after a pause (100-continue timing)
            time.sleep(0.5)
            rec.note(("reading", time.monotonic()))
            body = environ["wsgi.input"].read()
            return text(start_response, b"%d" % len(body))
        if path == "/stamp":  # when was the app called, relative to the upload?
            rec.note(("called", time.monotonic()))
            body = environ["wsgi.input"].read()
            return text(start_response, body)
        if path == "/chunks":  # reads 16 KB blocks, stamping each
            inp = environ["wsgi.input"]
            total = 0
            while True:
                block = inp.read(16384)
                if not block:
                    break
                total += len(block)
                rec.note((time.monotonic(), total))
            return text(start_response, b"%d" % total)
        return text(start_response, b"hello " + method.encode() + b" " + path.encode("latin-1"))

    app.rec = rec
    return app
