"""The apps every server in the benchmark runs: the same code for unicorn_aio and each peer.

WSGI apps are plain PEP 3333 callables. `*_a2wsgi` wrap them for uvicorn (its WSGI story is the
a2wsgi adapter, which runs the app in a thread pool of `workers` threads). `asgi_hello` is the
ASGI 3 counterpart of `hello` for the ASGI scenario.
"""

import time

HELLO = b"Hello, World!\n"
BIG = b"x" * (1024 * 1024)
READ_CHUNK = 64 * 1024


def hello(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(HELLO)))])
    return [HELLO]


def sleep10(environ, start_response):
    """A handler blocked on I/O for 10 ms: what a thread pool is for."""
    time.sleep(0.010)
    return hello(environ, start_response)


def big(environ, start_response):
    """A 1 MiB response in one piece, with Content-Length."""
    start_response("200 OK", [("Content-Type", "application/octet-stream"), ("Content-Length", str(len(BIG)))])
    return [BIG]


def upload(environ, start_response):
    """Reads the request body in 64 KiB chunks and throws it away; answers with the byte count.

    With Content-Length the app stops at the declared length (PEP 3333 forbids reading past it);
    with chunked framing it reads until the server's wsgi.input says end of body (b"").
    """
    stream = environ["wsgi.input"]
    length = environ.get("CONTENT_LENGTH")
    remaining = int(length) if length else None
    total = 0
    while remaining is None or remaining > 0:
        chunk = stream.read(READ_CHUNK if remaining is None else min(READ_CHUNK, remaining))
        if not chunk:
            break
        total += len(chunk)
        if remaining is not None:
            remaining -= len(chunk)
    body = b"%d\n" % total
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]


async def asgi_hello(scope, receive, send):
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    await send({
        "type": "http.response.start",
        "status": 200,
        "headers": [(b"content-type", b"text/plain"), (b"content-length", str(len(HELLO)).encode())],
    })
    await send({"type": "http.response.body", "body": HELLO})


try:  # a2wsgi lives in .bench-venv only; the plain WSGI apps must load without it
    from a2wsgi import WSGIMiddleware
except ImportError:
    pass
else:
    hello_a2wsgi = WSGIMiddleware(hello, workers=4)
    sleep10_a2wsgi = WSGIMiddleware(sleep10, workers=32)
    big_a2wsgi = WSGIMiddleware(big, workers=4)
    upload_a2wsgi = WSGIMiddleware(upload, workers=4)


LONGPOLL_SECONDS = 4.0


async def asgi_longpoll(scope, receive, send):
    """A long-poll: the answer comes after LONGPOLL_SECONDS, the connection idles meanwhile."""
    if scope["type"] == "lifespan" or scope["path"] != "/poll":  # "/" answers readiness probes
        return await asgi_hello(scope, receive, send)
    import asyncio

    await asyncio.sleep(LONGPOLL_SECONDS)
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"text/plain"), (b"content-length", b"5")]})
    await send({"type": "http.response.body", "body": b"done\n"})
