"""The agents' HTTP client makes no failed import per request. httpcore imports ``sniffio`` on
every lock and event it sets up and falls back to asyncio when that fails; Python does not cache
a failed import, so without sniffio installed every request searched ``sys.path`` (a third of the
embedded federation's event loop). sniffio is a declared dependency; this holds it, and any other
import a request repeats and fails, to none."""

from __future__ import annotations

import asyncio
import builtins
from collections import Counter
from typing import Any

import httpx
import pytest

CLIENT_STACK = {"httpx", "httpcore", "h11", "anyio", "sniffio", "asyncio", "controller"}
RESPONSE = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Type: text/plain\r\n\r\nok"


async def _requests(n: int, failed: Counter[str], monkeypatch: pytest.MonkeyPatch) -> None:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while await reader.readuntil(b"\r\n\r\n"):
                writer.write(RESPONSE)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionResetError):
            pass
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}/v1/agents/prov-hubei/heartbeat"
    real_import = builtins.__import__

    def counting_import(name: str, globals: Any = None, *args: Any, **kwargs: Any) -> Any:
        try:
            return real_import(name, globals, *args, **kwargs)
        except ImportError:
            importer = (globals or {}).get("__name__", "")
            if importer.split(".")[0] in CLIENT_STACK:  # not another test's leftover thread
                failed[f"{name} (from {importer})"] += 1
            raise

    async with server, httpx.AsyncClient(timeout=10.0) as client:
        assert (await client.post(url, json={})).status_code == 200  # first use: one-time imports
        monkeypatch.setattr(builtins, "__import__", counting_import)
        for _ in range(n):
            assert (await client.post(url, json={})).status_code == 200
        monkeypatch.setattr(builtins, "__import__", real_import)


def test_agent_requests_make_no_failed_imports(monkeypatch: pytest.MonkeyPatch) -> None:
    failed: Counter[str] = Counter()
    asyncio.run(_requests(20, failed, monkeypatch))
    assert failed == Counter(), f"imports failed on every request: {dict(failed)}"
