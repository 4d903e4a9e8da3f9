"""A new job's answer to POST /v1/jobs is written from its row by orjson (``jobs.new_job_json``),
not by building ``JobRead`` and serialising it: the bytes must be the model's, for every spec the
API accepts (floats, free text in any script or with control characters, every optional part)
and every instant."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from controller.domain.phases import JobPhase
from controller.jobs import JobCreate, JobRead, new_job_json
from controller.sim.federation import federation
from controller.sim.mixed import MixedJobs
from controller.sim.workload import make_catalogue

ID = "0123456789abcdef0123456789abcdef"
DATA_DIR = Path(__file__).resolve().parents[2] / "controller" / "data"


def model_bytes(spec: JobCreate, at: datetime, message: str) -> bytes:
    read = JobRead(
        id=ID,
        spec=spec,
        phase=JobPhase.Pending,
        cluster=None,
        attempt=1,
        created_at=at,
        updated_at=at,
        message=message,
    )
    return read.model_dump_json().encode()


def check(spec: JobCreate, at: datetime, message: str = "waiting to be scheduled") -> None:
    got = new_job_json(ID, spec.model_dump(mode="json"), at, message)
    assert got == model_bytes(spec, at, message)


INSTANTS = [
    datetime(2026, 12, 3, 21, 40, 5, 123456, tzinfo=UTC),
    datetime(2026, 1, 1, tzinfo=UTC),  # no microseconds
    datetime(2026, 1, 1, 0, 0, 0, 1, tzinfo=UTC),
    datetime(2026, 1, 1, 0, 0, 0, 100000, tzinfo=UTC),
    datetime(1999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),
]


def test_the_mixed_queues_jobs_answer_as_the_model_does() -> None:
    topo = federation(DATA_DIR, ministries=64)
    gen = MixedJobs(topo, make_catalogue(topo), seed=11)
    for i, body in enumerate(gen.bodies(600)):
        check(JobCreate.model_validate(body), INSTANTS[i % len(INSTANTS)])


text = st.text(st.characters(codec="utf-8"), max_size=40)
floats = st.floats(min_value=1e-9, max_value=4096, allow_nan=False, allow_infinity=False)


@st.composite
def specs(draw: Any) -> JobCreate:
    body: dict[str, Any] = {
        "name": draw(st.from_regex(r"^[a-z][a-z0-9-]{0,20}$", fullmatch=True)),
        "tenant": draw(st.sampled_from(["prov-beijing", "national", "dept-mps"])),
        "priority": draw(st.integers(0, 1000)),
        "resources": {
            "cpu": draw(floats),
            "memory_gib": draw(st.floats(min_value=0, max_value=16384, allow_nan=False)),
            "gpu": draw(st.integers(0, 8)),
        },
        "replicas": draw(st.integers(1, 10_000)),
        "inputs": draw(st.lists(st.sampled_from(["ds-a", "ds-b", "ds-c"]), max_size=3, unique=True)),
        "runtime": {
            "image": draw(text),
            "command": draw(st.lists(text, max_size=3)),
            "env": draw(st.dictionaries(st.from_regex(r"^[A-Z_]{1,8}$", fullmatch=True), text, max_size=2)),
        },
        "max_runtime_s": draw(st.integers(1, 30 * 86400)),
        "expected_runtime_s": draw(st.floats(min_value=1e-6, max_value=30 * 86400, allow_nan=False)),
        "delay_tolerant": draw(st.booleans()),
        "labels": draw(
            st.dictionaries(st.sampled_from(["team", "app"]), st.sampled_from(["x", "y-1"]), max_size=2)
        ),
        "failover": {"policy": draw(st.sampled_from(["backup-group", "anywhere-legal", "none"]))},
    }
    try:
        return JobCreate.model_validate(body)
    except ValidationError:
        assume(False)
        raise


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(spec=specs(), at=st.datetimes(timezones=st.just(UTC)), message=text)
def test_any_accepted_spec_answers_as_the_model_does(spec: JobCreate, at: datetime, message: str) -> None:
    check(spec, at, message)


def test_the_answer_of_the_api_is_the_job_it_reads_back(ready: TestClient) -> None:
    """End to end through the fast path: the 201's body is the job GET /v1/jobs/{id} returns
    (without its events)."""
    body = {"name": "answer-1", "tenant": "guangdong", "resources": {"cpu": 0.25, "memory_gib": 0.5}}
    r = ready.post("/v1/jobs", content=orjson.dumps(body), headers={"content-type": "application/json"})
    assert r.status_code == 201, r.text
    read = ready.get(f"/v1/jobs/{r.json()['id']}")
    assert read.status_code == 200
    assert {**read.json(), "events": []} == r.json()
    assert r.headers["location"] == f"/v1/jobs/{r.json()['id']}"


def test_a_tenant_is_known_while_a_cluster_of_its_own_is_registered(ready: TestClient) -> None:
    """The tenant check reads the clusters' tenants the registry keeps (``Registry.tenants``):
    a tenant whose only cluster is registered at run time may submit, and once that cluster is
    deregistered it is unknown again (422), as when every cluster was walked per request."""
    from tests.api.test_clusters_datasets_policies import spec as cluster_spec

    job = {"name": "own-1", "tenant": "sansha", "resources": {"cpu": 0.1, "memory_gib": 0.1}}
    assert ready.post("/v1/jobs", json=job).status_code == 422
    body = cluster_spec("prov-sansha", tenant="sansha", display_name="Sansha")
    assert ready.put("/v1/clusters/prov-sansha", json=body).status_code == 201
    r = ready.post("/v1/jobs", json=job)
    assert r.status_code == 201, r.text
    assert ready.post(f"/v1/jobs/{r.json()['id']}/cancel").status_code in (200, 202)
    assert ready.delete("/v1/clusters/prov-sansha").status_code == 204
    again = ready.post("/v1/jobs", json=job)
    assert again.status_code == 422 and "tenant" in again.text


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(spec=specs(), milli=st.one_of(st.none(), st.integers(1, 999)))
def test_the_terms_a_submission_notes_are_its_demand_vector(spec: JobCreate, milli: int | None) -> None:
    """``ReadModel.note_terms`` computes the gang's demand without numpy: the same floats as
    ``demand_vector`` (shared GPUs in thousandths included)."""
    from controller.policies import QuotaPolicy
    from controller.registry import Registry
    from controller.scheduler.framework import demand_vector
    from controller.services.read_model import ReadModel

    if milli is not None:
        body = spec.model_dump()
        body["resources"] = {**body["resources"], "gpu": 0, "gpu_milli": milli}
        spec = JobCreate.model_validate(body)
    terms = ReadModel(Registry(base_links=[]), QuotaPolicy)
    terms.note_terms("j", spec)
    tenant, demand, priority = terms.job_terms["j"]
    assert demand == tuple(float(x) for x in demand_vector(spec))
    r, n = spec.resources, spec.replicas  # and the gang's demand by its definition
    assert demand == (r.cpu * n, r.memory_gib * n, (r.gpu_milli / 1000 if r.gpu_milli else r.gpu) * n)
    assert (tenant, priority) == (spec.tenant, terms.priority_of(spec))
