"""The HTTP settings a connection reads, copied out of Config once per server.

Compiled with the connections (setup.py), which read a few of them on every request: a plain
Python class would cost each read a generic attribute lookup.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from unicorn_aio.http.contract import or_never
from unicorn_aio.http.forwarded import AddressList, ProxyHeaders

if TYPE_CHECKING:
    from unicorn_aio.config.config import Config


# (request line, header fields, one field, whole head, raw request-line window) in bytes
RequestLimits = tuple[int, int, int, int, int]


def request_limits(cfg: Config) -> RequestLimits:
    """From gunicorn's limit_request_* settings, read as gunicorn 27's code reads them: a
    request line of 0 is unlimited and one over 8190 is 8190; 0 fields (or over 32768) is
    32768; a field size of 0 is the default, 8190 (its docs say unlimited)."""
    line = min(cfg.limit_request_line, 8190)
    fields = cfg.limit_request_fields
    fields = fields if 0 < fields <= 32768 else 32768
    field_size = cfg.limit_request_field_size or 8190
    # The largest legal head: a request line plus every field at its limit.
    head = (line or 65536) + 2 + fields * (field_size + 2) + 2
    return line, fields, field_size, head, (line or 65536) + 64


@dataclass(frozen=True, slots=True)
class HttpOptions:
    """The HTTP settings a connection reads, copied out of Config once per server: plain
    attributes, read per request without a lookup through Config."""

    keepalive: float  # seconds an idle keep-alive connection waits; 0: close after a response
    header_timeout: float  # seconds to send a whole head; NEVER: no limit
    body_timeout: float  # seconds a body may stall (and a response go unread); NEVER: no limit
    body_min_rate: int  # bytes/s a streamed body must average; 0: no minimum
    inline_body_max: int  # body bytes buffered before the app is called
    header_map: str
    forwarder_headers: frozenset[bytes]  # underscore names check_headers lets through
    proxy_headers: ProxyHeaders  # what a trusted proxy may say of a request
    proxy_allow: AddressList | None  # --proxy-protocol: peers that may send the PROXY header
    limits: RequestLimits
    permit_method: bool  # gunicorn's permit_unconventional_http_method (requestline.py)
    casefold_method: bool

    @classmethod
    def from_config(cls, cfg: Config) -> HttpOptions:
        proxy_headers = ProxyHeaders(cfg)
        return cls(
            keepalive=cfg.keepalive,
            header_timeout=or_never(cfg.header_timeout),
            body_timeout=or_never(cfg.body_timeout),
            body_min_rate=cfg.body_min_rate,
            inline_body_max=cfg.inline_body_max,
            header_map=cfg.header_map,
            forwarder_headers=proxy_headers.underscore_names,
            proxy_headers=proxy_headers,
            proxy_allow=AddressList(cfg.proxy_allow_ips) if cfg.proxy_protocol else None,
            limits=request_limits(cfg),
            permit_method=cfg.permit_unconventional_http_method,
            casefold_method=cfg.casefold_http_method,
        )
