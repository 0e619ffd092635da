"""Which engine (engine.py's ``H2Engine``) a connection gets: libnghttp2's when it loads, else
python-hyper h2's; ``UNICORN_AIO_H2_ENGINE=h2|nghttp2`` forces one (the tests run both).

Apart from engine.py so that the interface does not import its implementations, which import
it.  The choice is made once per process: a failed import is not cached by Python, and a
connection must not pay for one.
"""

from __future__ import annotations

import os
from typing import Callable

from unicorn_aio.http2.engine import H2Engine, H2Settings

ENGINES = ("nghttp2", "h2")

_chosen: dict[str, Callable[[H2Settings], H2Engine]] = {}
_missing: dict[str, str] = {}  # engine -> why it does not load


def engine_class(name: str) -> Callable[[H2Settings], H2Engine]:
    """The engine ``name`` (raises ImportError or OSError when it does not load here)."""
    found = _chosen.get(name)
    if found is None:
        if name == "nghttp2":
            from unicorn_aio.http2.nghttp2 import NghttpEngine
            found = NghttpEngine
        elif name == "h2":
            from unicorn_aio.http2.h2engine import H2LibEngine
            found = H2LibEngine
        else:
            raise ValueError(f"UNICORN_AIO_H2_ENGINE={name!r}: use one of {', '.join(ENGINES)}")
        _chosen[name] = found
    return found


def default_engine() -> str:
    """UNICORN_AIO_H2_ENGINE, else the first of ENGINES that loads."""
    name = os.environ.get("UNICORN_AIO_H2_ENGINE")
    if name:
        return name
    for name in ENGINES:
        if engine_available(name) is None:
            return name
    raise ImportError("no HTTP/2 engine loads: pip install 'unicorn_aio[http2]'")


def make_engine(settings: H2Settings, name: str | None = None) -> H2Engine:
    """An engine for one connection: ``name``, else ``default_engine()``."""
    return engine_class(name or default_engine())(settings)


def engine_available(name: str) -> str | None:
    """None when engine ``name`` loads here, else why not (the tests skip with it)."""
    why = _missing.get(name)
    if why is None and name not in _chosen:
        try:
            engine_class(name)
        except (ImportError, OSError) as exc:
            why = _missing[name] = f"{name} engine unavailable: {exc}"
    return why
