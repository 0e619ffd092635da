"""bench/h2pathcost.py drives a real server's h2c connection; it must get every request answered
(a response's HEADERS and DATA each time), for each engine that loads here."""

from __future__ import annotations

import pytest

from bench.h2pathcost import measure
from unicorn_aio.http2.engines import ENGINES, engine_available

pytestmark = pytest.mark.timeout(30)


@pytest.mark.parametrize("engine", ENGINES)
async def test_every_stream_is_answered(engine, monkeypatch):
    why = engine_available(engine)
    if why:
        pytest.skip(why)
    monkeypatch.setenv("UNICORN_AIO_H2_ENGINE", engine)
    us, out, stats = await measure(count=300, rounds=1, profile=False)
    assert 0 < us < 10_000 and out >= 30 and stats is None
