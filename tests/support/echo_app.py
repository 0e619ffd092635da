"""The app of the differential test (tests/parity), run by unicorn_aio and by gunicorn alike:
it answers 200 with JSON of what the server told it (the environ keys a WSGI app reads, every
HTTP_* key) and of the body it read from wsgi.input.

It reads the whole body before start_response, so a body the server refuses while it is read
(a bad chunk size, a truncated body) is refused before any response has begun: the server's
own error answer is what the client sees. Nothing here may import unicorn_aio: gunicorn's venv
runs this file too.
"""

from __future__ import annotations

import json

KEYS = ("REQUEST_METHOD", "SCRIPT_NAME", "PATH_INFO", "QUERY_STRING", "RAW_URI",
        "SERVER_PROTOCOL", "SERVER_NAME", "CONTENT_TYPE", "CONTENT_LENGTH", "REMOTE_ADDR",
        "wsgi.url_scheme")


def app(environ, start_response):
    body = environ["wsgi.input"].read()
    seen = {key: environ[key] for key in KEYS if key in environ}
    seen.update((key, value) for key, value in environ.items() if key.startswith("HTTP_"))
    seen["body"] = body.decode("latin-1")
    out = json.dumps(seen, sort_keys=True).encode()
    start_response("200 OK", [("Content-Type", "application/json"),
                              ("Content-Length", str(len(out)))])
    return [out]
