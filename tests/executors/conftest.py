from __future__ import annotations

import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

# Until the project is installed in the venv (or pyproject sets pytest's pythonpath), make the
# repository root importable when pytest is run as `.venv/bin/pytest`.
_ROOT = str(Path(__file__).resolve().parents[2])
if _ROOT not in sys.path:
    sys.path.insert(0, _ROOT)

from controller.assignments import Assignment  # noqa: E402
from controller.executors.base import ExecutionStatus, Executor  # noqa: E402
from controller.jobs import JobCreate  # noqa: E402

AssignmentFactory = Callable[..., Assignment]


def build_assignment(
    job_id: str = "job-1",
    attempt: int = 1,
    *,
    tenant: str = "440000",
    cluster: str = "guangdong",
    inputs: dict[str, str] | None = None,
    **spec: Any,
) -> Assignment:
    spec.setdefault("name", "analytics")
    spec.setdefault("tenant", tenant)
    return Assignment(
        job_id=job_id,
        attempt=attempt,
        epoch=7,
        cluster=cluster,
        tenant=tenant,
        spec=JobCreate.model_validate(spec),
        lease_expires_at=datetime.now(UTC) + timedelta(minutes=1),
        inputs=inputs or {},
    )


@pytest.fixture
def make_assignment() -> AssignmentFactory:
    return build_assignment


def wait_terminal(
    executor: Executor, job_id: str, attempt: int = 1, timeout_s: float = 20.0
) -> ExecutionStatus:
    """Poll until the attempt is terminal; bounded, fails the test on timeout."""
    deadline = time.monotonic() + timeout_s
    while True:
        status = executor.poll(job_id, attempt)
        if status.terminal:
            return status
        if time.monotonic() > deadline:
            pytest.fail(
                f"attempt {attempt} of {job_id} still {status.phase} after {timeout_s}s: {status.message}"
            )
        time.sleep(0.05)


@pytest.fixture
def wait() -> Callable[..., ExecutionStatus]:
    return wait_terminal
