"""What the drills found in the controller, pinned down as small in-process tests.

Backup groups: DESIGN.md ("Failover and HA") says a failed cluster's assignments are re-placed by
the failover policy's ordered backup groups (prov-guangdong -> prov-hainan, then national-backup),
residency always enforced, and a job's default ``failover.policy`` is ``backup-group``. The
province-agent-killed drill shows Guangdong's general jobs going to prov-guangxi when
national-backup is full: the scheduler (controller/scheduler/**, not the drills' code) never
reads ``policies/failover.yaml`` ``backups``; only health, constraints, residency and capacity
filter and locality/constraints/balance score.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import update

from controller.datasets import Classification, DatasetCreate
from controller.jobs import JobCreate
from controller.service import Controller
from controller.settings import Settings
from controller.store.schema import jobs
from controller.store.store import now


def controller(tmp_path_factory: pytest.TempPathFactory) -> Controller:
    db = tmp_path_factory.mktemp("findings") / "yiwang.db"
    ctl = Controller(Settings(database_url=f"sqlite:///{db}", background=False))
    for name in ctl.registry.clusters:
        ctl.heartbeat(name, None)
    return ctl


def test_failover_prefers_the_designated_backup(tmp_path_factory: pytest.TempPathFactory) -> None:
    ctl = controller(tmp_path_factory)
    ctl.add_dataset(
        DatasetCreate(
            id="gd-open",
            owner="guangdong",
            size_bytes=50 * 10**9,
            classification=Classification.general,
            locations=["prov-guangdong"],
        )
    )
    job, _ = ctl.submit(JobCreate(name="gd-general", tenant="guangdong", inputs=["gd-open"]))
    ctl.schedule_pending()
    assert ctl.get_job(job.id).cluster == "prov-guangdong"
    ctl.set_cordon("national-backup", True)  # the second backup is unavailable
    # Guangdong falls silent: its heartbeat and the job's lease are older than lease + grace.
    state = ctl.cluster_state("prov-guangdong")
    past = now() - timedelta(
        seconds=ctl.policies.failover.lease_s + ctl.policies.failover.heartbeat_grace_s + 5
    )
    state.last_heartbeat = past
    ctl.store.update_cluster("prov-guangdong", last_heartbeat=past)
    ctl.lead_since = past  # this controller led throughout the silence
    with ctl.store.tx() as conn:
        conn.execute(update(jobs).where(jobs.c.id == job.id).values(lease_expires_at=past))
    assert ctl.expire_leases() == 1
    ctl.schedule_pending()
    moved = ctl.get_job(job.id)
    assert moved.attempt == 2 and moved.cluster is not None
    assert moved.cluster in ctl.policies.failover.backups["prov-guangdong"], (
        f"re-placed on {moved.cluster}; designated backups {ctl.policies.failover.backups['prov-guangdong']}"
    )
