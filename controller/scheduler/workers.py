"""Threads of this process that do a cycle's work beside it, on the machine's other core.

The scheduling cycle is one thread of Python. ``ProcessWorker`` is a single worker thread that
work is handed to when it releases the interpreter's lock (zstd's compression) and the cycle
need not wait for it until later (the stored decisions' frames, collected at the end of
``encode``): the worker holds the lock only to take a task and to hand back its result. Work the
cycle would wait for at once gains nothing: an idle worker takes about 0.25 ms to wake on this
VM, as long as a chunk's compiled kernels take (docs/benchmarks.md, the kernels in halves). A
thread that ran Python instead was slower than none (docs/benchmarks.md, "the convoy effect").
A process made by a fork starts a worker of its own: the parent's thread is not in the child,
and a task handed to it would never run."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, TypeVar

T = TypeVar("T")


class ProcessWorker:
    """One worker thread per process, made when first used (``submit``)."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._pool: tuple[int, ThreadPoolExecutor] | None = None
        self._lock = threading.Lock()

    def submit(self, fn: Callable[..., T], *args: Any) -> Future[T]:
        pid = os.getpid()
        pool = self._pool
        if pool is None or pool[0] != pid:
            with self._lock:
                pool = self._pool
                if pool is None or pool[0] != pid:
                    pool = self._pool = (pid, ThreadPoolExecutor(1, thread_name_prefix=self.name))
        return pool[1].submit(fn, *args)
