"""The same small app as WSGI (``wsgi``) and ASGI (``asgi``), for the HTTP/2 tests.

/           "ok"
/echo       JSON: protocol, method, path, query, body length, host, cookie
/download   ?n=BYTES streamed in 64 KiB chunks (b"x"*)
/upload     reads the body in 64 KiB chunks: JSON length and sha256 (constant memory)
/sleep      ?s=SECONDS, then "slept"
/calls      JSON: app calls started so far in this worker (this one included)
/fail       a 64 KiB chunk, then an exception: the response is cut short
/raise      an exception before the head: a 500
/file       (ASGI) http.response.pathsend of ?path=
/trailers   (ASGI) a body, then trailers (x-checksum, x-count) in two messages
/extensions (ASGI) the scope's extensions, as a JSON list
"""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import json
import time
from urllib.parse import parse_qs

CHUNK = 65536
_calls = itertools.count(1)
CALLS = [0]


def _query(qs: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(qs).items()}


def wsgi(environ, start_response):
    CALLS[0] = next(_calls)
    path = environ["PATH_INFO"]
    query = _query(environ.get("QUERY_STRING", ""))
    if path == "/echo":
        body = environ["wsgi.input"].read()
        out = json.dumps({"protocol": environ["SERVER_PROTOCOL"],
                          "method": environ["REQUEST_METHOD"], "path": path,
                          "query": environ.get("QUERY_STRING", ""), "length": len(body),
                          "host": environ.get("HTTP_HOST"),
                          "cookie": environ.get("HTTP_COOKIE"),
                          "scheme": environ["wsgi.url_scheme"],
                          "port": environ.get("REMOTE_PORT")}).encode()
        start_response("200 OK", [("Content-Type", "application/json"),
                                  ("Connection", "keep-alive"), ("X-Test", "1")])
        return [out]
    if path == "/download":
        n = int(query.get("n", "0"))

        def chunks():
            left = n
            block = b"x" * CHUNK
            while left > 0:
                yield block[:left]
                left -= CHUNK
        start_response("200 OK", [("Content-Type", "application/octet-stream"),
                                  ("Content-Length", str(n))])
        return chunks()
    if path == "/upload":
        stream = environ["wsgi.input"]
        digest, total = hashlib.sha256(), 0
        while True:
            chunk = stream.read(CHUNK)
            if not chunk:
                break
            digest.update(chunk)
            total += len(chunk)
        start_response("200 OK", [("Content-Type", "application/json")])
        return [json.dumps({"length": total, "sha256": digest.hexdigest()}).encode()]
    if path == "/sleep":
        time.sleep(float(query.get("s", "1")))
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"slept"]
    if path == "/calls":
        start_response("200 OK", [("Content-Type", "application/json")])
        return [json.dumps({"calls": CALLS[0]}).encode()]
    if path == "/raise":
        raise RuntimeError("the app fails before its head")
    if path == "/fail":
        def failing():
            yield b"y" * CHUNK
            raise RuntimeError("the app fails after its head")
        start_response("200 OK", [("Content-Type", "text/plain")])
        return failing()
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"ok"]


async def asgi(scope, receive, send):
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    CALLS[0] = next(_calls)
    path = scope["path"]
    query = _query(scope["query_string"].decode())
    headers = dict((k.decode(), v.decode()) for k, v in scope["headers"])

    async def respond(body: bytes, ctype: bytes = b"text/plain", extra=()) -> None:
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", ctype), *extra]})
        await send({"type": "http.response.body", "body": body})

    if path in ("/echo", "/upload"):
        digest, total = hashlib.sha256(), 0
        more = True
        while more:
            message = await receive()
            chunk = message.get("body", b"")
            digest.update(chunk)
            total += len(chunk)
            more = message.get("more_body", False)
        if path == "/upload":
            await respond(json.dumps({"length": total, "sha256": digest.hexdigest()}).encode(),
                          b"application/json")
            return
        version = scope["http_version"]
        await respond(json.dumps({"protocol": "HTTP/2.0" if version == "2" else "HTTP/" + version,
                                  "http_version": version,
                                  "method": scope["method"], "path": path,
                                  "query": scope["query_string"].decode(), "length": total,
                                  "host": headers.get("host"), "cookie": headers.get("cookie"),
                                  "scheme": scope["scheme"],
                                  "port": str(scope["client"][1])}).encode(),
                      b"application/json", [(b"connection", b"keep-alive"), (b"x-test", b"1")])
        return
    if path == "/download":
        n = int(query.get("n", "0"))
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-length", str(n).encode())]})
        block = b"x" * CHUNK
        while n > 0:
            await send({"type": "http.response.body", "body": block[:n], "more_body": n > CHUNK})
            n -= CHUNK
        return
    if path == "/sleep":
        await asyncio.sleep(float(query.get("s", "1")))
        await respond(b"slept")
        return
    if path == "/calls":
        await respond(json.dumps({"calls": CALLS[0]}).encode(), b"application/json")
        return
    if path == "/raise":
        raise RuntimeError("the app fails before its head")
    if path == "/fail":
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"y" * CHUNK, "more_body": True})
        raise RuntimeError("the app fails after its head")
    if path == "/trailers":
        await send({"type": "http.response.start", "status": 200, "trailers": True,
                    "headers": [(b"content-type", b"text/plain")]})
        await send({"type": "http.response.body", "body": b"with trailers"})
        await send({"type": "http.response.trailers", "more_trailers": True,
                    "headers": [(b"x-checksum", b"abc")]})
        await send({"type": "http.response.trailers", "headers": [(b"X-Count", b"2")]})
        return
    if path == "/extensions":
        await respond(json.dumps(sorted(scope.get("extensions", {}))).encode())
        return
    if path == "/file":
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"application/octet-stream")]})
        await send({"type": "http.response.pathsend", "path": query["path"]})
        return
    await respond(b"ok")
