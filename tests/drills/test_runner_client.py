"""The drill's own client (``DrillRunner.api``): a write under an Idempotency-Key is sent again
when no answer comes (a loaded CI machine, a restarting controller); a read or a plain write is
not, and a repeat stops after ``RETRY_FOR_S``."""

from __future__ import annotations

import shutil
from collections.abc import Iterator

import httpx
import pytest

from controller.drills import runner as runner_mod
from controller.drills.runner import DrillRunner
from controller.drills.scenario import parse_scenario
from tests.drills.conftest import small_scenario


@pytest.fixture
def runner() -> Iterator[DrillRunner]:
    r = DrillRunner(parse_scenario(small_scenario()))
    yield r
    r.http.close()
    shutil.rmtree(r.workdir, ignore_errors=True)


def flaky(fail_first: int, seen: list[str]) -> httpx.MockTransport:
    """Times out the first ``fail_first`` requests, then answers 201 with the request's key."""

    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(request.method)
        if len(seen) <= fail_first:
            raise httpx.ReadTimeout("no answer in time", request=request)
        return httpx.Response(201, json={"id": "j-1", "key": request.headers.get("Idempotency-Key")})

    return httpx.MockTransport(handle)


def test_a_submission_under_a_key_is_sent_again_until_answered(
    runner: DrillRunner, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(runner_mod.time, "sleep", lambda _s: None)
    seen: list[str] = []
    runner.http = httpx.Client(transport=flaky(2, seen))
    job = runner.api("POST", "/v1/jobs", json={"name": "a"}, headers={"Idempotency-Key": "drill-a-0"})
    assert job == {"id": "j-1", "key": "drill-a-0"}
    assert seen == ["POST", "POST", "POST"]


@pytest.mark.parametrize("method", ["POST", "GET"])
def test_a_read_or_a_write_without_a_key_is_not_repeated(runner: DrillRunner, method: str) -> None:
    seen: list[str] = []
    runner.http = httpx.Client(transport=flaky(1, seen))
    with pytest.raises(httpx.ReadTimeout):
        runner.api(method, "/v1/jobs")
    assert seen == [method]


def test_the_repeat_gives_up_after_its_deadline(runner: DrillRunner, monkeypatch: pytest.MonkeyPatch) -> None:
    clock = iter(float(i) for i in range(0, 1000, 7))  # each look at the clock: 7 s later
    monkeypatch.setattr(runner_mod.time, "monotonic", lambda: next(clock))
    monkeypatch.setattr(runner_mod.time, "sleep", lambda _s: None)
    seen: list[str] = []
    runner.http = httpx.Client(transport=flaky(10_000, seen))
    with pytest.raises(httpx.ReadTimeout):
        runner.api("POST", "/v1/jobs", headers={"Idempotency-Key": "k"})
    # started at 0, the deadline RETRY_FOR_S later: tries at 7, 14, 21, 28 go again, 35 stops
    assert len(seen) == int(runner_mod.RETRY_FOR_S // 7) + 1
