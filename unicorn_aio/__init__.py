"""unicorn_aio: gunicorn's pre-fork process model, rebuilt on asyncio, uvloop and httptools."""

__version__ = "0.1.0"


def __getattr__(name):
    # serve/Server pull in uvloop-free asyncio machinery only when asked for, so that
    # `python -m unicorn_aio --help` and config errors stay fast.
    if name in ("serve", "Server"):
        from . import server
        return getattr(server, name)
    raise AttributeError(f"module 'unicorn_aio' has no attribute {name!r}")
