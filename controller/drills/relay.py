"""A byte relay from a unix socket to a TCP address: ``python -m controller.drills.relay PATH HOST
PORT``. Started inside a drill's hub namespace, it lets the runner (outside) reach the controller
(inside) through the file system, so no address is opened outside the namespaces."""

from __future__ import annotations

import asyncio
import contextlib
import sys


async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Copy bytes from ``reader`` to ``writer`` until either side closes; then close ``writer``."""
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except (ConnectionError, OSError):
        pass
    finally:
        with contextlib.suppress(Exception):
            writer.close()


async def serve(path: str, host: str, port: int) -> None:
    async def handle(cr: asyncio.StreamReader, cw: asyncio.StreamWriter) -> None:
        try:
            ur, uw = await asyncio.wait_for(asyncio.open_connection(host, port), 10.0)
        except (OSError, TimeoutError):
            cw.close()
            return
        await asyncio.gather(pipe(cr, uw), pipe(ur, cw))

    server = await asyncio.start_unix_server(handle, path)
    async with server:
        await server.serve_forever()


def main(argv: list[str]) -> None:
    path, host, port = argv
    asyncio.run(serve(path, host, int(port)))


if __name__ == "__main__":
    main(sys.argv[1:])
