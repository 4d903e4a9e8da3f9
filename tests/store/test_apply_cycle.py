"""``Store.apply_cycle`` writes exactly the placements and preemptions whose jobs are still where
the cycle saw them, on SQLite and PostgreSQL, over more jobs than one read of the current phases
takes (500): a job cancelled meanwhile, one whose attempt moved on and one requeued from another
cluster are skipped, with nothing of them written."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select, update

from controller.bench.mixed import job_row
from controller.store import schema as t
from controller.store.base import utc
from controller.store.store import Store, now

BODY = {"tenant": "beijing", "name": "j", "image": "busybox", "resources": {"cpu": 1, "memory_gib": 1}}


def test_apply_cycle_skips_exactly_the_jobs_that_moved(db_url: str) -> None:
    store = Store(db_url)
    try:
        rows = [job_row({**BODY, "name": f"j{i}"}) for i in range(1203)]
        store.insert_jobs_bulk(rows)
        ids = [r["id"] for r in rows]
        cancelled, moved_on, running, other_cluster = ids[7], ids[611], ids[1200], ids[1201]
        with store.tx() as conn:
            conn.execute(update(t.jobs).where(t.jobs.c.id == cancelled).values(phase="Cancelled"))
            conn.execute(update(t.jobs).where(t.jobs.c.id == moved_on).values(attempt=2))
            for job_id in (running, other_cluster):
                conn.execute(
                    update(t.jobs).where(t.jobs.c.id == job_id).values(phase="Running", cluster="prov-henan")
                )
        lease = now() + timedelta(seconds=30)
        scheduled = [
            {
                "id": i,
                "attempt": 1,
                "cluster": "prov-hubei",
                "epoch": 3,
                "message": "chose",
                "lease_expires_at": lease,
            }
            for i in ids[:1200]
        ]
        requeued = [
            {"id": running, "attempt": 1, "cluster": "prov-henan", "reason": "preempted"},
            {"id": other_cluster, "attempt": 1, "cluster": "prov-hubei", "reason": "preempted"},
            {"id": "0000000000000000000000", "attempt": 1, "cluster": "prov-henan", "reason": "gone"},
        ]
        with store.tx() as conn:
            changed = store.apply_cycle(
                conn,
                scheduled=scheduled,
                requeued=requeued,
                decisions=[],
                messages=[(ids[1202], "no cluster fits\t(why)"), (cancelled, "no cluster fits")],
            )
        assert changed == (set(ids[:1200]) - {cancelled, moved_on}) | {running}
        c = t.jobs.c
        with store.read() as conn:
            got = {
                r.id: (r.phase, r.cluster, r.attempt, r.epoch)
                for r in conn.execute(select(c.id, c.phase, c.cluster, c.attempt, c.epoch))
            }
            events = {
                (r.job_id, r.type) for r in conn.execute(select(t.job_events.c.job_id, t.job_events.c.type))
            }
        assert got[cancelled] == ("Cancelled", None, 1, 0)
        assert got[moved_on] == ("Pending", None, 2, 0)
        assert got[running] == ("Pending", None, 2, 0)
        assert got[other_cluster] == ("Running", "prov-henan", 1, 0)
        assert got[ids[1202]] == ("Pending", None, 1, 0)
        placed = [i for i in ids[:1200] if i not in (cancelled, moved_on)]
        assert all(got[i] == ("Scheduled", "prov-hubei", 1, 3) for i in placed)
        assert {i for i, kind in events if kind == "Scheduled"} == set(placed)
        assert {i for i, kind in events if kind == "Preempted"} == {running}
        with store.read() as conn:  # the values written (one UPDATE each on PostgreSQL)
            vals = {
                r.id: (r.message, r.lease_expires_at)
                for r in conn.execute(
                    select(c.id, c.message, c.lease_expires_at).where(c.id.in_([*placed[:3], ids[1202]]))
                )
            }
        assert all(vals[i][0] == "chose" and utc(vals[i][1]) == lease for i in placed[:3])
        assert vals[ids[1202]] == ("no cluster fits\t(why)", None)
    finally:
        store.close()
