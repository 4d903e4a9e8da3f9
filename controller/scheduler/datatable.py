"""Per data set: the clusters residency forbids and the time and bytes to bring it to each
cluster, as arrays the batch cycle gathers by job."""

from __future__ import annotations

from itertools import chain
from typing import Any

import numpy as np
import numpy.typing as npt

from controller.datasets import Classification, DatasetRead
from controller.scheduler.framework import (
    CodeArray,
    Snapshot,
)
from controller.scheduler.ordering import (
    ORDER_CONSTRAINED_FIRST as ORDER_CONSTRAINED_FIRST,
)
from controller.scheduler.ordering import ORDER_DRF as ORDER_DRF
from controller.scheduler.plugins.locality import dataset_transfer
from controller.scheduler.plugins.residency import (
    dataset_rule,
    first_forbidding,
)

IntArray = npt.NDArray[np.intp]


class DatasetTable:
    """Per data set, one row: the clusters a job reading it may not run on (residency), the
    reason, its classification, and the time and bytes to bring it to each cluster (locality).
    Row 0 is no data set: it pads jobs with fewer inputs. Rows are added as data sets are first
    read; the owner starts a new table when what the rows read changes (``key``: the clusters'
    names and owners, the data sets, the network, the residency policy; not their health or
    capacity) or the table outgrows its bound."""

    def __init__(self, snap: Snapshot, key: Any) -> None:
        self.snap = snap
        self.key = key
        self.row: dict[str, int] = {}
        n = snap.size
        self.forbidden = np.zeros((64, n), dtype=bool)
        self.seconds = np.zeros((64, n))
        self.moved = np.zeros((64, n))
        self.klass = np.zeros(64, dtype=np.int64)  # classification code, 0 for row 0
        self.message: list[str] = [""]
        self.sizes: list[float] = [0.0]
        self.bits_exact = True  # every input's bytes moved to a cluster are 0 or its size
        self.hits = 0
        self.misses = 0

    def __len__(self) -> int:
        return len(self.message) - 1

    def _add(self, ds: DatasetRead) -> int:
        r = len(self.message)
        if r == len(self.klass):  # grow by doubling
            self.forbidden = np.concatenate([self.forbidden, np.zeros_like(self.forbidden)])
            self.seconds = np.concatenate([self.seconds, np.zeros_like(self.seconds)])
            self.moved = np.concatenate([self.moved, np.zeros_like(self.moved)])
            self.klass = np.concatenate([self.klass, np.zeros_like(self.klass)])
        allowed, message = dataset_rule(ds, self.snap)
        if allowed is not None:
            self.forbidden[r] = ~allowed
        self.seconds[r], self.moved[r] = dataset_transfer(ds, self.snap)
        self.klass[r] = CLASS_CODES[ds.classification]
        size = float(ds.size_bytes)
        self.sizes.append(size)
        if not ((self.moved[r] == 0.0) | (self.moved[r] == size)).all():
            self.bits_exact = False  # the moved bytes are not "all of it or nothing" per input
        self.message.append(message)
        self.row[ds.id] = r
        return r

    def rows(self, inputs: list[tuple[str, ...]]) -> tuple[IntArray, list[int], list[list[int]]]:
        """Each job's inputs present in the snapshot as rows (jobs x most inputs, padded with
        row 0), the jobs with an input the snapshot does not have, and the rows as lists."""
        get = self.row.get
        missing: list[int] = []
        lists: list[list[int]] = []
        found = 0
        for j, ids in enumerate(inputs):
            out = [get(d) for d in ids]
            if None in out:
                lists.append(self._add_rows(j, ids, missing))
            else:
                found += len(out)
                lists.append(out)  # type: ignore[arg-type]  # no None in it
        self.hits += found
        lens = np.fromiter(map(len, lists), dtype=np.intp, count=len(lists))
        table = np.zeros((len(inputs), max(1, int(lens.max(initial=0)))), dtype=np.intp)
        total = int(lens.sum())
        if total:  # every job's rows from column 0 on, in one assignment
            starts = np.cumsum(lens) - lens
            within = np.arange(total) - np.repeat(starts, lens)
            table[np.repeat(np.arange(len(lists)), lens), within] = list(chain.from_iterable(lists))
        return table, sorted(set(missing)), lists

    def _add_rows(self, j: int, ids: tuple[str, ...], missing: list[int]) -> list[int]:
        """``rows`` for a job with an input not in the table yet: the rows of its inputs the
        snapshot has (added as first read), ``j`` noted in ``missing`` for each it has not."""
        out = []
        for d in ids:
            r = self.row.get(d)
            if r is None:
                ds = self.snap.datasets.get(d)
                if ds is None:
                    missing.append(j)
                    continue
                self.misses += 1
                r = self._add(ds)
            else:
                self.hits += 1
            out.append(r)
        return out

    def residency(self, ids: IntArray) -> tuple[CodeArray, list[list[str]]]:
        codes, newly = first_forbidding(self.forbidden[ids])
        message = self.message
        lists: list[list[str]] = [_NO_MESSAGES] * len(ids)
        for j in np.flatnonzero(newly.any(axis=1)).tolist():
            lists[j] = [message[r] for r in ids[j][newly[j]].tolist()]
        return codes, lists

    def class_keys(self, ids: IntArray) -> list[int]:
        """Each job's input classifications in order, as one integer (green's cache key)."""
        codes = self.klass[ids]
        weights = 4 ** np.arange(ids.shape[1], dtype=np.int64)
        out: list[int] = (codes * weights).sum(axis=1).tolist()
        return out

    def stats(self) -> dict[str, Any]:
        asked = self.hits + self.misses
        return {
            "size": len(self),
            "hits": self.hits,
            "misses": self.misses,
            "hit_rate": round(self.hits / asked, 4) if asked else None,
        }


_NO_MESSAGES: list[str] = []
CLASS_CODES = {c: k for k, c in enumerate(Classification, start=1)}
