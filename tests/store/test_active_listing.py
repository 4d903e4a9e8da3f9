"""An agent's listing of its cluster's attempts (``Store.active_on_cluster``) reads its page
through the partial index ``ix_jobs_active_on_cluster``, on SQLite and on PostgreSQL: the page's
own entries, in id order, with no sort of every active job of the cluster and no read of the
jobs that ran before."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy import bindparam, text

from controller.store import Store
from controller.store import schema as t
from controller.store.jobs import _ACTIVE_IDS, ACTIVE_PHASES
from controller.store.store import new_job_id, now


def _row(phase: str, cluster: str | None, k: int) -> dict[str, Any]:
    at = now() + timedelta(microseconds=k)
    return {
        "id": new_job_id(),
        "tenant": f"tenant-{k % 7}",
        "name": "j",
        "phase": phase,
        "cluster": cluster,
        "attempt": 1 + k % 3,
        "epoch": 4,
        "priority": 100,
        "spec": {"name": "j", "tenant": f"tenant-{k % 7}"},
        "message": "",
        "created_at": at,
        "updated_at": at,
        "lease_expires_at": None,
        "idempotency_key": None,
        "request_hash": None,
    }


def _federation(store: Store) -> dict[str, list[dict[str, Any]]]:
    """Jobs in every phase on three clusters (and pending ones on none); the active ones per
    cluster, as the listing must give them."""
    phases = ["Scheduled", "Running", "Succeeded", "Failed", "Cancelled", "Running", "Scheduled"]
    rows = []
    for k in range(1_400):
        phase = phases[k % len(phases)]
        cluster = f"prov-{k % 3}"
        rows.append(_row("Pending", None, k) if k % 11 == 0 else _row(phase, cluster, k))
    store.insert_jobs_bulk([{**r, "phase": "Pending", "cluster": None} for r in rows])
    with store.engine.begin() as conn:  # each job's phase as its life left it (not through the rules)
        conn.execute(
            t.jobs.update()
            .where(t.jobs.c.id == bindparam("b_id"))
            .values(phase=bindparam("b_phase"), cluster=bindparam("b_cluster")),
            [{"b_id": r["id"], "b_phase": r["phase"], "b_cluster": r["cluster"]} for r in rows],
        )
    want: dict[str, list[dict[str, Any]]] = {}
    for r in rows:
        if r["phase"] in ACTIVE_PHASES:
            want.setdefault(r["cluster"], []).append(r)
    for listed in want.values():
        listed.sort(key=lambda r: r["id"])
    return want


def test_the_listing_pages_through_exactly_the_active_attempts_in_id_order(db_url: str) -> None:
    store = Store(db_url)
    want = _federation(store)
    for cluster, rows in want.items():
        got: list[dict[str, Any]] = []
        after = None
        while True:
            page = store.active_on_cluster(cluster, after=after, limit=97, with_spec=False)
            got += page
            if len(page) < 97:
                break
            after = page[-1]["id"]
        assert [(g["id"], g["tenant"], g["phase"], g["attempt"], g["epoch"]) for g in got] == [
            (r["id"], r["tenant"], r["phase"], r["attempt"], r["epoch"]) for r in rows
        ]
        assert store.count_active_on(cluster) == len(rows)
        with store.tx() as conn:
            locked = store.active_on_cluster_locked(conn, cluster)
        assert [r["id"] for r in locked] == [r["id"] for r in rows]
    store.close()


def test_the_index_holds_the_phases_the_listing_names() -> None:
    """The literal phases of the partial index and of the queries are the active phases."""
    compiled = str(t.ACTIVE_LITERAL.compile(compile_kwargs={"literal_binds": True}))
    assert compiled == "jobs.phase IN ('Scheduled', 'Running')"
    assert ACTIVE_PHASES == ("Scheduled", "Running")


def _plan(store: Store, paged: bool) -> str:
    stmt = _ACTIVE_IDS[paged]
    params = {"cluster": "prov-1", "limit": 500, "after": ""}
    if store.engine.dialect.name == "postgresql":
        with store.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text("VACUUM ANALYZE jobs"))  # as autovacuum leaves a table: visibility known
    with store.engine.connect() as conn:
        if store.engine.dialect.name == "postgresql":
            # On a few thousand rows a scan of every active row of the cluster and a sort are
            # cheapest (at scale they are not): take them away, so that the plan shows whether
            # an index gives this statement its rows in order (else it sorts all the same)
            for method in ("seqscan", "bitmapscan", "sort"):
                conn.execute(text(f"SET enable_{method} = off"))
        compiled = stmt.compile(dialect=store.engine.dialect)
        prefix = "EXPLAIN QUERY PLAN " if store.engine.dialect.name == "sqlite" else "EXPLAIN "
        rows = conn.exec_driver_sql(prefix + compiled.string, _positional(store, compiled, params)).all()
    return "\n".join(" ".join(str(c) for c in r) for r in rows)


def _positional(store: Store, compiled: Any, params: dict[str, Any]) -> Any:
    values = compiled.construct_params(params)
    if store.engine.dialect.name == "sqlite":
        return tuple(values[name] for name in compiled.positiontup)
    return values


def test_a_page_reads_the_partial_index_in_order_without_sorting(db_url: str) -> None:
    store = Store(db_url)
    _federation(store)
    for paged in (False, True):
        plan = _plan(store, paged)
        assert "ix_jobs_active_on_cluster" in plan, plan
        if store.engine.dialect.name == "sqlite":
            assert "COVERING INDEX" in plan and "TEMP B-TREE" not in plan, plan
        else:
            assert "Sort" not in plan, plan
    store.close()
