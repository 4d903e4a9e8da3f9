"""Compiled kernels of the batch loop's per-job steps (numba, compiled on first use and cached on
disk beside this module).

A job's dynamic step runs on its few dozen statically feasible clusters: as numpy, each of its
dozen array operations costs about a microsecond of call overhead for a few nanoseconds of
arithmetic; compiled, the whole step is one pass over the rows (docs/benchmarks.md, issue 15).

Each kernel does the plugins' arithmetic in the plugins' order, element by element, so its
result is the one numpy gives (IEEE, no fast-math; NaN handled as ``np.minimum`` and
``np.argmax`` handle it); tests/scheduler/test_kernels.py checks that on random and degenerate
rows, and tests/scheduler/test_parity.py checks whole cycles against the plugins' own kernels.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from numba import njit

from controller.scheduler.framework import BoolArray, FloatArray


def _compiled(fn: Callable[..., Any]) -> Any:
    """``fn`` compiled (no Python objects, numpy's floating-point error model, the GIL released),
    its machine code cached on disk: beside this module, else in the user's cache directory
    (a read-only image: ``$HOME/.cache``); where neither can be written, compiled per process."""
    options: dict[str, Any] = {"nogil": True, "error_model": "numpy"}
    try:
        return njit(cache=True, **options)(fn)
    except RuntimeError:  # numba: "cannot cache function ...: no locator available"
        return njit(**options)(fn)


@_compiled
def _minimum(a: float, b: float) -> float:  # np.minimum: NaN when either is
    if a != a:
        return a
    if b != b:
        return b
    return a if a <= b else b


@_compiled
def _maximum(a: float, b: float) -> float:  # np.maximum: NaN when either is
    if a != a:
        return a
    if b != b:
        return b
    return a if a >= b else b


@_compiled
def _fit_balance(
    rows: FloatArray,
    demand: FloatArray,
    cap_cpu: FloatArray,
    cap_mem: FloatArray,
    static_total: FloatArray,
    weight: float,
) -> int:
    n = rows.shape[0]
    if n == 0:
        return -1
    d0, d1, d2 = demand[0], demand[1], demand[2]
    best = -1
    best_value = 0.0
    best_ok = False
    for i in range(n):
        left_cpu = rows[i, 0] - d0
        left_mem = rows[i, 1] - d1
        ok = left_cpu >= 0.0 and left_mem >= 0.0 and rows[i, 2] - d2 >= 0.0
        if ok:
            share = _minimum(left_cpu / cap_cpu[i], left_mem / cap_mem[i])
            balance = _minimum(_maximum(share, 0.0), 1.0) * 100.0
            value = static_total[i] + (balance if weight == 1.0 else weight * balance)
            if value != value:  # np.argmax: the first NaN is the maximum
                return i
        else:
            value = -np.inf
        if best < 0 or value > best_value:
            best, best_value, best_ok = i, value, ok
    return best if best_ok else -1


def fit_balance(
    rows: FloatArray,
    demand: FloatArray,
    cap_cpu: FloatArray,
    cap_mem: FloatArray,
    static_total: FloatArray,
    weight: float,
) -> int:
    """The capacity filter and the balance score of a job without GPUs, fused: the position of
    the highest ``static_total + weight * balance`` among the rows the job fits on (ties: the
    first), -1 when it fits on none. The same as the numpy
    ``np.where(fits, total, -inf).argmax()`` followed by ``fits[best]`` (``-1`` when that is
    False): ``rows`` is free capacity (cpu, memory, GPUs) of the job's feasible clusters,
    ``cap_cpu``/``cap_mem`` their capacities, ``static_total`` their weighted static scores."""
    return int(_fit_balance(rows, demand, cap_cpu, cap_mem, static_total, float(weight)))


@_compiled
def _normalize(values: FloatArray, feasible: BoolArray, out: FloatArray) -> None:
    for j in range(values.shape[0]):
        lo, hi = np.inf, -np.inf
        for c in range(values.shape[1]):
            if feasible[j, c]:
                lo = _minimum(lo, values[j, c])
                hi = _maximum(hi, values[j, c])
        span = hi - lo
        flat = span <= 1e-12
        for c in range(values.shape[1]):
            if not feasible[j, c]:
                out[j, c] = 0.0
            elif flat:
                out[j, c] = 100.0
            else:
                out[j, c] = 100.0 * (hi - values[j, c]) / span


def normalize_rows(values: FloatArray, feasible: BoolArray) -> FloatArray:
    """``normalize_lower_is_better`` on every row of ``values`` (jobs x clusters) at once: a
    row's feasible values mapped to 0..100, its lowest scoring 100 (a row whose feasible values
    are all equal: 100 each), the rest 0. The numpy of the same, element by element:
    ``lo``/``hi`` the feasible minimum and maximum (NaN when one is NaN, as ``np.min``),
    ``100 * (hi - v) / (hi - lo)``, a span of at most 1e-12 counting as flat."""
    out = np.empty(values.shape, dtype=np.float64)
    _normalize(np.ascontiguousarray(values, dtype=np.float64), np.ascontiguousarray(feasible), out)
    return out
