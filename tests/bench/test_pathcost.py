"""bench/pathcost.py drives a real protocol and server; it must keep answering every request."""

from __future__ import annotations

import pytest

from bench.pathcost import REQUESTS, measure

pytestmark = pytest.mark.timeout(30)


@pytest.mark.parametrize("name", sorted(REQUESTS))
async def test_every_request_is_answered(name):
    us = await measure(REQUESTS[name], count=300, rounds=2)
    assert 0 < us < 10_000
