"""unicorn_aio: gunicorn's pre-fork process model, rebuilt on asyncio, uvloop and httptools.

The public API, for embedding in an asyncio program (see docs/embedding.md)::

    await unicorn_aio.serve(app, bind="127.0.0.1:8000", threads=8)

    server = unicorn_aio.Server(app, bind="127.0.0.1:0")
    task = asyncio.create_task(server.serve())
    await server.ready.wait()
    ...
    await server.shutdown()

Everything else is internal and may change between releases.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"
__all__ = ["Config", "ConfigError", "Server", "serve", "__version__"]

if TYPE_CHECKING:
    from unicorn_aio.config.config import Config
    from unicorn_aio.errors import ConfigError
    from unicorn_aio.server import Server, serve

# Imported on first use, so that `python -m unicorn_aio --help` and config errors stay fast.
_LAZY = {"Server": "unicorn_aio.server", "serve": "unicorn_aio.server",
         "Config": "unicorn_aio.config.config", "ConfigError": "unicorn_aio.errors"}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'unicorn_aio' has no attribute {name!r}")
    import importlib
    return getattr(importlib.import_module(module), name)


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


def compiled() -> bool:
    """Whether the request path runs compiled with mypyc (setup.py), not interpreted."""
    from unicorn_aio.http import protocol

    return not protocol.__file__.endswith(".py")
