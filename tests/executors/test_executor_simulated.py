from __future__ import annotations

import pytest

from controller.executors import EXECUTOR_KINDS, Executor, make_executor
from controller.executors.base import ExecutionNotFound, ExecutorUnavailable, ResourceAmounts
from controller.executors.kube_fake import FakeKubeClient
from controller.executors.simulated import SimNode, SimulatedExecutor, VirtualClock


@pytest.fixture
def clock() -> VirtualClock:
    return VirtualClock()


def cluster(clock: VirtualClock, *nodes: SimNode, **options) -> SimulatedExecutor:
    return SimulatedExecutor(nodes or (SimNode("n1", 4, 16), SimNode("n2", 4, 16)), clock=clock, **options)


def test_is_an_executor(clock):
    assert isinstance(cluster(clock), Executor)


@pytest.mark.parametrize(
    ("blocker_cpu", "replicas", "cpu", "admitted", "nodes"),
    [
        (0, 2, 3, True, ["n1", "n2"]),  # one replica per node
        (2, 2, 3, False, []),  # one replica would fit beside the blocker: none may start
        (0, 4, 2, True, ["n1", "n1", "n2", "n2"]),
        (1, 4, 2, False, []),
        (1, 3, 2, True, ["n1", "n2", "n2"]),
    ],
)
def test_gang_is_all_or_nothing(clock, make_assignment, blocker_cpu, replicas, cpu, admitted, nodes):
    sim = cluster(clock)
    if blocker_cpu:
        sim.start(make_assignment(job_id="blocker", resources={"cpu": blocker_cpu}, expected_runtime_s=100))
    sim.start(make_assignment(replicas=replicas, resources={"cpu": cpu, "memory_gib": 1}))
    status = sim.poll("job-1", 1)
    assert status.phase == "Running"
    assert (status.reason == "WaitingForCapacity") is (not admitted)
    assert sim.allocated().cpu == blocker_cpu + (replicas * cpu if admitted else 0)
    assert sim._attempts[("job-1", 1)].placement == nodes


def test_gang_waits_then_starts_when_capacity_frees(clock, make_assignment):
    sim = cluster(clock)
    sim.start(make_assignment(job_id="big", replicas=2, resources={"cpu": 3}, expected_runtime_s=10))
    sim.start(make_assignment(job_id="gang", replicas=2, resources={"cpu": 2}, expected_runtime_s=5))
    assert sim.poll("gang", 1).reason == "WaitingForCapacity"
    clock.advance(14.9)  # big ends at 10, so the gang started at 10 and ends at 15
    assert sim.poll("big", 1).phase == "Succeeded"
    assert sim.poll("gang", 1).phase == "Running" and sim.poll("gang", 1).reason == ""
    clock.advance(0.1)
    assert sim.poll("gang", 1).phase == "Succeeded"


def test_results_do_not_depend_on_how_often_it_is_polled(make_assignment):
    def run(poll_every: float) -> list[tuple[str, str]]:
        clock = VirtualClock()
        sim = cluster(clock, SimNode("n1", 4, 16))
        for i, runtime in enumerate([10, 3, 7, 2]):
            sim.start(make_assignment(job_id=f"j{i}", resources={"cpu": 3}, expected_runtime_s=runtime))
        t = 0.0
        while t < 21.5:
            clock.advance(poll_every)
            t += poll_every
            if poll_every < 20:
                sim.active()
        return [(f"j{i}", sim.poll(f"j{i}", 1).phase) for i in range(4)]

    # Run back to back they take 10+3+7+2 = 22 s: at t≈21.5 the last one is still running.
    expected = [("j0", "Succeeded"), ("j1", "Succeeded"), ("j2", "Succeeded"), ("j3", "Running")]
    assert run(0.5) == expected
    assert run(21.5) == expected


def test_completion_after_runtime_times_scale(clock, make_assignment):
    sim = cluster(clock, time_scale=0.1)
    sim.start(make_assignment(expected_runtime_s=100))
    clock.advance(9.99)
    assert sim.poll("job-1", 1).phase == "Running"
    clock.advance(0.01)
    status = sim.poll("job-1", 1)
    assert (status.phase, status.exit_code) == ("Succeeded", 0)
    assert sim.active() == [] and sim.allocated() == ResourceAmounts()


def test_start_is_idempotent(clock, make_assignment):
    sim = cluster(clock)
    a = make_assignment(resources={"cpu": 2})
    sim.start(a)
    sim.start(a)
    assert sim.allocated().cpu == 2
    clock.advance(10)
    sim.start(a)
    assert sim.poll("job-1", 1).phase == "Succeeded" and sim.active() == []


@pytest.mark.parametrize(
    "resources",
    [{"cpu": 5}, {"cpu": 1, "memory_gib": 17}, {"cpu": 1, "gpu": 1}],
)
def test_never_fitting_job_is_unschedulable(clock, make_assignment, resources):
    sim = cluster(clock)
    sim.start(make_assignment(resources=resources))
    status = sim.poll("job-1", 1)
    assert (status.phase, status.reason) == ("Failed", "Unschedulable")


def test_deadline_exceeded_when_expected_runtime_is_too_long(clock, make_assignment):
    sim = cluster(clock)
    sim.start(make_assignment(expected_runtime_s=100, max_runtime_s=30))
    clock.advance(30)
    status = sim.poll("job-1", 1)
    assert (status.phase, status.reason) == ("Failed", "DeadlineExceeded")


def test_fail_job_and_stop_release_capacity(clock, make_assignment):
    sim = cluster(clock)
    sim.start(make_assignment(job_id="a", resources={"cpu": 4}))
    sim.start(make_assignment(job_id="b", resources={"cpu": 4}))
    sim.start(make_assignment(job_id="c", resources={"cpu": 4}))
    assert sim.poll("c", 1).reason == "WaitingForCapacity"
    sim.fail_job("a", 1, "disk full")
    status = sim.poll("a", 1)
    assert (status.phase, status.reason) == ("Failed", "InjectedFailure") and "disk full" in status.message
    assert sim.poll("c", 1).reason == ""  # admitted in a's place
    sim.stop("b", 1, "cancelled")
    sim.stop("b", 1, "twice")
    sim.stop("unknown", 1, "fine")
    assert (sim.poll("b", 1).phase, sim.poll("b", 1).reason) == ("Failed", "Stopped")
    assert sim.allocated().cpu == 4
    with pytest.raises(ExecutionNotFound):
        sim.poll("unknown", 1)


def test_fail_cluster(clock, make_assignment):
    sim = cluster(clock)
    sim.start(make_assignment(job_id="a"))
    sim.fail_cluster("province offline")
    status = sim.poll("a", 1)
    assert (status.phase, status.reason) == ("Failed", "ClusterFailure")
    assert sim.capacity() == ResourceAmounts()
    with pytest.raises(ExecutorUnavailable):
        sim.start(make_assignment(job_id="b"))
    sim.recover_cluster()
    sim.start(make_assignment(job_id="b"))
    assert sim.poll("b", 1).phase == "Running"


def test_fail_node_fails_the_gangs_on_it(clock, make_assignment):
    sim = cluster(clock)
    sim.start(make_assignment(job_id="gang", replicas=2, resources={"cpu": 3}))
    sim.fail_node("n2")
    assert sim.poll("gang", 1).reason == "NodeFailure"
    assert sim.capacity().cpu == 4
    sim.start(make_assignment(job_id="gang2", replicas=2, resources={"cpu": 3}))
    assert sim.poll("gang2", 1).reason == "Unschedulable"
    sim.restore_node("n2")
    assert sim.capacity().cpu == 8


def test_failure_rate_is_deterministic_per_seed(make_assignment):
    def outcomes(seed: int) -> list[str]:
        clock = VirtualClock()
        sim = cluster(clock, SimNode("big", 1000, 1000), failure_rate=0.5, seed=seed)
        for i in range(40):
            sim.start(make_assignment(job_id=f"j{i}"))
        clock.advance(10)
        return [sim.poll(f"j{i}", 1).phase for i in range(40)]

    assert outcomes(1) == outcomes(1)
    assert set(outcomes(1)) == {"Succeeded", "Failed"}


def test_virtual_clock_does_not_go_back():
    with pytest.raises(ValueError):
        VirtualClock().advance(-1)


# -- the factory -------------------------------------------------------------------------


@pytest.mark.parametrize("kind", EXECUTOR_KINDS)
def test_make_executor(kind, tmp_path):
    options = {
        "local": {"base_dir": tmp_path},
        "kubernetes": {"client": FakeKubeClient(), "capacity": ResourceAmounts(8, 32, 0)},
        "simulated": {"nodes": [{"name": "n1", "cpu": 4, "memory_gib": 16}]},
    }[kind]
    executor = make_executor(kind, **options)
    assert isinstance(executor, Executor) and executor.name == kind


def test_make_executor_rejects_unknown_kinds():
    with pytest.raises(ValueError, match="local, kubernetes, simulated"):
        make_executor("slurm")
