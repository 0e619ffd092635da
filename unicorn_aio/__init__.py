"""unicorn_aio: gunicorn's pre-fork process model, rebuilt on asyncio, uvloop and httptools."""

__version__ = "0.1.0"
