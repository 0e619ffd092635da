"""Apps for the /metrics and Kubernetes tests: answers whose status, body size and duration the
test chooses, so it knows exactly what the master's totals must say.

GET /status/NNN?size=B&s=SECONDS  answers NNN with B body bytes after SECONDS; any body sent is
read (and counted by the server as request body bytes).  The response says which pid served it
in an X-Pid header.  ``counted`` also counts requests in prometheus_client's multiprocess mode.
"""

import os
import time


def app(environ, start_response):
    environ["wsgi.input"].read()
    path = environ["PATH_INFO"]
    query = dict(p.partition("=")[::2] for p in environ.get("QUERY_STRING", "").split("&") if p)
    status = path.rpartition("/")[2] if path.startswith("/status/") else "200"
    seconds = float(query.get("s", 0))
    if seconds:
        time.sleep(seconds)
    body = b"x" * int(query.get("size", 2))
    start_response(f"{status} Whatever", [("Content-Length", str(len(body))),
                                         ("X-Pid", str(os.getpid()))])
    return [body]


_counter = _gauge = None


def counted(environ, start_response):
    global _counter, _gauge
    if _counter is None:
        from prometheus_client import Counter, Gauge

        _counter = Counter("app_hits", "Requests the app saw.")
        _gauge = Gauge("app_alive", "1 per live worker.", multiprocess_mode="livesum")
        _gauge.set(1)
    _counter.inc()
    return app(environ, start_response)


async def asgi_app(scope, receive, send):
    """The same answers as ``app``, from an ASGI app (no X-Pid)."""
    if scope["type"] != "http":
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        return
    more = True
    while more:
        more = (await receive()).get("more_body", False)
    path = scope["path"]
    query = dict(p.partition("=")[::2] for p in scope["query_string"].decode().split("&") if p)
    status = int(path.rpartition("/")[2]) if path.startswith("/status/") else 200
    body = b"x" * int(query.get("size", 2))
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})
