"""The apps every server in the benchmark runs: the same code for unicorn_aio and each peer.

WSGI apps are plain PEP 3333 callables. `*_a2wsgi` wrap them for uvicorn (its WSGI story is the
a2wsgi adapter, which runs the app in a thread pool of `workers` threads). `asgi_hello` is the
ASGI 3 counterpart of `hello` for the ASGI scenario.

`flask_json` and `django_json` are TechEmpower's JSON test in each framework, as its Flask and
Django entries write it: `{"message": "Hello, World!"}` serialised per request, on every path
(`/json` included); Django with no middleware and no database, as TechEmpower's JSON test runs
it.  They exist where Flask and Django are installed (`.bench-venv` has both).
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


try:
    import flask
except ImportError:
    pass
else:
    _flask = flask.Flask("bench")

    @_flask.route("/")
    @_flask.route("/json")
    def _flask_json_view():
        return flask.jsonify(message="Hello, World!")

    flask_json = _flask.wsgi_app  # the app itself, as Flask.__call__ hands it every request


def _django_app():
    import django
    from django.conf import settings

    if not settings.configured:
        settings.configure(
            DEBUG=False, ALLOWED_HOSTS=["*"], ROOT_URLCONF=__name__, SECRET_KEY="bench",
            MIDDLEWARE=[], INSTALLED_APPS=[], DATABASES={}, USE_TZ=True,
            LOGGING_CONFIG=None)
    django.setup(set_prefix=False)
    from django.core.handlers.wsgi import WSGIHandler

    return WSGIHandler()


def _django_json_view(request):
    from django.http import JsonResponse

    return JsonResponse({"message": "Hello, World!"})


try:
    import django  # noqa: F401  (only whether it is there)
except ImportError:
    pass
else:
    from django.urls import path as _path

    urlpatterns = [_path("", _django_json_view), _path("json", _django_json_view)]
    django_json = _django_app()


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
