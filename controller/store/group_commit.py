"""Group commit for submissions: one writer thread commits what concurrent requests queued."""

from __future__ import annotations

import asyncio
import queue
import threading
from collections.abc import Sequence
from typing import Any, Protocol

from controller.errors import StoreUnavailable

# Group-commit writer threads under PostgreSQL. Two were measured on this machine (issue 15): no
# gain in submissions/s and more API CPU per job, so one, like SQLite.
PG_GROUP_COMMIT_WRITERS = 1


class JobWriter(Protocol):
    """What the group committer writes through (the store's jobs repository)."""

    def insert_jobs(self, rows: Sequence[dict[str, Any]]) -> list[tuple[dict[str, Any], bool]]: ...

    def insert_jobs_bulk(self, rows: Sequence[dict[str, Any]]) -> None: ...


class GroupCommitter:
    """Group commit for submissions: concurrent requests hand their job rows to one writer
    thread, which inserts everything queued so far in one transaction (one fsync) and then
    resolves each waiter. A waiter is resolved only after its row committed, so a 2xx answer
    built on it is durable (as ``insert_jobs`` guarantees for a single batch)."""

    def __init__(self, store: JobWriter, max_batch: int = 1024, writers: int = 1) -> None:
        """``writers``: threads taking batches from the one queue. Under PostgreSQL, whose
        transactions run side by side, a second writer can fill and send the next batch while
        the first waits for its commit (``PG_GROUP_COMMIT_WRITERS``; measured without gain on
        this machine, so one); under SQLite (one writer at a time) one is enough."""
        self.store = store
        self.max_batch = max_batch
        self._queue: queue.SimpleQueue[
            tuple[dict[str, Any], asyncio.AbstractEventLoop, asyncio.Future[Any]]
        ] = queue.SimpleQueue()
        self._threads = [
            threading.Thread(target=self._run, name=f"yiwang-group-commit-{k}", daemon=True)
            for k in range(writers)
        ]
        for thread in self._threads:
            thread.start()

    def submit(self, row: dict[str, Any]) -> asyncio.Future[tuple[dict[str, Any], bool]]:
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[tuple[dict[str, Any], bool]] = loop.create_future()
        self._queue.put((row, loop, fut))
        return fut

    @staticmethod
    def _resolve_all(items: list[tuple[asyncio.Future[Any], Any, BaseException | None]]) -> None:
        for fut, result, exc in items:
            if fut.done():
                continue
            if exc is not None:
                fut.set_exception(exc)
            else:
                fut.set_result(result)

    def _run(self) -> None:
        while True:
            batch = [self._queue.get()]
            while len(batch) < self.max_batch:
                try:
                    batch.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            rows = [r for r, _, _ in batch]
            try:
                results: list[tuple[dict[str, Any], bool]] = self._insert(rows)
                errors: list[BaseException | None] = [None] * len(rows)
            except StoreUnavailable as exc:
                # The store is failing over: nothing in the batch is acknowledged (its commit may
                # or may not have happened; a retry with the same Idempotency-Key finds out).
                # Row by row would only wait for the same dead primary once per row.
                results, errors = [({}, False)] * len(rows), [exc] * len(rows)
            except Exception:  # one bad row must not fail the others: retry them one by one
                results, errors = [], []
                for row in rows:
                    try:
                        results.append(self.store.insert_jobs([row])[0])
                        errors.append(None)
                    except Exception as exc:
                        results.append(({}, False))
                        errors.append(exc)
            # One wake-up per event loop for the whole batch, not one per waiter: each
            # call_soon_threadsafe writes to the loop's self-pipe.
            by_loop: dict[
                asyncio.AbstractEventLoop, list[tuple[asyncio.Future[Any], Any, BaseException | None]]
            ]
            by_loop = {}
            for (_, loop, fut), res, err in zip(batch, results, errors, strict=True):
                by_loop.setdefault(loop, []).append((fut, res, err))
            for loop, items in by_loop.items():
                try:
                    loop.call_soon_threadsafe(self._resolve_all, items)
                except RuntimeError:  # the loop closed while its batch committed: no one waits
                    continue

    def _insert(self, rows: list[dict[str, Any]]) -> list[tuple[dict[str, Any], bool]]:
        keyed = [r for r in rows if r.get("idempotency_key")]
        if keyed:
            # Keys need a lookup per row (and the same key twice in one batch must create once).
            seen: dict[tuple[str, str], int] = {}
            unique: list[dict[str, Any]] = []
            where: list[int] = []
            for r in rows:
                k = (r["tenant"], r["idempotency_key"]) if r.get("idempotency_key") else None
                if k is not None and k in seen:
                    where.append(-1 - seen[k])
                    continue
                if k is not None:
                    seen[k] = len(unique)
                where.append(len(unique))
                unique.append(r)
            done = self.store.insert_jobs(unique)
            return [done[w] if w >= 0 else (done[-1 - w][0], False) for w in where]
        self.store.insert_jobs_bulk(rows)
        return [(r, True) for r in rows]
