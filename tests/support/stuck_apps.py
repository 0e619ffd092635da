"""Apps that get stuck in their app thread, for the request watchdog (wsgi/watchdog.py).

Each stuck request ends on its own after ``s`` seconds (20 by default), so a server without the
watchdog still lets its test fail by a timeout rather than spin for ever.
"""

import asyncio
import os
import socket
import sys
import time
from urllib.parse import parse_qs


def _arg(environ, name, default):
    values = parse_qs(environ.get("QUERY_STRING", "")).get(name)
    return float(values[0]) if values else default


def _text(start_response, body, status="200 OK"):
    start_response(status, [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]


def _spin(seconds):
    end = time.monotonic() + seconds
    n = 0
    while time.monotonic() < end:
        n += 1  # pure Python: an asynchronous exception stops it between two bytecodes


def app(environ, start_response):
    path = environ["PATH_INFO"]
    seconds = _arg(environ, "s", 20.0)
    if path == "/spin":
        try:
            _spin(seconds)
        except BaseException as exc:
            print(f"spin stopped by {type(exc).__name__}", flush=True)
            raise
        return _text(start_response, b"spun\n")
    if path == "/sleep":
        time.sleep(seconds)  # in C: not interruptible until it returns
        return _text(start_response, b"slept\n")
    if path == "/recv":
        # A blocking C call: a socket read with no timeout, from a peer that never sends.
        a, b = socket.socketpair()
        a.settimeout(None)
        try:
            a.recv(1)
        finally:
            a.close()
            b.close()
        return _text(start_response, b"received\n")
    if path == "/stream":
        start_response("200 OK", [("Content-Type", "text/plain")])
        return _stream(int(_arg(environ, "n", 6)), _arg(environ, "gap", 0.5))
    if path == "/head-then-spin":
        start_response("200 OK", [("Content-Type", "text/plain")])
        return _head_then_spin(seconds)
    if path == "/upload":
        size = len(environ["wsgi.input"].read())
        return _text(start_response, b"%d\n" % size)
    return _text(start_response, b"pid=%d\n" % os.getpid())


def _stream(n, gap):
    for i in range(n):
        yield b"chunk %d\n" % i
        time.sleep(gap)
    yield b"done\n"


def _head_then_spin(seconds):
    yield b"first\n"
    _spin(seconds)
    yield b"never\n"


async def asgi_app(scope, receive, send):
    """/sleep?s=N awaits N seconds, /stream streams a chunk every 0.3 s for N seconds; else
    answers at once."""
    if scope["type"] == "lifespan":
        while (await receive())["type"] != "lifespan.shutdown":
            await send({"type": "lifespan.startup.complete"})
        await send({"type": "lifespan.shutdown.complete"})
        return
    qs = parse_qs(scope["query_string"].decode())
    seconds = float(qs.get("s", ["20"])[0])
    try:
        if scope["path"] == "/sleep":
            await asyncio.sleep(seconds)
        elif scope["path"] == "/stream":
            await send({"type": "http.response.start", "status": 200,
                        "headers": [(b"content-type", b"text/plain")]})
            end = time.monotonic() + seconds
            while time.monotonic() < end:
                await send({"type": "http.response.body", "body": b"tick\n", "more_body": True})
                await asyncio.sleep(0.3)
            await send({"type": "http.response.body", "body": b"done\n"})
            return
    except asyncio.CancelledError:
        print(f"{scope['path']} cancelled", file=sys.stderr, flush=True)
        raise
    body = b"pid=%d\n" % os.getpid()
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"text/plain")]})
    await send({"type": "http.response.body", "body": body})
