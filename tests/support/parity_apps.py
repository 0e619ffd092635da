"""Apps for tests/test_settings_parity.py, run in real worker processes: each answers with what
the server told it, as JSON."""

from __future__ import annotations

import json

_lifespan_started = []


async def asgi_scope(scope, receive, send):
    """root_path, path and whether lifespan startup ran in this worker."""
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                _lifespan_started.append(True)
                await send({"type": "lifespan.startup.complete"})
            else:
                await send({"type": "lifespan.shutdown.complete"})
                return
    body = json.dumps({"root_path": scope["root_path"], "path": scope["path"],
                       "lifespan": bool(_lifespan_started)}).encode()
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"application/json")]})
    await send({"type": "http.response.body", "body": body})


def wsgi_environ(environ, start_response):
    """SCRIPT_NAME, PATH_INFO and REMOTE_ADDR."""
    body = json.dumps({key: environ[key] for key in ("SCRIPT_NAME", "PATH_INFO",
                                                     "REMOTE_ADDR")}).encode()
    start_response("200 OK", [("Content-Type", "application/json"),
                              ("Content-Length", str(len(body)))])
    return [body]
