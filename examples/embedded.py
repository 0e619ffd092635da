"""unicorn_aio inside an existing asyncio program: `python examples/embedded.py`.

The server shares the program's event loop; the WSGI app still runs in the thread pool.
"""

import asyncio
import signal

import unicorn_aio


def app(environ, start_response):
    body = b"served from inside an asyncio program\n"
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]


async def main() -> None:
    server = unicorn_aio.Server(app, bind="127.0.0.1:0", threads=4)
    await server.start()  # binds and loads the app: raises here if it cannot (a port in use...)
    serving = asyncio.create_task(server.serve())  # serves until shutdown()
    print("listening on", ", ".join(server.addresses), "- Ctrl-C to stop", flush=True)

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await server.shutdown()  # graceful: in-flight requests finish first
    await serving


if __name__ == "__main__":
    asyncio.run(main())
