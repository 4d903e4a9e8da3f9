"""Combined writes: concurrent callers' small writes committed in one transaction.

A caller adds its item and waits; whichever caller finds no write in flight takes everything
queued so far and writes it in one transaction (one fsync, one hold of SQLite's write lock) for
all of them, then wakes them. No thread of its own: the writer is always a caller (flat combining,
as a database's group commit does with its log). A caller returns only after a transaction holding
its item committed, or raises what that transaction raised, so an answer built on it is as
durable as one built on a write of its own.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class _Batch:
    """One transaction's items' shared outcome: whether its write ended, and what it raised.
    Each caller holds the record of the batch its item joined, so it reads that batch's outcome
    however many batches are written before it wakes."""

    __slots__ = ("done", "error")

    def __init__(self) -> None:
        self.done = False
        self.error: BaseException | None = None


class Combiner(Generic[K, V]):
    """Writes ``{key: value}`` batches through ``write``; a key's later value in the same batch
    replaces its earlier one (``merge`` decides which survives: the later arrival by default)."""

    def __init__(
        self,
        write: Callable[[dict[K, V]], None],
        merge: Callable[[V, V], V] | None = None,
    ) -> None:
        self._write = write
        self._merge = merge
        self._cond = threading.Condition()
        self._pending: dict[K, V] = {}
        self._open = _Batch()  # the batch items join now
        self._writing = False
        self.batches = 0  # transactions written (for tests and measurements)
        self.items = 0

    def put(self, key: K, value: V) -> None:
        with self._cond:
            old = self._pending.get(key)
            self._pending[key] = value if old is None or self._merge is None else self._merge(old, value)
            mine = self._open
            while not mine.done and self._writing:
                self._cond.wait()
            if mine.done:
                if mine.error is not None:
                    raise mine.error
                return
            # No write in flight and this item's batch unwritten: write it (with all queued since).
            batch, self._pending = self._pending, {}
            self._open = _Batch()
            self._writing = True
        error: BaseException | None = None
        try:
            self._write(batch)
        except BaseException as exc:
            error = exc
        with self._cond:
            self._writing = False
            mine.done, mine.error = True, error
            self.batches += 1
            self.items += len(batch)
            self._cond.notify_all()
        if error is not None:
            raise error

    def queued(self) -> int:
        """Items waiting for the next transaction."""
        with self._cond:
            return len(self._pending)
