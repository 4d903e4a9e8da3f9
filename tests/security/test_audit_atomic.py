"""Every audit row is written in the transaction of the change it records (issue 14): a change
whose transaction fails leaves no audit row, and an audit append that fails rolls the change back,
in the database and in the controller's views. For each audited change the service makes (cancel,
policy, cluster registration, update and deregistration, cordon, uncordon, drain, data set), on
SQLite and PostgreSQL, with the failure injected."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from sqlalchemy import func, select

from controller import audit
from controller.datasets import DatasetCreate
from controller.jobs import JobCreate
from controller.security import BOOTSTRAP_ADMIN
from controller.service import Controller
from controller.settings import Settings
from controller.store import audit_chain
from controller.store import schema as t
from controller.topology.model import Cluster


class Injected(RuntimeError):
    pass


def row(action: str, target: str) -> dict[str, Any]:
    return BOOTSTRAP_ADMIN.audit_row(action, target)


def new_spec(ctl: Controller, name: str, **over: Any) -> Cluster:
    return ctl.registry.clusters["prov-hainan"].spec.model_copy(update={"name": name, **over})


def quota_body(ctl: Controller) -> dict[str, Any]:
    body = ctl.policies.quota.model_dump(mode="json")
    body["max_victims"] = body["max_victims"] + 1
    return body


def bigger(ctl: Controller, name: str) -> Cluster:
    spec = ctl.registry.clusters[name].spec
    return spec.model_copy(
        update={"capacity": spec.capacity.model_copy(update={"cpu": spec.capacity.cpu + 1})}
    )


DATASET = {
    "id": "hb-census",
    "owner": "hubei",
    "classification": "important",
    "size_bytes": 10**9,
    "locations": ["prov-hubei"],
}

# action -> the change, made through the service with its audit row
CHANGES: dict[str, Callable[[Controller, dict[str, str]], object]] = {
    "job.cancelled": lambda ctl, ids: ctl.cancel(ids["job"], audit=row("job.cancelled", f"job/{ids['job']}")),
    "policy.changed": lambda ctl, _: ctl.put_policy(
        "quota", quota_body(ctl), row("policy.changed", "policy/quota")
    ),
    "cluster.registered(new)": lambda ctl, _: ctl.register_cluster(
        new_spec(ctl, "prov-hainan-2"), row("cluster.registered", "cluster/prov-hainan-2")
    ),
    "cluster.registered(update)": lambda ctl, _: ctl.register_cluster(
        bigger(ctl, "prov-henan"), row("cluster.registered", "cluster/prov-henan")
    ),
    "cluster.deleted": lambda ctl, _: ctl.deregister_cluster(
        "prov-henan", row("cluster.deleted", "cluster/prov-henan")
    ),
    "cluster.cordoned": lambda ctl, _: ctl.set_cordon(
        "prov-hubei", True, row("cluster.cordoned", "cluster/prov-hubei")
    ),
    "cluster.uncordoned": lambda ctl, _: ctl.set_cordon(
        "prov-hunan", False, row("cluster.uncordoned", "cluster/prov-hunan")
    ),
    "cluster.drained": lambda ctl, _: ctl.drain("prov-hubei", row("cluster.drained", "cluster/prov-hubei")),
    "dataset.registered": lambda ctl, _: ctl.add_dataset(
        DatasetCreate.model_validate(DATASET), row("dataset.registered", "dataset/hb-census")
    ),
}


def started(db_url: str) -> tuple[Controller, dict[str, str]]:
    """Every cluster Ready, a job placed on prov-hubei, prov-hunan cordoned (no audit rows)."""
    ctl = Controller(Settings(database_url=db_url, background=False))
    for name in ctl.registry.clusters:
        ctl.heartbeat(name, None)
    job, _ = ctl.submit(
        JobCreate.model_validate(
            {"name": "j", "tenant": "hubei", "constraints": {"allow_clusters": ["prov-hubei"]}}
        )
    )
    assert ctl.schedule_pending() == 1
    ctl.set_cordon("prov-hunan", True)
    return ctl, {"job": job.id}


def stored(ctl: Controller) -> dict[str, Any]:
    """What the changes above touch, as stored."""
    with ctl.store.read() as conn:
        return {
            "jobs": sorted(
                tuple(r) for r in conn.execute(select(t.jobs.c.id, t.jobs.c.phase, t.jobs.c.cluster))
            ),
            "events": conn.execute(select(func.count()).select_from(t.job_events)).scalar(),
            "clusters": sorted(
                (r.name, repr(r.spec), r.cordoned, r.draining) for r in conn.execute(select(t.clusters))
            ),
            "datasets": sorted(r[0] for r in conn.execute(select(t.datasets.c.id))),
            "policies": sorted(
                tuple(r) for r in conn.execute(select(t.policies.c.kind, t.policies.c.version))
            ),
            "audit": conn.execute(select(func.count()).select_from(t.audit_log)).scalar(),
        }


def views(ctl: Controller) -> dict[str, Any]:
    """The controller's in-memory views of the same."""
    return {
        "clusters": {n: (s.spec, s.cordoned, s.draining) for n, s in ctl.registry.clusters.items()},
        "datasets": sorted(ctl.datasets),
        "quota": ctl.policies.quota.model_dump(),
        "ledger": sorted(ctl.registry.ledger.entries),
    }


@contextmanager
def injected(ctl: Controller, monkeypatch: pytest.MonkeyPatch, where: str) -> Iterator[list[int]]:
    """``audit``: appending the audit row fails. ``commit``: the change's transaction fails at its
    end, after the change and its audit row were written in it. Yields the number of audit rows
    handed to the chain meanwhile."""
    appended = [0]
    real_append, real_tx = audit_chain.append, ctl.store.tx

    def append(conn: Any, rows: Any) -> Any:
        appended[0] += len(rows)
        if where == "audit":
            raise Injected("the audit append failed")
        return real_append(conn, rows)

    @contextmanager
    def tx() -> Iterator[Any]:
        with real_tx() as conn:
            yield conn
            raise Injected("the transaction failed before its commit")

    monkeypatch.setattr(audit_chain, "append", append)
    if where == "commit":
        monkeypatch.setattr(ctl.store, "tx", tx)
    yield appended
    monkeypatch.undo()


@pytest.mark.parametrize("where", ["audit", "commit"])
@pytest.mark.parametrize("action", sorted(CHANGES))
def test_a_change_and_its_audit_row_commit_together_or_not_at_all(
    db_url: str, monkeypatch: pytest.MonkeyPatch, action: str, where: str
) -> None:
    ctl, ids = started(db_url)
    change = CHANGES[action]
    before, seen = stored(ctl), views(ctl)
    with injected(ctl, monkeypatch, where) as appended, pytest.raises(Injected):
        change(ctl, ids)
    assert appended[0] == 1  # the row was handed to the chain in the change's transaction ...
    assert stored(ctl) == before  # ... and neither it nor the change is stored
    assert views(ctl) == seen  # nor applied in memory
    # without the failure the same call makes the change and writes exactly its row
    change(ctl, ids)
    after = stored(ctl)
    assert after["audit"] == before["audit"] + 1 and after != {**before, "audit": after["audit"]}
    with ctl.store.read() as conn:
        last = conn.execute(select(t.audit_log).order_by(t.audit_log.c.id.desc()).limit(1)).mappings().one()
    assert last["action"] == action.split("(")[0] and last["actor"] == "bootstrap-admin"
    rep = audit.verify(ctl.store)
    ctl.store.close()
    assert rep.ok and rep.chained == after["audit"], rep.findings
