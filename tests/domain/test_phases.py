"""The one job state machine: its rule table, the store's guard on every phase write, and the
409 problem+json an illegal change gets through the API wherever it comes from."""

from __future__ import annotations

import ast
import itertools
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select, update

from controller.domain import phases
from controller.domain.phases import RULES, JobPhase, Reason, transition
from controller.errors import IllegalTransition
from controller.jobs import JobCreate
from controller.store import schema as t
from tests.conftest import REPO

P = JobPhase
REQUEUE = {Reason.Preempted, Reason.Drained, Reason.LeaseExpired, Reason.Released}
# The legal changes, written out independently of controller/domain/phases.py: the spec the
# table is held to (docs/design-notes.md, docs/agents.md).
EXPECTED: dict[tuple[JobPhase | None, JobPhase], set[Reason]] = {
    (None, P.Pending): {Reason.Submitted},
    (P.Pending, P.Scheduled): {Reason.Scheduled},
    (P.Pending, P.Cancelled): {Reason.Cancelled},
    (P.Pending, P.Failed): {Reason.Failed},
    (P.Scheduled, P.Running): {Reason.Running},
    (P.Scheduled, P.Succeeded): {Reason.Succeeded},
    (P.Scheduled, P.Failed): {Reason.Failed},
    (P.Scheduled, P.Cancelled): {Reason.Cancelled},
    (P.Scheduled, P.Pending): REQUEUE,
    (P.Running, P.Succeeded): {Reason.Succeeded},
    (P.Running, P.Failed): {Reason.Failed},
    (P.Running, P.Cancelled): {Reason.Cancelled},
    (P.Running, P.Pending): REQUEUE,
}
FROM: list[JobPhase | None] = [None, *JobPhase]
ALL_CHANGES = list(itertools.product(FROM, list(JobPhase), list(Reason)))


def test_the_rule_table_is_the_spec() -> None:
    assert {k: set(v) for k, v in RULES.items()} == EXPECTED
    assert all(not RULES.keys() & {(p, q) for q in JobPhase} for p in phases.TERMINAL)


@pytest.mark.parametrize(("frm", "to", "reason"), ALL_CHANGES, ids=str)
def test_transition_accepts_exactly_the_legal_changes(
    frm: JobPhase | None, to: JobPhase, reason: Reason
) -> None:
    legal = reason in EXPECTED.get((frm, to), set())
    if legal:
        assert transition("j", frm, to, reason) is to
    else:
        with pytest.raises(IllegalTransition) as exc:
            transition("j", frm, to, reason)
        assert exc.value.status == 409 and "job j cannot go from" in exc.value.detail
    # without a reason only the pair is checked
    assert ((frm, to) in EXPECTED) == _accepted(frm, to)


def _accepted(frm: JobPhase | None, to: JobPhase) -> bool:
    try:
        transition("j", frm, to)
    except IllegalTransition:
        return False
    return True


def test_unknown_phases_are_illegal_not_crashes() -> None:
    with pytest.raises(IllegalTransition):
        transition("j", "Pending", "Exploded")
    with pytest.raises(IllegalTransition):
        transition("j", "Limbo", "Pending")


def test_stored_strings_are_unchanged() -> None:
    """str-valued enums: what the database and the JSON hold is the plain name."""
    assert [str(p) for p in JobPhase] == [
        "Pending",
        "Scheduled",
        "Running",
        "Succeeded",
        "Failed",
        "Cancelled",
    ]
    assert Reason.LeaseExpired == "LeaseExpired" and phases.Health.Ready == "Ready"
    assert f"{JobPhase.Running}" == "Running"


# ---- the store's guard -------------------------------------------------------------------------
def _put(ctl: Any, job_id: str, phase: str, **more: Any) -> None:
    """Force a job's row into a phase (the test's own write, beside the store's API)."""
    with ctl.store.tx() as conn:
        conn.execute(update(t.jobs).where(t.jobs.c.id == job_id).values(phase=phase, **more))


def _events(ctl: Any, job_id: str) -> list[tuple[Any, ...]]:
    e = t.job_events.c
    with ctl.store.read() as conn:
        q = select(e.type, e.from_phase, e.to_phase).where(e.job_id == job_id).order_by(e.id)
        return [tuple(r) for r in conn.execute(q)]


JOB = {"name": "report", "tenant": "guangdong", "resources": {"cpu": 1, "memory_gib": 1}}


@pytest.mark.parametrize(("frm", "to"), list(itertools.product(JobPhase, JobPhase)), ids=str)
def test_store_transition_refuses_illegal_changes_and_writes_nothing(
    client: TestClient, app: Any, frm: JobPhase, to: JobPhase
) -> None:
    ctl = app.state.controller
    jid = client.post("/v1/jobs", json=JOB).json()["id"]
    _put(ctl, jid, frm.value)
    reasons = EXPECTED.get((frm, to))
    reason = sorted(reasons)[0] if reasons else Reason.__members__.get(to.value, Reason.Drained)
    before = _events(ctl, jid)

    def write() -> bool:
        with ctl.store.tx() as conn:
            ok: bool = ctl.store.transition(
                conn,
                jid,
                expect_phases=[frm.value],
                expect_attempt=None,
                values={"phase": to.value},
                event_type=reason,
                reason="test",
            )
            return ok

    if reasons:
        assert write() is True
        assert ctl.store.get_job(jid)["phase"] == to.value
        assert _events(ctl, jid) == [*before, (reason.value, frm.value, to.value)]
    else:
        with pytest.raises(IllegalTransition):
            write()
        assert ctl.store.get_job(jid)["phase"] == frm.value
        assert _events(ctl, jid) == before


def test_store_transition_refuses_a_reason_the_rule_does_not_allow(client: TestClient, app: Any) -> None:
    """Running -> Pending is legal as a failover, not as 'Succeeded'; a requeue cannot finish."""
    ctl = app.state.controller
    jid = client.post("/v1/jobs", json=JOB).json()["id"]
    _put(ctl, jid, "Running")
    with pytest.raises(IllegalTransition, match="by 'Succeeded'"), ctl.store.tx() as conn:
        ctl.store.transition(
            conn,
            jid,
            expect_phases=["Running"],
            expect_attempt=None,
            values={"phase": "Pending"},
            event_type="Succeeded",
            reason="test",
        )
    assert ctl.store.get_job(jid)["phase"] == "Running"


def test_a_new_job_must_start_pending(app: Any) -> None:
    ctl = app.state.controller
    row = ctl.submission.new_job_row(JobCreate.model_validate(JOB), None)
    with pytest.raises(IllegalTransition, match="from nothing"):
        ctl.store.insert_jobs([{**row, "phase": "Running"}])
    with pytest.raises(IllegalTransition, match="from nothing"):
        ctl.store.insert_jobs_bulk([{**row, "phase": "Succeeded"}])
    assert ctl.store.get_job(row["id"]) is None


# ---- through the API: 409 problem+json -----------------------------------------------------------
@pytest.mark.parametrize("frm", list(JobPhase), ids=str)
def test_cancel_from_every_phase(client: TestClient, app: Any, frm: JobPhase) -> None:
    ctl = app.state.controller
    jid = client.post("/v1/jobs", json=JOB).json()["id"]
    _put(ctl, jid, frm.value, cluster=None if frm == P.Pending else "prov-guangdong")
    r = client.post(f"/v1/jobs/{jid}/cancel")
    if (frm, P.Cancelled) in EXPECTED:
        assert r.status_code == 200, r.text
        assert r.json()["phase"] == "Cancelled"
    else:
        assert r.status_code == 409, r.text
        assert r.headers["content-type"].startswith("application/problem+json")
        body = r.json()
        assert body["type"].endswith("/illegal-transition") and body["status"] == 409
        assert f"cannot go from {frm.value} to Cancelled" in body["detail"]
        assert client.get(f"/v1/jobs/{jid}").json()["phase"] == frm.value


@pytest.mark.parametrize(
    ("frm", "to"), list(itertools.product(JobPhase, [P.Running, P.Succeeded, P.Failed])), ids=str
)
def test_agent_report_from_every_phase(client: TestClient, app: Any, frm: JobPhase, to: JobPhase) -> None:
    """A report is taken when the rule table allows it (or repeats the phase), else 409."""
    ctl = app.state.controller
    jid = client.post("/v1/jobs", json=JOB).json()["id"]
    _put(ctl, jid, frm.value, cluster="prov-guangdong", epoch=1)
    rep = {"job_id": jid, "attempt": 1, "epoch": 1, "phase": to.value, "exit_code": 0}
    r = client.post("/v1/agents/prov-guangdong/status", json=rep)
    if (frm, to) in EXPECTED or (frm == to and not frm.is_terminal()):
        assert r.status_code == 200, r.text
        assert r.json()["phase"] == to.value
    else:
        assert r.status_code == 409, r.text
        assert r.headers["content-type"].startswith("application/problem+json")
        # a finished job tells the agent to stop (stale attempt); any other refusal is the rule
        kind = "/stale-attempt" if frm.is_terminal() else "/illegal-transition"
        assert r.json()["type"].endswith(kind)
        assert client.get(f"/v1/jobs/{jid}").json()["phase"] == frm.value


# ---- every write site goes through the rule table ------------------------------------------------
def test_every_phase_change_written_in_a_flow_was_checked(
    ready: TestClient, app: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Record every call of the rule table, drive jobs through submission, placement, reports,
    cancel, release and drain, then hold each phase-changing event in the database to a call."""
    ctl = app.state.controller
    checked: set[tuple[str, str | None, str, str | None]] = set()
    real = phases.transition

    def spy(job_id: str, current: str | None, target: str, reason: str | None = None) -> JobPhase:
        out = real(job_id, current, target, reason)
        checked.add((job_id, current and str(current), str(target), reason and str(reason)))
        return out

    monkeypatch.setattr(phases, "transition", spy)
    ids = [ready.post("/v1/jobs", json=JOB).json()["id"] for _ in range(5)]  # group commit
    ids.append(ctl.submit(JobCreate.model_validate(JOB), "k1")[0].id)  # the keyed, synchronous path
    ready.post(f"/v1/jobs/{ids[0]}/cancel")
    ctl.schedule_pending()
    rows = {i: ctl.store.get_job(i) for i in ids[1:]}
    placed = [r for r in rows.values() if r["phase"] == "Scheduled"]
    assert len(placed) == 5
    a, b, c, d, _ = placed
    for row, phase in ((a, "Running"), (a, "Succeeded"), (b, "Failed")):
        rep = {"job_id": row["id"], "attempt": 1, "epoch": row["epoch"], "phase": phase, "exit_code": 0}
        assert ready.post(f"/v1/agents/{row['cluster']}/status", json=rep).status_code == 200
    rel = {"job_id": c["id"], "attempt": 1, "epoch": c["epoch"], "reason": "test"}
    r = ready.post(f"/v1/agents/{c['cluster']}/release", json=rel)
    assert r.status_code == 200, r.text
    assert ready.post(f"/v1/clusters/{d['cluster']}/drain").status_code == 200

    e = t.job_events.c
    with ctl.store.read() as conn:
        q = select(e.job_id, e.from_phase, e.to_phase, e.type).where(
            e.from_phase.is_distinct_from(e.to_phase)
        )
        changes = {tuple(r) for r in conn.execute(q)}
    types = {ch[3] for ch in changes}
    assert {
        "Submitted",
        "Cancelled",
        "Scheduled",
        "Running",
        "Succeeded",
        "Failed",
        "Released",
        "Drained",
    } <= types
    assert changes <= checked, sorted(changes - checked)


WRITES_PHASE = {"phase", "to_phase"}
# Functions that write a phase column without a change of phase, and why.
EXEMPT = {
    ("controller/store/jobs.py", "add_event"): "records an event with from_phase == to_phase",
    ("controller/store/jobs.py", "add_outputs"): "records executors' outputs: events without a phase",
}


def _writes_phase(fn: ast.AST) -> bool:
    for node in ast.walk(fn):
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr == "values"
            and any(k.arg in WRITES_PHASE for k in node.keywords)
        ):
            return True
        if isinstance(node, ast.Dict) and any(
            isinstance(k, ast.Constant) and k.value == "to_phase" for k in node.keys
        ):
            return True
    return False


def _checks(fn: ast.AST) -> bool:
    return any(
        isinstance(n, ast.Call)
        and isinstance(n.func, ast.Attribute)
        and n.func.attr == "transition"
        and isinstance(n.func.value, ast.Name)
        and n.func.value.id == "phases"
        for n in ast.walk(fn)
    )


def test_every_function_that_writes_a_phase_calls_the_rule_table() -> None:
    found = []
    for path in sorted((REPO / "controller").rglob("*.py")):
        rel = str(path.relative_to(REPO))
        if rel.startswith(("controller/domain/", "controller/store/migrations/")):
            continue
        for fn in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(fn, ast.FunctionDef | ast.AsyncFunctionDef) and _writes_phase(fn):
                found.append((rel, fn.name))
                if (rel, fn.name) not in EXEMPT:
                    assert _checks(fn), f"{rel}:{fn.name} writes a job's phase without phases.transition"
    # the scan sees the write sites it is meant to guard (it cannot pass by finding nothing)
    expected = {"transition", "transition_many", "requeue_many", "apply_cycle", "_submitted", "add_event"}
    assert expected <= {name for _, name in found}, found
