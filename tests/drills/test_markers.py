"""The marker analysis of process drills, fed constructed marker files: duplicates and overlaps
are counted from the lines alone, and the analysis can say so when it finds them."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

from controller.drills.markers import MarkerLog, analyse, load, marker_command, marker_env


def write(path: Path, lines: list[str]) -> Path:
    path.write_text("".join(f"{line}\n" for line in lines), encoding="utf-8")
    return path


def test_a_job_finished_twice_and_two_executions_at_once_are_counted(tmp_path: Path) -> None:
    log = load(
        write(
            tmp_path / "m.log",
            [
                # j1: attempt 1 finished, its report was refused, attempt 2 ran and finished: twice
                "start j1 1 prov-a 100 10.0",
                "end j1 1 prov-a 100 10.2",
                "start j1 2 prov-a 200 50.0",
                "end j1 2 prov-a 200 50.2",
                # j2: attempt 1 on prov-a ran on while attempt 2 ran on prov-b: overlap 2 s, and twice
                "start j2 1 prov-a 101 0.0",
                "start j2 2 prov-b 300 8.0",
                "end j2 1 prov-a 101 10.0",
                "end j2 2 prov-b 300 18.0",
                # j3: stopped, then re-run after it stopped: neither twice nor overlapping
                "start j3 1 prov-a 102 0.0",
                "term j3 1 prov-a 102 5.0",
                "start j3 2 prov-b 301 5.0",
                "end j3 2 prov-b 301 9.0",
                # j4: once
                "start j4 1 prov-a 103 1.0",
                "end j4 1 prov-a 103 2.0",
            ],
        )
    )
    a = analyse(log, horizon=100.0)
    assert a.duplicate_successes == 2 and a.duplicate_jobs == ["j1", "j2"]
    assert a.overlapping_jobs == 1
    (ov,) = a.overlaps
    assert ov.job_id == "j2" and abs(ov.overlap_s - 2.0) < 1e-9
    assert (ov.first.cluster, ov.second.cluster) == ("prov-a", "prov-b")
    assert a.executions == 7 and a.jobs_executed == 4 and a.successes == 6 and a.stopped == 1
    assert a.no_end == 0 and a.malformed_lines == 0


def test_an_execution_without_an_end_runs_until_the_horizon(tmp_path: Path) -> None:
    """A SIGKILLed (or still running) execution writes no end: it may be alive until the drill
    ends, so a later execution of the job overlaps it."""
    log = load(
        write(
            tmp_path / "m.log",
            ["start k1 1 prov-a 100 0.0", "start k1 2 prov-b 200 40.0", "end k1 2 prov-b 200 41.0"],
        )
    )
    a = analyse(log, horizon=60.0)
    assert a.overlapping_jobs == 1 and a.no_end == 1 and a.duplicate_successes == 0
    assert abs(a.overlaps[0].overlap_s - 1.0) < 1e-9
    assert analyse(log, horizon=40.0).overlapping_jobs == 0  # gone by the time the second started


def test_an_execution_seen_gone_runs_until_then(tmp_path: Path) -> None:
    """A live drill watches the pids of executions without an end: one killed without a trace
    (SIGKILL) counts until it was first seen gone, a live one until the horizon."""
    dead_pid = 2**22 + 1  # above pid_max on this machine: never a live process
    lines = [f"start k1 1 prov-a {dead_pid} 0.0", "start k1 2 prov-b 200 40.0", "end k1 2 prov-b 200 41.0"]
    log = load(write(tmp_path / "m.log", lines))
    log.watch_pids(t=10.0)
    a = analyse(log, horizon=60.0)
    assert a.overlapping_jobs == 0 and a.no_end == 1
    alive = load(write(tmp_path / "n.log", [line.replace(str(dead_pid), str(os.getpid())) for line in lines]))
    alive.watch_pids(t=10.0)
    assert analyse(alive, horizon=60.0).overlapping_jobs == 1  # still running: until the horizon


def test_incremental_reads_keep_partial_lines_and_count_bad_ones(tmp_path: Path) -> None:
    path = tmp_path / "m.log"
    log = MarkerLog(path)
    assert log.poll() == []  # no file yet
    with path.open("a") as f:
        f.write("start j1 1 prov-a 100 1.5\nend j1 1 pro")
    assert [e.job_id for e in log.poll()] == ["j1"]
    assert log.executions[0].ended is None  # the half-written end line is not read yet
    with path.open("a") as f:
        f.write("v-a 100 2.5\ngarbage line\nend j9 1 prov-a 9 3.0\n")
    log.poll()
    assert log.executions[0].ended == 2.5 and log.executions[0].how == "end"
    a = analyse(log, horizon=10.0)
    assert a.malformed_lines == 2 and a.successes == 2  # the garbage and the end without a start


def test_the_job_command_writes_start_and_end_or_term(tmp_path: Path) -> None:
    """The real job script: a finished run writes start+end, a SIGTERMed one start+term."""
    markers = tmp_path / "m.log"
    env = {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8", "YIWANG_JOB_ID": "j1", "YIWANG_CLUSTER": "prov-a"}
    subprocess.run(marker_command(), env={**env, "YIWANG_ATTEMPT": "1", **marker_env(markers, 0)}, check=True)
    p = subprocess.Popen(
        marker_command(),
        env={**env, "YIWANG_ATTEMPT": "2", **marker_env(markers, 30)},
        start_new_session=True,
    )
    log = MarkerLog(markers)
    for _ in range(200):  # wait for attempt 2's start line (bounded)
        log.poll()
        if len(log.executions) == 2:
            break
        time.sleep(0.05)
    os.killpg(p.pid, 15)
    assert p.wait(10) != 0
    log.poll()
    first, second = sorted(log.executions, key=lambda e: e.attempt)
    assert first.how == "end" and second.how == "term" and second.pid == p.pid
    assert analyse(log, horizon=second.started + 100).overlapping_jobs == 0
