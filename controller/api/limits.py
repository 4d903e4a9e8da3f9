"""ASGI middleware refusing bodies over the configured size with 413.

The body is read (at most ``max_bytes`` of it) before the application sees it, so an oversized
upload is refused whole, whether it announces its length or streams in chunks.
"""

from __future__ import annotations

import json

from starlette.types import ASGIApp, Message, Receive, Scope, Send


class BodySizeLimit:
    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def _reject(self, send: Send) -> None:
        body = json.dumps(
            {
                "type": "https://yiwang.gov.cn/problems/content-too-large",
                "title": "Content too large",
                "status": 413,
                "detail": f"request bodies are limited to {self.max_bytes} bytes",
            }
        ).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [
                    (b"content-type", b"application/problem+json"),
                    (b"content-length", str(len(body)).encode()),
                    (b"connection", b"close"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] in ("GET", "HEAD", "OPTIONS", "DELETE"):
            await self.app(scope, receive, send)
            return
        for name, value in scope.get("headers", []):
            if name == b"content-length" and value.isdigit() and int(value) > self.max_bytes:
                await self._reject(send)
                return
        _, messages, too_large = await read_body(receive, self.max_bytes)
        if too_large:
            await self._reject(send)
            return
        await self.app(scope, replay(messages, receive), send)


async def read_body(receive: Receive, limit: int) -> tuple[bytes, list[Message], bool]:
    """The request body, the messages it came in, and whether it passed ``limit`` (reading stops
    there, so an oversized upload is never held whole)."""
    messages: list[Message] = []
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        messages.append(message)
        if message["type"] != "http.request":
            break
        chunk = message.get("body", b"")
        chunks.append(chunk)
        size += len(chunk)
        if size > limit:
            return b"", messages, True
        if not message.get("more_body", False):
            break
    return b"".join(chunks), messages, False


def replay(messages: list[Message], receive: Receive) -> Receive:
    """A receive that hands out the already-read messages first."""
    pending = list(messages)

    async def next_message() -> Message:
        if pending:
            return pending.pop(0)
        return await receive()

    return next_message
