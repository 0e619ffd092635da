"""ASGI 3 on the worker loop: HTTP, lifespan and WebSocket."""
