"""A scraper for the master's --metrics-bind listener: what Prometheus would read, parsed by
prometheus_client's own parsers (text format, or OpenMetrics)."""

from __future__ import annotations

import http.client
import time


def fetch(port: int, path: str = "/metrics", accept: str | None = None,
          method: str = "GET", timeout: float = 5.0) -> tuple[int, dict[str, str], bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request(method, path, headers={"Accept": accept} if accept else {})
        resp = conn.getresponse()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
    finally:
        conn.close()


def samples(port: int, openmetrics: bool = False) -> dict[tuple, float]:
    """{(sample name, ((label, value), ...)): value} of one scrape."""
    if openmetrics:
        from prometheus_client.openmetrics.parser import text_string_to_metric_families
        status, headers, body = fetch(port, accept="application/openmetrics-text; version=1.0.0")
        assert headers["content-type"].startswith("application/openmetrics-text"), headers
    else:
        from prometheus_client.parser import text_string_to_metric_families
        status, headers, body = fetch(port)
        assert headers["content-type"].startswith("text/plain; version=0.0.4"), headers
    assert status == 200, body
    out = {}
    for family in text_string_to_metric_families(body.decode()):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def value(found: dict[tuple, float], name: str, **labels: str) -> float:
    return found.get((name, tuple(sorted(labels.items()))), 0.0)


def wait_value(port: int, name: str, expected: float, timeout: float = 10.0,
               **labels: str) -> dict[tuple, float]:
    """Scrape until ``name`` reads ``expected`` (the workers report once a heartbeat)."""
    deadline = time.monotonic() + timeout
    while True:
        found = samples(port)
        if value(found, name, **labels) == expected or time.monotonic() > deadline:
            return found
        time.sleep(0.1)
