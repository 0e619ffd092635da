"""``wsgi.early_hints`` (gunicorn 27) in use, for the tests.

/         one 103 Early Hints (a Link preload), then 200 "ok"
/two      two 103s (str, then latin-1 bytes), then 200
/late     a generator: the head and "a" go out, then a hint (too late: nothing), then "b"
/bad      a hint whose field name has a space: the app fails before its head, a 500
"""

from __future__ import annotations

LINK = ("Link", "</style.css>; rel=preload; as=style")


def app(environ, start_response):
    hints = environ["wsgi.early_hints"]
    path = environ["PATH_INFO"]
    if path == "/late":
        return _late(hints, start_response)
    if path == "/bad":
        hints([("Bad Name", "x")])
    hints([LINK])
    if path == "/two":
        hints([(b"Link", b"</app.js>; rel=preload; as=script")])
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "2")])
    return [b"ok"]


def _late(hints, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    yield b"a"
    hints([LINK])
    yield b"b"
