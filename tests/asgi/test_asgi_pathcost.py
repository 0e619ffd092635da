"""bench/pathcost.py's ASGI mode: the requests it times must all be answered, through the ASGI
handler (a task per request), or its numbers would time less than a request's work."""

from __future__ import annotations

import pytest

from bench.pathcost import REQUESTS, interface, measure

pytestmark = pytest.mark.timeout(30)


def test_an_asgi_app_takes_the_asgi_path():
    assert interface("asgi_hello") == "asgi" and interface("hello") == "wsgi"


@pytest.mark.parametrize("name", sorted(REQUESTS))
async def test_every_asgi_request_is_answered(name):
    us = await measure(REQUESTS[name], count=300, rounds=2, app="asgi_hello")
    assert 0 < us < 10_000
