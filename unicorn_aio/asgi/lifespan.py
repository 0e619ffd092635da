"""The ASGI lifespan protocol: the app's startup before the first request, shutdown after the last.

The app is called once with a ``lifespan`` scope and runs as a task for the life of the server;
``startup()`` and ``shutdown()`` each send it an event and wait for its answer.  ``state`` is
the dict the app fills at startup; every request scope gets a shallow copy of it.

``--lifespan auto`` (the default) treats an app that raises on the lifespan scope as one that
does not support it, as most frameworks without lifespan handlers do; ``on`` makes that a boot
error; ``off`` never calls the app with a lifespan scope.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any, Callable

from unicorn_aio.http.contract import NEVER

if TYPE_CHECKING:
    from unicorn_aio.log.logger import Logger

SCOPE_ASGI = {"version": "3.0", "spec_version": "2.0"}


class LifespanFailure(Exception):
    """Startup failed: the worker must not serve (it exits with WORKER_BOOT_ERROR)."""


class Lifespan:
    def __init__(self, app: Callable[..., Any], mode: str, log: Logger) -> None:
        self.app = app
        self.mode = mode
        self.log = log
        self.state: dict[str, Any] = {}
        self.started = False  # startup completed: shutdown is owed
        self._task: asyncio.Task[None] | None = None
        self._inbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        # the app's reply to the current event: (message type, its "message")
        self._answer: asyncio.Future[tuple[str, str]] | None = None
        self._error: BaseException | None = None
        self._phase = "startup"

    async def startup(self) -> None:
        if self.mode == "off":
            return
        loop = asyncio.get_running_loop()
        self._inbox = asyncio.Queue()
        self._answer = answer = loop.create_future()
        self._inbox.put_nowait({"type": "lifespan.startup"})
        self._task = loop.create_task(self._main())
        await asyncio.wait([self._task, answer], return_when=asyncio.FIRST_COMPLETED)
        if answer.done():
            kind, message = answer.result()
            if kind == "lifespan.startup.failed":
                raise LifespanFailure(f"ASGI lifespan startup failed: {message or 'no message'}")
            self.started = True
            return
        # The app returned or raised without answering.
        if self._error is not None and self.mode == "on":
            raise LifespanFailure(f"ASGI lifespan startup failed: "
                                  f"{type(self._error).__name__}: {self._error}")
        if self.mode == "on":
            raise LifespanFailure("ASGI lifespan startup failed: the app returned without "
                                  "answering lifespan.startup (--lifespan on requires it)")

    async def shutdown(self, timeout: float = NEVER) -> None:
        task = self._task
        if not self.started or task is None:
            return
        self.started = False
        if task.done():
            return
        self._phase = "shutdown"
        self._answer = answer = asyncio.get_running_loop().create_future()
        self._inbox.put_nowait({"type": "lifespan.shutdown"})
        done, _ = await asyncio.wait([task, answer], timeout=timeout,
                                     return_when=asyncio.FIRST_COMPLETED)
        if answer.done():
            kind, message = answer.result()
            if kind == "lifespan.shutdown.failed":
                self.log.error("ASGI lifespan shutdown failed: %s", message or "no message")
        elif not done:
            self.log.error("ASGI lifespan shutdown did not finish within %gs", timeout)
        if not task.done():
            # The app answered and may still be awaiting receive(): it has nothing more to do.
            task.cancel()
            await asyncio.wait([task], timeout=1)

    async def _main(self) -> None:
        scope = {"type": "lifespan", "asgi": SCOPE_ASGI, "state": self.state}
        try:
            await self.app(scope, self._receive, self._send)
        except asyncio.CancelledError:
            raise
        except BaseException as exc:
            self._error = exc
            if self._answer is not None and self._answer.done():
                self.log.error("Exception in the ASGI lifespan protocol", exc_info=exc)
            elif self.mode == "auto":
                self.log.info("ASGI 'lifespan' protocol appears unsupported "
                              "(the app raised %s); serving without it", type(exc).__name__)
            else:
                self.log.error("Exception in the ASGI lifespan protocol", exc_info=exc)

    async def _receive(self) -> dict[str, Any]:
        return await self._inbox.get()

    async def _send(self, message: dict[str, Any]) -> None:
        kind = message["type"]
        if kind not in (f"lifespan.{self._phase}.complete", f"lifespan.{self._phase}.failed") or self._answer is None or self._answer.done():
            raise RuntimeError(f"unexpected ASGI lifespan message {kind!r}")
        self._answer.set_result((kind, message.get("message", "")))
