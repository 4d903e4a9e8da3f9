"""A scheduling cycle's rows for the store: the stored decisions and the jobs' updates.

``cycle_rows`` is what the service's ``schedule_pending`` hands to ``Store.apply_cycle`` (and what
``make bench`` times as "decisions stored as in production").

The stored decisions of a cycle are built together, in numpy over every decision's clusters at
once, in the columns format (``COLUMNS_FORMAT``): per job a small JSON body naming its slice of
its chunk's packed bytes (one ``decision_parts`` row per ``ENCODE_CHUNK`` decisions, a zstd
frame: the slice is in the frame's decompressed bytes) and its explanation (the summary and the
plugins' reasons, ``why``), which holds

- per cluster (in the order of the cycle's context, ``decision_contexts``), one code: 0 for a
  cluster listed as feasible, ``plugin << 5 | reason`` for a cluster a filter rejected (the
  plugin by its position: the static filters, then the dynamic one, then the job-level reason;
  the reason indexing that plugin's messages in the explanation), 255 for neither; two bytes
  (``plugin << 8 | reason``) when a job has more plugins or reasons than fit one byte;
- per listed cluster, in cluster order: each score plugin's score and the total (rounded to
  three decimals, as integers of thousandths; one byte for a column of small whole numbers), the
  transfer seconds (thousandths) and the bytes moved (a bit per input, or the float).

What the decisions encoded together share (the cluster names, the score plugins, the columns'
types) is their context, stored once (another ``decision_parts`` row, one per distinct digest: a
cycle is encoded ``ENCODE_CHUNK`` decisions at a time) and named by digest in each body.

The explanations (``rejected`` and the summary, as JSON) are a third part per cycle, each
distinct one written once: about three in four decisions of a cycle explain as another does, and
inline they were about two thirds of a body (on the mixed queue 427 bytes with them, 247 without).

Read back with its parts filled in (``decision_codec.resolve_parts``), ``Decision.model_validate``
expands it into the same full decision as ``CompactDecision.to_body``
(tests/scheduler/test_stored.py). The cluster names are written once per cycle context, not per
job. A cycle whose plugins the encoder does not know stores ``to_body`` per job (zlib-packed).

Why one module of this length: the encoder's steps and the byte layout above are one contract
with the decoder (``Decision.model_validate``); split, the layout would be spread over modules."""

from __future__ import annotations

import hashlib
import secrets
import threading
from collections.abc import Mapping, Sequence
from concurrent.futures import Future
from datetime import UTC, datetime
from typing import Any, NamedTuple

import numpy as np
import orjson
import zstandard

from controller.domain.decision_codec import FRAME, FRAME_LEVEL, frame_payload, pack_bytes, pack_decision
from controller.scheduler.compact import CompactDecision, CycleContext
from controller.scheduler.decision import COLUMNS_FORMAT
from controller.scheduler.kernels import (
    UNLISTED_WIDE,
    Columns,
    Rows,
    group_counts,
    listing_codes,
    score_columns,
    source_row,
    triples,
)
from controller.scheduler.shapes import static_source
from controller.scheduler.workers import ProcessWorker

ENCODE_CHUNK = 1024  # decisions encoded together (``encode``)
# dtype codes of the packed columns
INT32, UINT8, FLOAT64 = "i", "b", "d"


class CycleRows(NamedTuple):
    scheduled: list[dict[str, Any]]  # {id, attempt, cluster, epoch, message, lease_expires_at}
    decisions: list[dict[str, Any]]  # rows of the decisions table
    messages: list[tuple[str, str]]  # (job id, summary) of jobs left Pending
    parts: list[dict[str, Any]]  # rows of decision_parts the decisions name (Store.put_decision_parts)
    summaries: list[str]  # each decision row's summary (the audit's, Store.audit_placements)


class Encoded(NamedTuple):
    """A cycle's stored decisions in the columns format (``encode``)."""

    parts: list[dict[str, Any]]  # the contexts, then the packed columns, then the explanations
    bodies: list[dict[str, Any]]  # per decision
    summaries: list[str]  # per decision


def context_of(names: Sequence[str], plugins: Sequence[str] = (), cols: str = "") -> dict[str, Any]:
    """What a cycle's stored decisions share: the cluster names (the codes' order), the score
    plugins and the packed columns' types, as a decision part keyed by its digest."""
    body = {"names": list(names), "plugins": list(plugins), "cols": cols}
    return {"key": hashlib.sha256(orjson.dumps(body)).hexdigest()[:32], "body": body}


def cycle_rows(
    decisions: Sequence[CompactDecision],
    *,
    epoch: int,
    lease_until: datetime,
    previous: Mapping[str, str],
) -> CycleRows:
    """``previous``: job id -> its current message; an unplaced job whose answer did not change
    writes nothing (keeps the history short)."""
    scheduled: list[dict[str, Any]] = []
    rows: list[dict[str, Any]] = []
    messages: list[tuple[str, str]] = []
    parts: list[dict[str, Any]] = []
    summaries: list[str] = []  # per row
    if not decisions:
        return CycleRows(scheduled, rows, messages, parts, summaries)
    ctx = decisions[0].ctx
    encoded = encode(ctx, decisions)
    if encoded is not None:
        parts, bodies, every_summary = encoded
    else:
        bodies = [pack_decision(d.to_body()) for d in decisions]
        every_summary = [body["summary"] for body in bodies]
    instants: dict[float, datetime] = {}  # a cycle's decisions share their instant
    for d, body, summary in zip(decisions, bodies, every_summary, strict=True):
        job_id = d.job_id or ""
        at = instants.get(d.t)
        if at is None:
            at = instants[d.t] = datetime.fromtimestamp(d.t, UTC)
        if d.chosen < 0 and previous.get(job_id) == summary:
            continue
        summaries.append(summary)
        cluster = d.cluster
        rows.append(
            {
                "job_id": d.job_id,
                "attempt": d.attempt,
                "cluster": cluster,
                "status": d.status,
                "body": body,
                "created_at": at,
            }
        )
        if d.chosen < 0:
            messages.append((job_id, summary))
        else:
            scheduled.append(
                {
                    "id": job_id,
                    "attempt": d.attempt,
                    "cluster": cluster,
                    "epoch": epoch,
                    "message": summary,
                    "lease_expires_at": lease_until,
                }
            )
    return CycleRows(scheduled, rows, messages, parts, summaries)


class _Listing(NamedTuple):
    """The jobs whose decision lists clusters (their positions in the cycle), their rows (one per
    statically feasible cluster, ``kernels.Rows``) and which rows ``to_body`` lists."""

    with_rows: list[int]
    rows: Rows
    listed: np.ndarray


class _Columns(NamedTuple):
    """The listed clusters' columns of a chunk: one record per listed row, the records of the
    chunk's decisions back to back (``columns``, each in its stored type), and how many records
    each decision has there (``counts``)."""

    types: list[str]
    columns: list[np.ndarray]
    counts: np.ndarray
    bad: set[int]  # jobs with a score or time that is not finite: they store ``to_body``
    sizes_of: list[list[float] | None]
    detail: list[bool]


class _Plugins(NamedTuple):
    """What ``encode`` needs of the cycle's plugins."""

    S: int  # static filters; the dynamic filter is plugin S + 1, the job-level reason S + 2
    dyn_filter: Any
    all_names: list[str]  # the static scores, then the dynamic one
    all_weights: list[float]
    order: list[int]  # the scores in the order bodies list them


def _plugins(ctx: CycleContext) -> _Plugins | None:
    if not ctx.fused or len(ctx.dynamic_filters) != 1 or len(ctx.dynamic_scores) != 1:
        return None
    dyn_score, dyn_w = ctx.dynamic_scores[0]
    all_names = [sc.NAME for sc, _ in ctx.static_scores] + [dyn_score.NAME]
    all_weights = [w for _, w in ctx.static_scores] + [dyn_w]
    order = sorted(range(len(all_names)), key=lambda i: ctx.score_order.get(all_names[i], 99))
    return _Plugins(len(ctx.static_filters), ctx.dynamic_filters[0], all_names, all_weights, order)


def _listing(decisions: Sequence[CompactDecision], G: np.ndarray, n: int, pl: _Plugins) -> _Listing | None:
    """The rows of the jobs that list clusters, and their codes written into ``G``: the dynamic
    filter's and the job-level reason over each job's statically feasible clusters
    (``rejection_groups``), 0xFFFF for a cluster ``to_body`` does not list (``listing_codes``)."""
    with_rows = [j for j, d in enumerate(decisions) if d.free_rows is not None and len(d.shape.idx)]
    if not with_rows:
        return None
    listing = [decisions[j] for j in with_rows]
    lens = np.array([len(d.shape.idx) for d in listing])
    JOB_POS = np.repeat(np.arange(len(with_rows)), lens)
    rows = Rows(
        job=np.array(with_rows).take(JOB_POS),
        job_pos=JOB_POS,
        idx=np.concatenate([d.shape.idx for d in listing]),
        free=np.concatenate([d.free_rows for d in listing]),
        cap=np.concatenate([d.shape.cap_rows for d in listing]),
        demand=triples([d.shape.demand_list for d in listing], len(listing)),
        chosen=np.array([d.chosen for d in listing]),
        reason=np.array([d.job_reason is not None for d in listing]),
    )
    return _Listing(with_rows, rows, listing_codes(G, rows, pl.S + 1, pl.S + 2))


def _groups(G: np.ndarray) -> tuple[np.ndarray, np.ndarray, list[list[tuple[int, int]]]]:
    """One byte per cluster where the codes fit (``small``), those bytes, and each job's group
    counts (``plugin << 8 | reason``, count) for the summaries (``group_counts``)."""
    small, G8, jobs, codes, counts = group_counts(G)
    per_job_groups: list[list[tuple[int, int]]] = [[] for _ in range(G.shape[0])]
    for jj, code, cnt in zip(jobs.tolist(), codes.tolist(), counts.tolist(), strict=True):
        per_job_groups[jj].append((code, cnt))
    for j in np.flatnonzero(~small).tolist():  # two bytes per cluster: count those apart
        row = G[j]
        keep = (row != 0) & (row != UNLISTED_WIDE)
        vals, cnts = np.unique(row[keep], return_counts=True)
        per_job_groups[j] = list(zip(vals.tolist(), cnts.tolist(), strict=True))
    return small, G8, per_job_groups


def _typed(cols: Columns, row_job: np.ndarray) -> tuple[list[str], list[np.ndarray], set[int]] | None:
    """Each column (a row of ``cols.values``, thousandths) as the narrowest type that holds it
    (whole units in a byte, else thousandths in an int32), and the jobs with a value that is not
    finite (their values stored as 0); None when an int32 cannot hold a column. The bounds and
    wholeness in ``cols`` are over the finite rows (``score_columns``)."""
    out, finite, lo, hi = cols.values, cols.finite, cols.lo, cols.hi
    bad: set[int] = set()
    if len(finite) == 0:
        lo = hi = np.zeros(len(out))
    elif not finite.all():
        bad = set(np.unique(row_job[~finite]).tolist())
        out[:, ~finite] = 0.0
        lo, hi = np.minimum(lo, 0.0), np.maximum(hi, 0.0)
    types: list[str] = []
    arrays: list[np.ndarray] = []
    for c, lo_c, hi_c, whole_c in zip(out, lo.tolist(), hi.tolist(), cols.whole.tolist(), strict=True):
        if lo_c >= 0 and hi_c <= 255_000 and whole_c:
            types.append(UINT8)
            arrays.append(c / 1000.0)  # whole units: exact for multiples of 1000
            continue
        if not (lo_c > -(2**31) and hi_c < 2**31):
            return None
        types.append(INT32)
        arrays.append(c)  # whole thousandths: the int32 field takes them exactly
    return types, arrays, bad


def _columns(decisions: Sequence[CompactDecision], li: _Listing, pl: _Plugins) -> _Columns | None:
    """The listed clusters' columns for the whole cycle at once (each score, the total, the
    transfer time and the bytes moved or the bits of the inputs moved), one record per listed
    row, cut into each job's blob; None when a column does not fit the encoding."""
    D = len(decisions)
    shapes = [d.shape for d in decisions]
    with_rows = li.with_rows
    detail = [False] * D
    for j in with_rows:
        detail[j] = decisions[j].job_reason is None
    kept = np.flatnonzero(li.listed)
    # every shape's static rows over its feasible clusters, read in place as if side by side
    source = static_source([shapes[j] for j in with_rows])
    height = source.height
    P = len(pl.all_names) - 1
    transfers = shapes[with_rows[0]].has_transfer
    cols = score_columns(source, kept, li.rows, P, pl.order, pl.all_weights, transfers)
    row_job = li.rows.job.take(kept)
    typed = _typed(cols, row_job)
    if typed is None:
        return None
    types, arrays, bad = typed
    sizes_of: list[list[float] | None] = [None] * D
    if transfers:
        # The bits of the inputs moved, when every shape has them: the evaluation makes them
        # only when each input's bytes moved are 0 or its size (``kernels.locality``), so
        # adding the sizes of the set bits in input order gives the bytes exactly
        sizes_list = [shapes[j].input_sizes for j in with_rows] if height > P + 3 else []
        if height > P + 3 and all(x is not None for x in sizes_list):
            types.append(UINT8)
            arrays.append(source_row(source, kept, li.rows.job_pos, P + 3))
            for j, x in zip(with_rows, sizes_list, strict=True):
                sizes_of[j] = x
        else:
            types.append(FLOAT64)
            arrays.append(source_row(source, kept, li.rows.job_pos, P + 2))
    columns = [a.astype(_DTYPE[t]) for a, t in zip(arrays, types, strict=True)]
    # A decision with a job-level reason (not ``detail``) lists no cluster: it has no records.
    counts = np.bincount(row_job, minlength=D)
    return _Columns(types, columns, counts, bad, sizes_of, detail)


class _Explanations:
    """A cycle's explanations (a body's ``rejected`` entry and its summary), each distinct one
    written once, as JSON, into one part (``key``, a zstd frame); a body names its own by
    ``[key, offset, length, FRAME]`` (``why``: the offset and length in the frame's bytes). A
    decision's explanation follows from its group counts, chosen cluster, job-level reason,
    failover origin and the static plugins' messages it uses; decisions equal in those share it
    (``seen``: on the mixed queue about three in four repeat another's), except
    those that preempted (their victims are named)."""

    def __init__(self) -> None:
        self.key = secrets.token_hex(16)
        self.data: list[bytes] = []
        self.offset = 0
        self.seen: dict[Any, tuple[list[Any], str]] = {}

    def of(
        self,
        d: CompactDecision,
        groups: list[tuple[int, int]],
        pl: _Plugins,
        static_names: list[str],
        dyn_entry: list[Any],
        n: int,
    ) -> tuple[list[Any], str]:
        """The decision's ``why`` reference and its summary."""
        key = None
        if not d.victims:
            messages = d.shape.rejected_messages
            used = tuple([tuple(messages[(code >> 8) - 1]) for code, _ in groups if (code >> 8) <= pl.S])
            key = (tuple(groups), d.chosen, d.job_reason, d.shape.origin, used)
            got = self.seen.get(key)
            if got is not None:
                return got
        rejected = _rejected(d, groups, pl, static_names, dyn_entry)
        summary = _summary(d, groups, rejected, n)
        raw = orjson.dumps({"rejected": rejected, "summary": summary})
        got = ([self.key, self.offset, len(raw), FRAME], summary)
        self.data.append(raw)
        self.offset += len(raw)
        if key is not None:
            self.seen[key] = got
        return got

    def part(self) -> dict[str, Any]:
        """The part, one zstd frame of the explanations (JSON, about 5x smaller compressed);
        its ``data`` a future of the frame (``_compressing``)."""
        return {"key": self.key, "data": _compressing(b"".join(self.data))}


_COMPRESSOR = threading.local()  # each thread its own: a compressor is not shared by threads
_FRAMES = ProcessWorker("yiwang-frames")


def _compress(data: bytes) -> bytes:
    compressor = getattr(_COMPRESSOR, "zstd", None)
    if compressor is None:
        compressor = _COMPRESSOR.zstd = zstandard.ZstdCompressor(level=FRAME_LEVEL)
    return pack_bytes(data, compressor)


def _compressing(data: bytes) -> Future[bytes]:
    """``data`` compressed into a zstd frame on this process's frame worker (``workers``), while
    the cycle goes on encoding: zstd releases the interpreter's lock while it compresses, so the
    frames of a cycle's chunks are made on the machine's other core."""
    return _FRAMES.submit(_compress, data)


def _rejected(
    d: CompactDecision,
    groups: list[tuple[int, int]],
    pl: _Plugins,
    static_names: list[str],
    dyn_entry: list[Any],
) -> list[Any]:
    """The ``rejected`` entry of a body: per plugin that rejected something, its name and
    messages (None for a plugin that rejected nothing, below the last that did)."""
    used = {code >> 8 for code, _ in groups}
    rej: list[Any] = []
    for p in range(1, (max(used) if used else 0) + 1):
        if p not in used:
            rej.append(None)
        elif p <= pl.S:
            rej.append([static_names[p - 1], d.shape.rejected_messages[p - 1]])
        elif p == pl.S + 1:
            rej.append(dyn_entry)
        else:
            assert d.job_reason is not None
            rej.append([d.job_reason[0], [d.job_reason[1]]])
    return rej


def encode(ctx: CycleContext, decisions: Sequence[CompactDecision]) -> Encoded | None:
    """The columns bodies of one cycle's decisions, their summaries and the parts they name (the
    contexts, the packed bytes of each chunk, the explanations), or None when the cycle's
    plugins are not the ones this encoder knows (the caller packs ``to_body``).

    Encoded ``ENCODE_CHUNK`` decisions at a time: every step is a pass over arrays of one row
    per (decision, listed cluster), and for a chunk those stay in the core's cache (a cycle of
    10,000 decisions makes arrays of 30 MB, each pass a trip to memory). Each chunk's packed
    bytes are a part of their own, one zstd frame stored column by column (``_frame``): about
    1.2 KB a decision on the mixed queue, 4 times fewer compressed, and those bytes were most
    of what a cycle writes and commits (a reader decompresses the chunk of the decision it
    reads). Each chunk names its own context (the columns' types can differ between chunks;
    equal contexts are one part, by digest)."""
    pl = _plugins(ctx)
    if pl is None:
        return None
    contexts: dict[str, dict[str, Any]] = {}
    frames: list[dict[str, Any]] = []
    bodies: list[dict[str, Any]] = []
    summaries: list[str] = []
    why = _Explanations()
    for start in range(0, len(decisions), ENCODE_CHUNK):
        chunk = decisions[start : start + ENCODE_CHUNK]
        got = _encode_chunk(ctx, pl, chunk, why, summaries)
        if got is None:
            for frame in frames:
                frame["data"].cancel()
            return None
        context, part_bodies, data_key, payload = got
        contexts.setdefault(context["key"], context)
        frames.append({"key": data_key, "data": _compressing(payload)})
        bodies += part_bodies
    frames.append(why.part())
    for frame in frames:  # the frames made on the worker meanwhile (its failure raises here)
        frame["data"] = frame["data"].result()
    return Encoded([*contexts.values(), *frames], bodies, summaries)


def _encode_chunk(
    ctx: CycleContext,
    pl: _Plugins,
    decisions: Sequence[CompactDecision],
    why: _Explanations,
    summaries: list[str],
) -> tuple[dict[str, Any], list[dict[str, Any]], str, bytes] | None:
    """``encode`` for some of a cycle's decisions: their context, their bodies (naming their
    bytes in the chunk's packed bytes, a part of its own, and their explanations in ``why``),
    that part's key and its bytes before compression (``_frame``); their summaries appended to
    ``summaries``."""
    names = ctx.names
    n = len(names)
    D = len(decisions)
    # Per cluster codes: the static rejections, then what ``_listing`` adds.
    G = np.concatenate([d.shape.rejected for d in decisions]).reshape(D, n)
    li = _listing(decisions, G, n, pl)
    small, G8, per_job_groups = _groups(G)
    cols_ = _Columns([], [], np.zeros(D, dtype=np.int64), set(), [None] * D, [False] * D)
    if li is not None:
        got = _columns(decisions, li, pl)
        if got is None:
            return None
        cols_ = got
    context = context_of(names, [pl.all_names[i] for i in pl.order], "".join(cols_.types))

    bodies: list[dict[str, Any]] = []
    static_names = [f.NAME for f in ctx.static_filters]
    dyn_entry = [pl.dyn_filter.NAME, _dyn_messages(pl.dyn_filter)]
    digest = context["key"]
    data_key = secrets.token_hex(16)
    keep = np.ones(D, dtype=np.bool_)
    keep[list(cols_.bad)] = False  # those store ``to_body`` and nothing in the blob
    payload, lengths = _frame(G, small, G8, cols_, keep)
    sizes = lengths.tolist()
    starts = (np.cumsum(lengths) - lengths).tolist()
    for j, d in enumerate(decisions):
        if j in cols_.bad:
            packed = pack_decision(d.to_body())
            bodies.append(packed)
            summaries.append(packed["summary"])
            continue
        ref, summary = why.of(d, per_job_groups[j], pl, static_names, dyn_entry, n)
        summaries.append(summary)
        # the job, attempt, status, cluster and time are the decision row's own columns
        # (``latest_decision`` reads them from there)
        body: dict[str, Any] = {
            "format": COLUMNS_FORMAT,
            "epoch": d.epoch,
            "ctx": digest,
            "blob": [data_key, starts[j], sizes[j], FRAME],
            "why": ref,
        }
        if not small[j]:
            body["wide"] = True
        if cols_.detail[j]:
            body["listed"] = True
            if cols_.sizes_of[j] is not None:
                body["sizes"] = cols_.sizes_of[j]
        bodies.append(body)
    return context, bodies, data_key, payload


def _frame(
    G: np.ndarray,
    small: np.ndarray,
    G8: np.ndarray,
    cols: _Columns,
    keep: np.ndarray,
) -> tuple[bytes, np.ndarray]:
    """A chunk's packed bytes before compression (``decision_codec.frame_payload``: a frame
    once compressed) and each decision's length in them: per decision kept, its codes (its row
    of ``G8`` where ``small``, else its row of ``G`` as two little-endian bytes a cluster) and
    its records; a decision not kept has none."""
    n = G.shape[1]
    columns = cols.columns
    code_len = np.where(keep, np.where(small, n, 2 * n), 0).astype(np.uint32)
    rec_count = np.where(keep, cols.counts, 0).astype(np.uint32)
    if not keep.all() and columns:
        rows = np.repeat(keep, cols.counts)
        columns = [c[rows] for c in columns]
    wide = keep & ~small
    if not wide.any():
        codes = G8[keep].tobytes()
    else:
        codes = b"".join(
            (G[j].astype("<u2") if wide[j] else G8[j]).tobytes() for j in np.flatnonzero(keep).tolist()
        )
    itemsizes = [c.dtype.itemsize for c in columns]
    lengths = code_len.astype(np.int64) + rec_count.astype(np.int64) * sum(itemsizes)
    payload = frame_payload(code_len, rec_count, itemsizes, codes, [c.tobytes() for c in columns])
    return payload, lengths


_DTYPE = {UINT8: "u1", INT32: "<i4", FLOAT64: "<f8"}
_DYN_MESSAGES: dict[int, list[str]] = {}


def _dyn_messages(plugin: Any) -> list[str]:
    """The dynamic filter's messages (its ``classify`` returns them with the codes)."""
    key = id(plugin)
    if key not in _DYN_MESSAGES:
        _, messages, _ = plugin.classify(np.zeros((1, 3)), np.zeros((1, 3)), np.zeros(3))
        _DYN_MESSAGES[key] = list(messages)
    return _DYN_MESSAGES[key]


def _summary(d: CompactDecision, groups: list[tuple[int, int]], rej: list[Any], n: int) -> str:
    """``CompactDecision.summary`` from the group counts (``plugin << 8 | reason``, count)."""
    counts = []
    rejected = 0
    for code, cnt in groups:
        p, k = code >> 8, code & 0xFF
        name, messages = rej[p - 1]
        counts.append(((name, messages[k - 1]), cnt))
        rejected += cnt
    counts.sort(key=lambda kv: (-kv[1], kv[0]))
    parts = [f"{k} {p} ({r})" for (p, r), k in counts]
    ctx = d.ctx
    head = f"{n - rejected}/{n} clusters are available"
    if d.chosen >= 0:
        head += f"; chose {ctx.names[d.chosen]}"
        origin = d.shape.origin
        if origin is not None and ctx.names[d.chosen] in ctx.backups.get(origin, ()):
            head += f" (failover: designated backup of {origin})"
    if d.victims:
        head += f" after preempting {len(d.victims)} job(s): " + ", ".join(
            f"{v.job_id} (priority {v.priority})" for v in d.victims
        )
    return head + (": " + ", ".join(parts) if parts else "") + "."
