from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest

from controller.executors.base import ExecutionNotFound, Executor
from controller.executors.local import LocalExecutor


@pytest.fixture
def executor(tmp_path: Path):
    ex = LocalExecutor(tmp_path / "runs", kill_grace_s=0.5, watchdog_interval_s=0.05)
    yield ex
    ex.close()


def _dead(pid: int) -> bool:
    """Gone, or a zombie waiting for init to reap it (it runs nothing either way)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] == "Z"
    except FileNotFoundError:
        return True


def _wait_dead(pid: int, timeout_s: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while not _dead(pid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def _wait_file(path: Path, timeout_s: float = 10.0) -> str:
    deadline = time.monotonic() + timeout_s
    while not (path.exists() and path.read_text().strip()):
        if time.monotonic() > deadline:
            pytest.fail(f"{path} never written")
        time.sleep(0.05)
    return path.read_text().strip()


def test_is_an_executor(executor):
    assert isinstance(executor, Executor)


def test_runs_once_per_attempt_even_if_started_twice(executor, make_assignment, wait, tmp_path):
    counter = tmp_path / "runs.txt"
    a = make_assignment(runtime={"command": ["sh", "-c", f"echo ran >> {counter}"]})
    executor.start(a)
    executor.start(a)
    assert wait(executor, "job-1").phase == "Succeeded"
    executor.start(a)  # after it finished, too
    assert executor.poll("job-1", 1).phase == "Succeeded"
    assert counter.read_text().splitlines() == ["ran"]
    # A second executor over the same directory (an agent restart) must not run it again either:
    # it reads how the first run ended from the attempt's exit record.
    other = LocalExecutor(executor.base_dir)
    other.start(a)
    status = other.poll("job-1", 1)
    assert (status.phase, status.reason) == ("Succeeded", "Completed")
    assert counter.read_text().splitlines() == ["ran"]
    other.close()
    # The next attempt is a different run.
    executor.start(make_assignment(attempt=2, runtime={"command": ["sh", "-c", f"echo ran >> {counter}"]}))
    assert wait(executor, "job-1", 2).phase == "Succeeded"
    assert counter.read_text().splitlines() == ["ran", "ran"]


def test_output_captured_to_files_and_tail(executor, make_assignment, wait):
    executor.start(make_assignment(runtime={"command": ["sh", "-c", "echo to-out; echo to-err >&2"]}))
    status = wait(executor, "job-1")
    workdir = executor.workdir("job-1", 1)
    assert (workdir / "stdout.log").read_text() == "to-out\n"
    assert (workdir / "stderr.log").read_text() == "to-err\n"
    assert "to-out" in status.output_tail and "to-err" in status.output_tail


def test_environment_has_inputs_and_not_the_agents_secrets(executor, make_assignment, wait, monkeypatch):
    monkeypatch.setenv("YIWANG_AGENT_TOKEN", "s3cret")
    script = 'printf "%s|%s|%s|%s|%s|%s|%s\\n" "$YIWANG_JOB_ID" "$YIWANG_ATTEMPT" "$YIWANG_INPUTS" '
    script += '"$YIWANG_INPUT_POP_CENSUS_2020" "$GREETING" "$YIWANG_AGENT_TOKEN" "$PWD"'
    a = make_assignment(
        job_id="job-env",
        attempt=3,
        inputs={"pop.census-2020": "/data/pop", "gdp": "s3://bucket/gdp"},
        runtime={"command": ["sh", "-c", script], "env": {"GREETING": "nihao"}},
    )
    executor.start(a)
    status = wait(executor, "job-env", 3)
    assert status.phase == "Succeeded"
    fields = status.output_tail.strip().split("|")
    assert fields[:6] == [
        "job-env",
        "3",
        '{"gdp":"s3://bucket/gdp","pop.census-2020":"/data/pop"}',
        "/data/pop",
        "nihao",
        "",
    ]
    assert fields[6] == str(executor.workdir("job-env", 3))


@pytest.mark.parametrize(
    "script",
    [
        pytest.param("sleep 60 & echo $! > child.pid; wait", id="obeys-sigterm"),
        pytest.param("trap '' TERM; sleep 60 & echo $! > child.pid; wait; sleep 60", id="ignores-sigterm"),
    ],
)
def test_max_runtime_kills_the_whole_process_group(executor, make_assignment, wait, script):
    executor.start(make_assignment(max_runtime_s=1, runtime={"command": ["sh", "-c", script]}))
    child = int(_wait_file(executor.workdir("job-1", 1) / "child.pid"))
    status = wait(executor, "job-1")
    assert (status.phase, status.reason) == ("Failed", "DeadlineExceeded")
    assert "max_runtime_s=1" in status.message
    assert _wait_dead(child), f"child process {child} survived"
    assert executor.active() == []


def test_stop_kills_the_process_group_and_is_idempotent(executor, make_assignment, wait):
    executor.start(make_assignment(runtime={"command": ["sh", "-c", "sleep 60 & echo $! > child.pid; wait"]}))
    child = int(_wait_file(executor.workdir("job-1", 1) / "child.pid"))
    assert executor.active() == [("job-1", 1)]
    executor.stop("job-1", 1, "cancelled by operator")
    executor.stop("job-1", 1, "cancelled again")
    status = wait(executor, "job-1")
    assert (status.phase, status.reason) == ("Failed", "Stopped")
    assert "cancelled by operator" in status.message
    assert _wait_dead(child)
    executor.stop("job-1", 1, "after the end")
    executor.stop("never-started", 1, "unknown attempts are fine")
    assert executor.poll("job-1", 1) == status


@pytest.mark.parametrize(
    ("runtime", "phase", "exit_code", "reason"),
    [
        ({"command": ["true"]}, "Succeeded", 0, "Completed"),
        ({"command": ["sh", "-c", "exit 3"]}, "Failed", 3, "NonZeroExitCode"),
        ({"command": ["sh", "-c", "kill -KILL $$"]}, "Failed", 128 + signal.SIGKILL, "Signaled"),
        ({"command": ["/nonexistent/program"]}, "Failed", 127, "StartFailed"),
        ({"command": []}, "Failed", None, "NoCommand"),
        ({"kind": "spark", "main_application_file": "local:///app.py"}, "Failed", None, "UnsupportedRuntime"),
    ],
)
def test_exit_code_mapping(executor, make_assignment, wait, runtime, phase, exit_code, reason):
    executor.start(make_assignment(runtime=runtime))
    status = wait(executor, "job-1")
    assert (status.phase, status.exit_code, status.reason) == (phase, exit_code, reason)
    assert status.message


def test_empty_command_says_what_is_wrong(executor, make_assignment):
    executor.start(make_assignment(runtime={"command": []}))
    assert "runtime.command is empty" in executor.poll("job-1", 1).message


def test_poll_of_unknown_attempt_raises(executor):
    with pytest.raises(ExecutionNotFound):
        executor.poll("nope", 1)


def test_allocated_counts_running_attempts_only(executor, make_assignment, wait):
    executor.start(
        make_assignment(
            replicas=2,
            resources={"cpu": 1.5, "memory_gib": 2, "gpu": 0},
            runtime={"command": ["sleep", "60"]},
        )
    )
    executor.start(make_assignment(job_id="job-2", runtime={"command": ["true"]}))
    wait(executor, "job-2")
    allocated = executor.allocated()
    assert (allocated.cpu, allocated.memory_gib, allocated.gpu) == (3.0, 4.0, 0)
    assert executor.capacity().cpu >= 1
    executor.stop("job-1", 1, "done")
    wait(executor, "job-1")
    assert executor.allocated().cpu == 0


def test_job_ids_are_confined_to_the_base_dir(executor, make_assignment, wait):
    executor.start(make_assignment(job_id="../../escape", runtime={"command": ["true"]}))
    wait(executor, "../../escape")
    workdir = executor.workdir("../../escape", 1).resolve()
    assert workdir.is_relative_to(executor.base_dir.resolve())
    assert os.path.isdir(workdir)
