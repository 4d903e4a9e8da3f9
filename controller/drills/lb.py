"""The controller endpoint of the national drills: a TCP load balancer with HTTP health checks,
as a platform's global load balancer (or a DNS name with health checks) is in front of the two
national controllers.

    python -m controller.drills.lb LISTEN_HOST:PORT BACKEND_HOST:PORT [BACKEND_HOST:PORT ...]

Every ``interval`` seconds each backend's ``GET /readyz`` is asked (``timeout`` each). A new
connection goes to the first backend whose answer is 200 and says ``"leader": true`` (the
controller that schedules is where the primary store is), else to the first answering 200, else
to the first that accepts a TCP connection at all (so a client gets the controller's own 503
problem with Retry-After during a failover rather than a reset). Connections already open stay
where they are until either side closes them. Each routing change is logged with its time.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import time

from controller.drills.relay import pipe


def _split(addr: str) -> tuple[str, int]:
    host, _, port = addr.rpartition(":")
    return host, int(port)


class Balancer:
    def __init__(self, backends: list[tuple[str, int]], interval: float, timeout: float) -> None:
        self.backends = backends
        self.interval = interval
        self.timeout = timeout
        self.state: dict[tuple[str, int], str] = {b: "down" for b in backends}  # leader|ready|down
        self.route: tuple[str, int] | None = None

    async def check(self, b: tuple[str, int]) -> str:
        try:
            r, w = await asyncio.wait_for(asyncio.open_connection(*b), self.timeout)
        except (OSError, TimeoutError):
            return "down"
        try:
            w.write(f"GET /readyz HTTP/1.1\r\nHost: {b[0]}\r\nConnection: close\r\n\r\n".encode())
            await w.drain()
            raw = await asyncio.wait_for(r.read(65536), self.timeout)
        except (OSError, TimeoutError):
            return "down"
        finally:
            with contextlib.suppress(Exception):
                w.close()
        head, _, body = raw.partition(b"\r\n\r\n")
        status = head.split(b" ", 2)[1] if head.count(b" ") >= 2 else b"0"
        if status != b"200":
            return "answering"
        try:
            return "leader" if json.loads(body).get("leader") else "ready"
        except ValueError:
            return "ready"

    async def health_loop(self) -> None:
        while True:
            states = await asyncio.gather(*(self.check(b) for b in self.backends))
            self.state = dict(zip(self.backends, states, strict=True))
            new = self.pick()
            if new != self.route:
                print(
                    f"{time.time():.3f} route {self.route} -> {new} "
                    f"({', '.join(f'{h}:{p}={s}' for (h, p), s in self.state.items())})",
                    flush=True,
                )
                self.route = new
            await asyncio.sleep(self.interval)

    def pick(self) -> tuple[str, int] | None:
        for wanted in ("leader", "ready", "answering"):
            for b in self.backends:
                if self.state[b] == wanted:
                    return b
        return None

    async def handle(self, cr: asyncio.StreamReader, cw: asyncio.StreamWriter) -> None:
        order = [self.route] if self.route else []
        order += [b for b in self.backends if b not in order]
        for b in order:
            try:
                ur, uw = await asyncio.wait_for(asyncio.open_connection(*b), self.timeout)
            except (OSError, TimeoutError):
                continue
            await asyncio.gather(pipe(cr, uw), pipe(ur, cw))
            return
        cw.close()


async def serve(listen: tuple[str, int], lb: Balancer) -> None:
    server = await asyncio.start_server(lb.handle, *listen)
    print(f"{time.time():.3f} listening on {listen[0]}:{listen[1]}", flush=True)
    async with server:
        await asyncio.gather(server.serve_forever(), lb.health_loop())


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("listen")
    ap.add_argument("backends", nargs="+")
    ap.add_argument("--interval", type=float, default=0.5)
    ap.add_argument("--timeout", type=float, default=1.0)
    a = ap.parse_args(argv)
    lb = Balancer([_split(b) for b in a.backends], a.interval, a.timeout)
    asyncio.run(serve(_split(a.listen), lb))


if __name__ == "__main__":
    main()
