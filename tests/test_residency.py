"""Residency is a hard rule: core data never leaves its copies; important data never reaches
another province or ministry. Checked on hand-written cases and on many random ones."""

from __future__ import annotations

import random

import numpy as np
import pytest

from controller.datasets import Classification, DatasetRead
from controller.jobs import JobCreate
from controller.policies import Movement, ResidencyPolicy
from controller.scheduler.framework import JobInfo, Snapshot
from controller.scheduler.pipeline import decide
from controller.scheduler.plugins.residency import ResidencyFilter
from controller.scheduler.scheduler import Scheduler
from controller.services.policy_files import load_policy_set
from controller.topology import NetworkModel
from tests.conftest import REPO

PS = load_policy_set(REPO / "policies")
TOPO = PS.topology
NET = NetworkModel(TOPO)
NAMES = [c.name for c in TOPO.clusters]
TENANT = {c.name: c.tenant for c in TOPO.clusters}
NATIONAL = {c.name for c in TOPO.clusters if c.tier.value == "national"}


def snapshot(
    datasets: dict[str, DatasetRead],
    residency: ResidencyPolicy | None = None,
    ready: np.ndarray | None = None,
) -> Snapshot:
    n = len(TOPO.clusters)
    cap = np.array([[c.capacity.cpu, c.capacity.memory_gib, c.capacity.gpu] for c in TOPO.clusters])
    return Snapshot(
        TOPO.clusters,
        NET,
        cap,
        np.zeros((n, 3)),
        np.ones(n, bool) if ready is None else ready,
        np.zeros(n, bool),
        [""] * n,
        datasets,
        residency or PS.residency,
    )


def ds(id_: str, owner: str, cls: str, *locs: str) -> DatasetRead:
    return DatasetRead(
        id=id_, owner=owner, size_bytes=10**10, classification=Classification(cls), locations=list(locs)
    )


def allowed(datasets: list[DatasetRead]) -> set[str]:
    snap = snapshot({d.id: d for d in datasets})
    job = JobInfo(None, JobCreate(name="j", tenant="national", inputs=[d.id for d in datasets]), datasets, [])
    result = ResidencyFilter().filter({}, job, snap)  # type: ignore[arg-type]
    return {NAMES[i] for i in np.flatnonzero(result.codes == 0)}


@pytest.mark.parametrize(
    ("datasets", "expected"),
    [
        ([ds("c", "sichuan", "core", "prov-sichuan")], {"prov-sichuan"}),
        (
            [ds("c", "sichuan", "core", "prov-sichuan", "national-backup")],
            {"prov-sichuan", "national-backup"},
        ),
        (
            [ds("i", "guangdong", "important", "prov-guangdong")],
            {"prov-guangdong", "national-primary", "national-backup"},
        ),
        ([ds("i", "mps", "important", "dept-mps")], {"dept-mps", "national-primary", "national-backup"}),
        ([ds("g", "hubei", "general", "prov-hubei")], set(NAMES)),
        (
            [
                ds("i1", "guangdong", "important", "prov-guangdong"),
                ds("i2", "zhejiang", "important", "prov-zhejiang"),
            ],
            {"national-primary", "national-backup"},
        ),
        (
            [ds("c", "sichuan", "core", "prov-sichuan"), ds("i", "guangdong", "important", "prov-guangdong")],
            set(),
        ),
        ([], set(NAMES)),
    ],
)
def test_residency_cases(datasets: list[DatasetRead], expected: set[str]) -> None:
    assert allowed(datasets) == expected


def test_reasons_name_the_data_and_the_rule() -> None:
    d = ds("sc-core", "sichuan", "core", "prov-sichuan")
    snap = snapshot({d.id: d})
    spec = JobCreate(name="j", tenant="sichuan", inputs=[d.id])
    decision = decide(Scheduler.from_policy(PS.placement), spec, snap, job_id="job1")
    assert decision.cluster == "prov-sichuan"
    assert decision.summary == (
        "1/42 clusters are available; chose prov-sichuan: "
        "41 residency (core data sc-core has no copy here and never moves)."
    )


def test_missing_dataset_is_unresolvable() -> None:
    spec = JobCreate(name="j", tenant="hubei", inputs=["gone"])
    decision = decide(Scheduler.from_policy(PS.placement), spec, snapshot({}))
    assert decision.status == "UnschedulableAndUnresolvable"
    assert "input data set gone is not in the catalogue" in decision.summary


def test_a_stricter_policy_is_obeyed() -> None:
    strict = ResidencyPolicy(
        movement={
            Classification.general: Movement.owner_or_national,
            Classification.important: Movement.none,
            Classification.core: Movement.none,
        }
    )
    g = ds("g", "hubei", "general", "prov-hubei")
    job = JobInfo(None, JobCreate(name="j", tenant="hubei", inputs=["g"]), [g], [])
    result = ResidencyFilter().filter({}, job, snapshot({"g": g}, strict))  # type: ignore[arg-type]
    assert {NAMES[i] for i in np.flatnonzero(result.codes == 0)} == {"prov-hubei", *NATIONAL}


def test_random_workloads_never_break_residency() -> None:
    """Hundreds of random jobs over random catalogues, placed with capacity reserved and some
    clusters down (a failover wave): every placement obeys the rule."""
    rng = random.Random(7)
    sched = Scheduler.from_policy(PS.placement)
    owners = [c.tenant for c in TOPO.clusters if c.tier.value != "national"]
    catalogue: dict[str, DatasetRead] = {}
    for k in range(120):
        owner = rng.choice(owners)
        home = next(c.name for c in TOPO.clusters if c.tenant == owner)
        cls = rng.choice(list(Classification))
        locs = {home} | ({rng.choice(sorted(NATIONAL))} if rng.random() < 0.3 else set())
        catalogue[f"d{k}"] = ds(f"d{k}", owner, cls.value, *sorted(locs))
    ready = np.array([rng.random() > 0.15 for _ in NAMES])
    snap = snapshot(catalogue, ready=ready)
    placed = 0
    for _ in range(600):
        inputs = rng.sample(sorted(catalogue), rng.randint(0, 3))
        spec = JobCreate(
            name="j",
            tenant=rng.choice(owners),
            inputs=inputs,
            resources={"cpu": rng.choice([1, 8, 64]), "memory_gib": 4},
        )
        d = decide(sched, spec, snap, reserve=True)
        if d.cluster is None:
            continue
        placed += 1
        assert ready[NAMES.index(d.cluster)]
        for i in inputs:
            data = catalogue[i]
            if data.classification is Classification.core:
                assert d.cluster in data.locations
            elif data.classification is Classification.important:
                assert d.cluster in data.locations or d.cluster in NATIONAL or TENANT[d.cluster] == data.owner
    assert placed > 300
    assert (snap.allocated <= snap.capacity + 1e-9).all()
