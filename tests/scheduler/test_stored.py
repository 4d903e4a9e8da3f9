"""Stored decisions in the columns format expand into the same full decision as ``to_body``.

The cycle's bodies are built together in numpy (controller/scheduler/stored.py); over seeded
random queues (every classification, gangs, constraints, quota and unknown priority classes,
missing inputs, preemption, delay scheduling, a cluster down and one cordoned) each expands,
with its context's cluster names, into exactly ``Decision.model_validate(d.to_body())``; and a
cycle written to a real store reads back the same."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import numpy as np
import orjson
import pytest
from sqlalchemy import insert

from controller.domain.decision_codec import FRAME, unpack_frame
from controller.policies import PlacementPolicy
from controller.scheduler.batch import BatchScheduler
from controller.scheduler.decision import COLUMNS_FORMAT, Decision
from controller.scheduler.queue import PendingQueue
from controller.scheduler.scheduler import Scheduler
from controller.scheduler.stored import Encoded, context_of, cycle_rows, encode
from controller.sim.federation import ALL_PLUGINS
from controller.store import schema as t
from controller.store.store import Store
from tests.scheduler.test_parity import federation_state, queue_specs, quota, running_view


def row_of(d: Any) -> dict[str, Any]:
    """The decision row's own columns, as ``cycle_rows`` writes them (the body leaves them out)."""
    return {
        "job_id": d.job_id,
        "attempt": d.attempt,
        "status": d.status,
        "cluster": d.cluster,
        "created_at": datetime.fromtimestamp(d.t, UTC),
    }


def expanded(parts: list[dict[str, Any]], d: Any, body: dict[str, Any]) -> Decision:
    """A stored body read back as the store reads it (``latest_decision``): the row's columns,
    unpacked, with the parts it names filled in from ``parts``."""
    from controller.domain.decision_codec import resolve_parts, unpack_decision, unpack_frame

    by_key = {p["key"]: p for p in parts}
    full = resolve_parts(
        {**row_of(d), **unpack_decision(body)},
        lambda key: by_key[key]["body"],
        lambda key, offset, length: by_key[key]["data"][offset : offset + length],
        lambda key: unpack_frame(by_key[key]["data"]),
    )
    return Decision.model_validate(full)


def encoded(bs: BatchScheduler, decisions: list) -> Encoded:
    got = encode(bs, decisions)
    assert got is not None
    return got


def cycles(seed: int, wait: float, n: int = 300, count: int = 3) -> list[tuple[BatchScheduler, list]]:
    policy = PlacementPolicy.model_validate({**ALL_PLUGINS.model_dump(), "locality_wait_max_s": wait})
    bs = BatchScheduler(Scheduler.from_policy(policy), quota())
    snap = federation_state(seed)
    running = running_view(seed, snap.size)
    q = PendingQueue()
    for i, spec in enumerate(queue_specs(seed, n)):
        q.push(f"job-{i:05d}", bs.shapes.intern(spec), runtime=spec.expected_runtime_s)
    out = []
    for cycle in range(count):
        res = bs.run(q, snap, limit=n // 2, running=running, now=1000.0 + 100 * cycle, epoch=3)
        out.append((bs, res.decisions))
        snap.allocated *= 0.7
    return out


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("wait", [0.0, 300.0])
def test_columns_bodies_expand_as_to_body(seed: int, wait: float) -> None:
    formats = set()
    for bs, decisions in cycles(seed, wait):
        parts, bodies, summaries = encoded(bs, decisions)
        context, blob, why = parts
        assert context["body"]["names"] == bs.names
        assert context["key"] == context_of(**context["body"])["key"]
        assert {b["blob"][0] for b in bodies} == {blob["key"]}
        assert {b["blob"][3] for b in bodies} == {FRAME}
        # the chunk's bytes are a zstd frame, smaller than what it holds
        assert len(blob["data"]) < len(unpack_frame(blob["data"]))
        assert {b["why"][0] for b in bodies} == {why["key"]}
        for d, body, summary in zip(decisions, bodies, summaries, strict=True):
            formats.add(body.get("format"))
            ref = Decision.model_validate(d.to_body())
            assert "summary" not in body and "rejected" not in body  # named, not repeated
            assert expanded(parts, d, body) == ref
            assert summary == d.summary() == ref.summary
    assert COLUMNS_FORMAT in formats


def test_decisions_alike_but_for_their_reasons_keep_their_own_summaries() -> None:
    """``encode`` shares an explanation between decisions with the same group counts, chosen
    cluster, job-level reason and origin only when the plugins' messages they cite are the
    same too: decisions whose summaries differ only in the reasons' text (another data set in
    a residency message) each get their own; and each distinct explanation is written once."""
    import re

    alike = 0
    for seed in range(5):
        for bs, decisions in cycles(seed, 0.0):
            parts, bodies, summaries = encoded(bs, decisions)
            by_shape: dict[str, set[str]] = {}
            for d, body, summary in zip(decisions, bodies, summaries, strict=True):
                assert summary == d.summary() == expanded(parts, d, body).summary
                by_shape.setdefault(re.sub(r"\(.*?\)", "()", summary), set()).add(summary)
            alike += sum(len(s) > 1 for s in by_shape.values())
            refs = {tuple(b["why"]) for b in bodies}
            assert len(refs) == len(set(summaries)) < len(bodies)  # shared, each written once
            assert sum(r[2] for r in refs) == len(unpack_frame(parts[-1]["data"]))
    assert alike > 0  # the queues have such decisions: the rule above was exercised


@pytest.mark.parametrize("chunk", [1, 16, 97])
def test_a_cycle_encoded_in_chunks_expands_the_same(monkeypatch: pytest.MonkeyPatch, chunk: int) -> None:
    """``encode`` works ``ENCODE_CHUNK`` decisions at a time: a frame of packed bytes per chunk,
    a context per distinct digest, every body named to its own; each expands as ``to_body``."""
    import controller.scheduler.stored as stored

    monkeypatch.setattr(stored, "ENCODE_CHUNK", chunk)
    for bs, decisions in cycles(3, 300.0, n=300, count=2):
        parts, bodies, _ = encoded(bs, decisions)
        contexts = [p for p in parts if "body" in p]
        *frames, _why = [p for p in parts if "data" in p]
        assert len(frames) == -(-len(decisions) // chunk)  # one a chunk
        by_key = {c["key"]: c["body"] for c in contexts}
        assert len(by_key) == len(contexts)  # each context once
        assert all(c["key"] == context_of(**c["body"])["key"] for c in contexts)
        ends = {f["key"]: 0 for f in frames}
        for j, (d, body) in enumerate(zip(decisions, bodies, strict=True)):
            ref = Decision.model_validate(d.to_body())
            if body.get("format") != COLUMNS_FORMAT:
                assert Decision.model_validate(body) == ref
                continue
            key, offset, length, codec = body["blob"]
            # a body names its own chunk's frame; in it the decisions' bytes follow each other
            assert key == frames[j // chunk]["key"] and offset == ends[key] and codec == FRAME
            assert body["ctx"] in by_key
            ends[key] = offset + length
            assert expanded(parts, d, body) == ref
        assert ends == {f["key"]: len(unpack_frame(f["data"])) for f in frames}


def test_a_frame_that_fails_on_the_worker_fails_the_encoding(monkeypatch: pytest.MonkeyPatch) -> None:
    """The frames are compressed on the frame worker's thread while the chunks are encoded; a
    failure there is the cycle's, raised by ``encode``, not a part left without its bytes."""
    import controller.scheduler.stored as stored

    def broken(data: bytes) -> bytes:
        raise MemoryError("no room for the frame")

    monkeypatch.setattr(stored, "_compress", broken)
    bs, decisions = cycles(1, 0.0, n=50, count=1)[0]
    with pytest.raises(MemoryError, match="no room for the frame"):
        encode(bs, decisions)


def _compress_in_child(queue: Any) -> None:
    import controller.scheduler.stored as stored

    queue.put(stored._compressing(b"yiwang " * 100).result(timeout=10))


def test_a_forked_process_compresses_on_a_worker_of_its_own() -> None:
    """The frame worker is a thread; a child made by a fork does not have the parent's, and
    would wait forever on a frame handed to it: it starts its own."""
    import multiprocessing

    import zstandard

    import controller.scheduler.stored as stored

    assert stored._compressing(b"parent").result(timeout=10)  # the parent's worker is running
    ctx = multiprocessing.get_context("fork")
    queue = ctx.Queue()
    child = ctx.Process(target=_compress_in_child, args=(queue,))
    child.start()
    frame = queue.get(timeout=30)
    child.join(timeout=30)
    assert child.exitcode == 0
    assert zstandard.ZstdDecompressor().decompress(frame) == b"yiwang " * 100


@pytest.mark.parametrize("seed", range(4))
def test_a_frame_unpacks_to_each_decisions_bytes_joined_in_python(seed: int) -> None:
    """A chunk's frame (stored column by column) unpacks, per decision kept, to its codes (a byte
    a cluster, or two little-endian where its row does not fit a byte) then its records, each
    record its columns side by side; a decision not kept has nothing and its records are
    skipped, so the next decision's records are still its own; the lengths say where each
    decision's bytes are."""
    import zstandard

    from controller.scheduler.kernels import group_counts
    from controller.scheduler.stored import _Columns, _frame

    rng = np.random.default_rng(seed)
    D, n = 40, 9
    codes = np.array([0, 0x0101, 0x0203, 0xFFFF, 0x0701, 0x0140], dtype=np.uint16)  # the last two: wide
    G = rng.choice(codes, (D, n), p=[0.4, 0.2, 0.2, 0.16, 0.02, 0.02])
    small, G8, *_ = group_counts(G)
    assert small.any() and not small.all()  # both widths are exercised
    counts = rng.integers(0, 4, D)
    record = np.dtype([("c0", "<i4"), ("c1", "u1"), ("c2", "<f8")])
    records = np.zeros(int(counts.sum()), dtype=record)
    for name in record.names or ():
        records[name] = rng.integers(0, 200, len(records))
    keep = rng.random(D) > 0.2
    columns = [np.ascontiguousarray(records[name]) for name in record.names or ()]
    cols = _Columns(["i", "b", "d"], columns, counts, set(), [None] * D, [False] * D)
    payload, lengths = _frame(G, small, G8, cols, keep)
    frame = zstandard.ZstdCompressor(level=1).compress(payload)
    expected, at = [], 0
    for j in range(D):
        own = records[at : at + counts[j]].tobytes()
        at += counts[j]
        if not keep[j]:
            assert lengths[j] == 0
            continue
        code = G8[j].tobytes() if small[j] else G[j].astype("<u2").tobytes()
        expected.append(code + own)
        assert lengths[j] == len(code + own)
    assert unpack_frame(frame) == b"".join(expected)


def test_a_frame_of_a_chunk_without_records_unpacks_to_its_codes() -> None:
    import zstandard

    from controller.scheduler.kernels import group_counts
    from controller.scheduler.stored import _Columns, _frame

    G = np.array([[0, 0x0101], [0x0203, 0]], dtype=np.uint16)
    small, G8, *_ = group_counts(G)
    cols = _Columns([], [], np.zeros(2, dtype=np.int64), set(), [None] * 2, [False] * 2)
    payload, lengths = _frame(G, small, G8, cols, np.ones(2, dtype=bool))
    frame = zstandard.ZstdCompressor(level=1).compress(payload)
    assert unpack_frame(frame) == G8.tobytes() and lengths.tolist() == [2, 2]


def test_columns_bodies_are_smaller_than_zlib_packed_to_body() -> None:
    from controller.domain.decision_codec import pack_decision

    for bs, decisions in cycles(1, 0.0, n=400, count=1):
        (_, blob, why), bodies, _ = encoded(bs, decisions)
        shared = len(blob["data"]) + len(why["data"])
        ours = np.mean([len(orjson.dumps(b)) for b in bodies]) + shared / len(bodies)
        packed = np.mean([len(orjson.dumps(pack_decision(d.to_body()))) for d in decisions])
        assert ours < packed * 1.3


def as_written_before_frames(rows: list[dict[str, Any]], parts: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Every other columns body of ``rows`` rewritten as rows stored before the chunks' bytes were
    zstd frames: naming a slice of an uncompressed part (a copy of its frame's bytes under
    another key); the parts to add."""
    frames = {p["key"]: p["data"] for p in parts if "data" in p and p["data"][:4] == b"\x28\xb5\x2f\xfd"}
    plain = {key: {"key": "u" + key[1:], "data": unpack_frame(data)} for key, data in frames.items()}
    for row in rows[::2]:
        for field in ("blob", "why"):
            ref = row["body"].get(field)
            if ref is not None:
                key, offset, length, _ = ref
                row["body"] = {**row["body"], field: [plain[key]["key"], offset, length]}
    return list(plain.values())


@pytest.mark.parametrize("chunk", [1024, 13])
def test_a_cycle_written_to_the_store_reads_back(
    db_url: str, monkeypatch: pytest.MonkeyPatch, chunk: int
) -> None:
    """On SQLite and PostgreSQL, a cycle's decisions read back from the store as ``to_body``, both
    those naming a slice of a chunk's zstd frame and those written before, naming a slice of a
    cycle's uncompressed bytes."""
    import controller.scheduler.stored as stored

    monkeypatch.setattr(stored, "ENCODE_CHUNK", chunk)  # 13: the cycle in chunks, a frame each
    store = Store(db_url)
    (_, decisions), *_ = cycles(2, 0.0, n=120, count=1)
    rows = cycle_rows(decisions, epoch=3, lease_until=datetime.now(UTC), previous={})
    older = as_written_before_frames(rows.decisions, rows.parts)
    assert older and any(len(r["body"].get("blob", ())) == 3 for r in rows.decisions)
    at = datetime.now(UTC)
    with store.tx() as conn:
        conn.execute(
            insert(t.jobs),
            [
                {
                    "id": d.job_id,
                    "tenant": "x",
                    "name": "x",
                    "phase": "Pending",
                    "attempt": 1,
                    "epoch": 0,
                    "priority": 0,
                    "spec": {},
                    "message": "",
                    "created_at": at,
                    "updated_at": at,
                }
                for d in decisions
            ],
        )
        store.put_decision_parts(conn, [*rows.parts, *older])
        store.put_decision_parts(conn, rows.parts[:1])  # the context again: nothing new
        store.executemany(conn, insert(t.decisions), rows.decisions)
    by_id = {d.job_id: d for d in decisions}
    framed = sum(len(r["body"].get("blob", ())) == 4 for r in rows.decisions)
    assert framed > 20
    for row in rows.decisions:
        body = store.latest_decision(row["job_id"])
        assert body is not None
        assert Decision.model_validate(body) == Decision.model_validate(by_id[row["job_id"]].to_body())
    store.close()


@pytest.mark.parametrize("seed", range(3))
def test_moved_bytes_is_the_chosen_clusters_transfer(seed: int) -> None:
    """``CompactDecision.moved_bytes`` (the WAN-bytes counter of the console's series) is the
    chosen cluster's ``transfer_bytes`` in the full decision (``shape.transfer`` is over the
    shape's feasible clusters, not every cluster)."""
    placed = moved = 0
    for _, decisions in cycles(seed, 0.0, n=200, count=1):
        for d in decisions:
            full = Decision.model_validate(d.to_body())
            if d.chosen < 0:
                assert d.moved_bytes() == 0.0
                continue
            placed += 1
            chosen = next(c for c in full.feasible if c.cluster == d.cluster)
            assert d.moved_bytes() == chosen.transfer_bytes
            moved += d.moved_bytes() > 0
    assert placed > 20 and moved > 10


def test_moved_bytes_stored_as_floats_when_not_all_or_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    """The stored decisions keep the bytes moved as bits of the inputs moved only while each
    input's bytes moved are 0 or its size (``DatasetTable.bits_exact``); a transfer model that
    moves part of a data set makes them store the bytes themselves, and they still expand as
    ``to_body``."""
    from controller.scheduler import datatable as datatable_module

    real = datatable_module.dataset_transfer

    def partial(ds, snap):  # type: ignore[no-untyped-def]
        seconds, moved = real(ds, snap)
        return seconds, moved * 0.5

    monkeypatch.setattr(datatable_module, "dataset_transfer", partial)
    for bs, decisions in cycles(2, 0.0, n=200, count=1):
        assert bs._table is not None and not bs._table.bits_exact
        parts, bodies, _ = encoded(bs, decisions)
        assert parts[0]["body"]["cols"].endswith("d")  # the bytes moved as float64
        assert not any("sizes" in b for b in bodies)
        for d, body in zip(decisions, bodies, strict=True):
            assert expanded(parts, d, body) == Decision.model_validate(d.to_body())


def _not_finite_as_nan(d: Decision) -> str:
    import json

    def num(x: float) -> float | str:
        return x if np.isfinite(x) else "NaN"

    feasible = sorted(  # the order of a score that is not a number is not kept
        (
            {**f.model_dump(), "total": num(f.total), "scores": {k: num(v) for k, v in f.scores.items()}}
            for f in d.feasible
        ),
        key=lambda f: f["cluster"],
    )
    return json.dumps(
        {**d.model_dump(mode="json", exclude={"feasible"}), "feasible": feasible}, sort_keys=True
    )


@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf])
def test_a_decision_with_a_score_that_is_not_finite_is_stored_whole(value: float) -> None:
    """The columns hold finite thousandths: a decision with a score that is not finite stores its
    ``to_body`` (packed); the others of the chunk keep the columns, their values unchanged."""
    ((bs, decisions),) = cycles(2, 0.0, count=1)
    placed = [d for d in decisions if d.chosen >= 0 and len(d.shape.idx) > 1]
    target = placed[len(placed) // 2]
    target.shape.static[1, -1] = value  # its first static score on its last feasible cluster
    parts, bodies, summaries = encoded(bs, decisions)
    formats = {}
    for d, body, summary in zip(decisions, bodies, summaries, strict=True):
        formats[id(d)] = body.get("format")
        got, ref = expanded(parts, d, body), Decision.model_validate(d.to_body())
        if d.shape is target.shape:  # JSON has no inf or NaN: they read back as NaN
            assert _not_finite_as_nan(got) == _not_finite_as_nan(ref)
            assert any(np.isnan(f.total) for f in got.feasible)
        else:
            assert got == ref
        assert summary == d.summary()
    assert formats[id(target)] != COLUMNS_FORMAT
    others = [d for d in decisions if d.shape is not target.shape and d.free_rows is not None]
    assert others and all(formats[id(d)] == COLUMNS_FORMAT for d in others)


def test_a_column_beyond_an_int32_is_not_encoded() -> None:
    """Thousandths beyond an int32 (a transfer of 25 days: 2.2e9 ms) do not fit the columns: the
    encoder says so and the cycle stores every decision's ``to_body``, which expands the same."""
    ((bs, decisions),) = cycles(3, 0.0, count=1)
    target = next(d for d in decisions if d.chosen >= 0 and d.shape.has_transfer)
    target.shape.static[len(target.shape.layout) + 1, 0] = 2.2e6  # transfer seconds
    assert encode(bs, decisions) is None
    out = cycle_rows(decisions, epoch=1, lease_until=datetime.now(UTC), previous={})
    for d, row in zip(decisions, out.decisions, strict=True):
        assert expanded([], d, row["body"]) == Decision.model_validate(d.to_body())


def test_a_body_stored_before_the_explanations_were_parts_reads_the_same() -> None:
    """Rows written in the first columns format (``.../1``) hold their explanation inline; they
    expand as they did, beside the rows that name theirs."""
    ((bs, decisions),) = cycles(1, 0.0, n=120, count=1)
    parts, bodies, _ = encoded(bs, decisions)
    why = {p["key"]: unpack_frame(p["data"]) for p in parts if "data" in p}
    checked = 0
    for d, body in zip(decisions, bodies, strict=True):
        if body.get("format") != COLUMNS_FORMAT:
            continue
        key, offset, length, codec = body.pop("why")
        old = {
            **body,
            **orjson.loads(why[key][offset : offset + length]),
            "format": "yiwang.decision.columns/1",
        }
        assert expanded(parts, d, old) == expanded(parts, d, {**body, "why": [key, offset, length, codec]})
        assert expanded(parts, d, old) == Decision.model_validate(d.to_body())
        checked += 1
    assert checked > 50


def test_a_reference_in_an_unknown_codec_is_refused_not_read_as_bytes() -> None:
    """A body naming its bytes in a codec this reader does not know is refused, never sliced as
    if the part held plain bytes; a frame reference read without ``frame`` likewise."""
    from controller.domain.decision_codec import resolve_parts

    parts = {"k": b"0123456789"}

    def piece(key: str, offset: int, length: int) -> bytes:
        return parts[key][offset : offset + length]

    assert resolve_parts({"blob": ["k", 2, 3]}, dict, piece)["bytes"] == b"234"
    with pytest.raises(ValueError, match="unknown codec"):
        resolve_parts({"blob": ["k", 2, 3, "lz4"]}, dict, piece, lambda key: parts[key])
    with pytest.raises(ValueError, match="frame"):
        resolve_parts({"why": ["k", 0, 2, FRAME]}, dict, piece)
