"""What gunicorn's pre_request and post_request hooks receive: views of one WSGI request."""

from __future__ import annotations

from typing import TYPE_CHECKING

from unicorn_aio.http.protocol import Request

if TYPE_CHECKING:
    from unicorn_aio.wsgi.handler import WSGICycle


class HookRequest:
    """What gunicorn's pre_request/post_request hooks receive as ``req``."""

    def __init__(self, req: Request) -> None:
        self.method = req.method.decode("ascii")
        self.uri = req.url.decode("latin-1")
        self.path, _, self.query = self.uri.partition("#")[0].partition("?")
        self.version = tuple(int(n) for n in req.version.split("."))
        self.headers = [(n.decode("latin-1").upper(), v.decode("latin-1")) for n, v in req.headers]


class HookResponse:
    """What gunicorn's post_request hook receives as ``resp``."""

    def __init__(self, cycle: WSGICycle) -> None:
        self.status = cycle.status
        self.status_code = int(cycle.status[:3]) if cycle.status else None
        self.headers = list(getattr(cycle, "headers", ()))  # gunicorn's resp.headers: a list
        self.sent = cycle.sent
