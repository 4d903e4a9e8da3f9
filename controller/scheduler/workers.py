"""Threads of this process that do a cycle's compiled or compressing work beside it.

The scheduling cycle is one thread of Python; some of its steps are compiled code that releases
the interpreter's lock (the numba kernels, ``nogil``; zstd). ``ProcessWorker`` is a single
worker thread such a step is handed to, so that it runs on the machine's other core while the
cycle goes on: the worker holds the lock only to take its next task and to hand back its
result. (A thread that ran Python instead was slower than none: docs/benchmarks.md, "the convoy
effect".) A process made by a fork starts a worker of its own: the parent's thread is not in
the child, and a task handed to it would never run."""

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
