"""The static rows' store (``shapes.StaticStore``): what the evaluation writes there is what the
per-shape ``take`` made; an epoch's end retires it, and its block is reused only when no view of
it is left."""

from __future__ import annotations

import numpy as np
import pytest

from controller.scheduler.kernels import StaticSource, gather_static, source_row
from controller.scheduler.shapes import StaticStore, static_source
from tests.scheduler.test_stored import cycles


def test_gather_static_and_the_rows_read_in_place_are_the_takes_side_by_side() -> None:
    rng = np.random.default_rng(0)
    J, H, n = 40, 6, 23
    M = rng.random((J, H, n))
    idx = [np.flatnonzero(rng.random(n) < p) for p in rng.uniform(0.0, 1.0, J)]
    idx[3] = idx[3][:0]  # a shape feasible nowhere
    offsets = np.zeros(J + 1, dtype=np.intp)
    np.cumsum([len(i) for i in idx], out=offsets[1:])
    block = np.full(7 + H * int(offsets[-1]) + 5, -1.0)
    gather_static(M, np.concatenate(idx), offsets, block, 7)
    starts = 7 + H * offsets[:-1]
    for j in range(J):
        k = len(idx[j])
        got = block[starts[j] : starts[j] + H * k].reshape(H, k)
        np.testing.assert_array_equal(got, M[j].take(idx[j], axis=1))
    assert (block[:7] == -1.0).all() and (block[-5:] == -1.0).all()
    lens = offsets[1:] - offsets[:-1]
    order = rng.permutation(J)  # the encoder reads them in the loop's order
    job_pos = np.repeat(np.arange(J), lens[order])
    side_offs = np.cumsum(lens[order]) - lens[order]
    for height in (1, 4, H):
        source = StaticSource(block, starts[order], lens[order], side_offs, height)
        want = np.concatenate([M[j].take(idx[j], axis=1)[:height] for j in order], axis=1)
        kept = np.flatnonzero(rng.random(want.shape[1]) < 0.7)
        for h in range(height):
            np.testing.assert_array_equal(source_row(source, kept, job_pos, h), want[h].take(kept))
        with pytest.raises(IndexError):
            source_row(source, kept, job_pos, height)
        joined = StaticSource.of_block(want, job_pos)  # the same rows as one block
        for h in range(height):
            np.testing.assert_array_equal(source_row(joined, kept, job_pos, h), want[h].take(kept))


def test_the_store_grows_keeping_what_it_holds() -> None:
    store = StaticStore(np.empty(4))
    a = store.take(3)
    assert store.block is not None
    store.block[a : a + 3] = [1.0, 2.0, 3.0]
    b = store.take(10)  # past the end: doubled or more
    assert (a, b) == (0, 3) and store.block is not None and len(store.block) >= 13
    np.testing.assert_array_equal(store.block[:3], [1.0, 2.0, 3.0])
    block = store.retire()
    assert block is not None and store.block is None
    with pytest.raises(AssertionError):
        store.take(1)


def test_a_new_epoch_reuses_the_block_only_when_no_view_of_it_is_left() -> None:
    ((bs, decisions),) = cycles(1, 0.0, count=1)
    store = bs._store
    assert store is not None and store.block is not None
    shape = next(d.shape for d in decisions if len(d.shape.idx))
    kept = shape.static  # a view, held across the epoch's end
    before = kept.copy()
    bs._new_epoch()
    assert store.block is None
    assert bs._store is None  # a view was left: the block is not reused
    with pytest.raises(RuntimeError, match="epoch ended"):
        _ = shape.static  # the shape's epoch is over: it is evaluated again before it is read
    np.testing.assert_array_equal(kept, before)  # and the view still reads what it read
    del kept

    ((bs, decisions),) = cycles(2, 0.0, count=1)
    store = bs._store
    assert store is not None and store.block is not None
    block_id = id(store.block)
    bs._new_epoch()
    assert bs._store is not None and bs._store is not store and id(bs._store.block) == block_id
    assert bs._store.used == 0


def test_static_source_reads_the_store_as_the_shapes_rows_joined() -> None:
    for bs, decisions in cycles(3, 300.0, count=2):
        shapes = [d.shape for d in decisions if d.free_rows is not None and len(d.shape.idx)]
        assert shapes and all(s.store is bs._store for s in shapes)
        height = min(s.static.shape[0] for s in shapes)
        want = np.concatenate([s.static[:height] for s in shapes], axis=1)
        source = static_source(shapes)
        assert source.height == height and source.src is bs._store.block  # read in place
        job_pos = np.repeat(np.arange(len(shapes)), [len(s.idx) for s in shapes])
        every = np.arange(want.shape[1])
        for h in range(height):
            np.testing.assert_array_equal(source_row(source, every, job_pos, h), want[h])


def test_static_source_joins_the_rows_of_shapes_from_different_stores() -> None:
    """Shapes of two schedulers (two stores): their rows are joined first, and read the same."""
    shapes = []
    for seed in (2, 3):
        ((_, decisions),) = cycles(seed, 300.0, count=1)
        shapes += [d.shape for d in decisions if d.free_rows is not None and len(d.shape.idx)][:40]
    assert len({id(s.store) for s in shapes}) == 2
    height = min(s.static.shape[0] for s in shapes)
    want = np.concatenate([s.static[:height] for s in shapes], axis=1)
    source = static_source(shapes)
    assert source.height == height and not any(source.src is s.store.block for s in shapes if s.store)
    job_pos = np.repeat(np.arange(len(shapes)), [len(s.idx) for s in shapes])
    every = np.arange(want.shape[1])
    for h in range(height):
        np.testing.assert_array_equal(source_row(source, every, job_pos, h), want[h])
