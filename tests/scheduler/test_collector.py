"""The leader's garbage collector around scheduling cycles (controller/scheduler/collector.py)."""

from __future__ import annotations

import gc
import threading
import weakref
from collections.abc import Iterator
from pathlib import Path

import pytest

from controller.scheduler import collector
from controller.scheduler.collector import CycleCollector


class Node:
    def __init__(self) -> None:
        self.other: Node | None = None


def cyclic_garbage() -> weakref.ref[Node]:
    """A reference cycle dropped at once: only the collector can free it."""
    a, b = Node(), Node()
    a.other, b.other = b, a
    return weakref.ref(a)


@pytest.fixture
def tuned(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    enabled = gc.isenabled()
    gc.enable()  # the tests start from the collector on, whatever ran before in this process
    monkeypatch.setattr(collector, "_GC_TUNED", True)
    yield
    gc.unfreeze()
    if enabled:
        gc.enable()
    else:
        gc.disable()


def test_a_process_not_tuned_is_left_as_it_is(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(collector, "_GC_TUNED", False)
    c = CycleCollector()
    before = gc.isenabled()
    with c.cycle():
        assert gc.isenabled() == before
        ref = cyclic_garbage()
    gc.collect()
    assert ref() is None
    assert c.cycles == 0


def test_the_collector_is_off_in_a_cycle_and_cycles_are_freed_by_the_next_full_collection(
    tuned: None,
) -> None:
    c = CycleCollector(full_every=3, full_after_s=3600)
    with c.cycle():
        assert not gc.isenabled()
        ref = cyclic_garbage()
    assert gc.isenabled()
    # frozen with what survived the cycle: a collection between cycles does not look at it
    gc.collect()
    assert ref() is not None
    with c.cycle():
        pass
    assert ref() is not None and c.full_collections == 0
    with c.cycle():  # the third cycle: a full collection, frozen objects included
        pass
    assert ref() is None
    assert c.full_collections == 1 and c.collected >= 2 and c.cycles == 0


def test_a_full_collection_after_full_after_s(tuned: None, monkeypatch: pytest.MonkeyPatch) -> None:
    c = CycleCollector(full_every=1000, full_after_s=60)
    with c.cycle():
        ref = cyclic_garbage()
    assert ref() is not None
    monkeypatch.setattr(c, "last_full", c.last_full - 61)
    with c.cycle():
        pass
    assert ref() is None and c.full_collections == 1


def test_overlapping_cycles_turn_it_back_on_when_the_last_ends(tuned: None) -> None:
    c = CycleCollector()
    inside, release = threading.Event(), threading.Event()

    def other() -> None:
        with c.cycle():
            inside.set()
            release.wait(10)

    t = threading.Thread(target=other)
    with c.cycle():
        t.start()
        assert inside.wait(10)
    assert not gc.isenabled()  # the other thread's cycle still runs
    release.set()
    t.join(10)
    assert gc.isenabled()
    assert c.cycles == 1  # one end of cycle: when the last of the overlapping ones ended


def test_a_collector_switched_off_before_stays_off(tuned: None) -> None:
    c = CycleCollector()
    gc.disable()
    with c.cycle():
        pass
    assert not gc.isenabled()
    gc.enable()


def test_an_exception_in_a_cycle_still_ends_it(tuned: None) -> None:
    c = CycleCollector()
    with pytest.raises(RuntimeError), c.cycle():
        raise RuntimeError("boom")
    assert gc.isenabled() and c.cycles == 1


def test_the_leaders_cycle_runs_with_the_collector_off(tuned: None, tmp_path: Path) -> None:
    from controller.bench.mixed import job_row
    from controller.scheduler.collector import COLLECTOR
    from controller.service import Controller
    from controller.settings import Settings

    ctl = Controller(Settings(database_url=f"sqlite:///{tmp_path}/y.db", background=False))
    try:
        for name in ctl.registry.clusters:
            ctl.heartbeat(name, None)
        ended = COLLECTOR.ended
        assert ctl.schedule_pending() == 0
        assert COLLECTOR.ended == ended  # an idle tick: nothing to decide, the collector untouched
        body = {"name": "one", "tenant": "hubei", "resources": {"cpu": 1, "memory_gib": 1}}
        ctl.store.insert_jobs_bulk([job_row(body)])
        seen: list[bool] = []
        ctl.decision_observers.append(lambda _: seen.append(gc.isenabled()))
        ended = COLLECTOR.ended
        assert ctl.schedule_pending() == 1
        assert seen == [False] and gc.isenabled()
        assert COLLECTOR.ended == ended + 1  # the cycle's end was the collector's
    finally:
        ctl.stop()
        ctl.store.close()


@pytest.mark.parametrize("tune", [True, False])
def test_a_controller_tunes_the_collector_only_of_a_process_it_owns(
    tune: bool, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """``Settings.tune_gc``: a controller that is the process tunes its collector when its loops
    start; a guest (``tune_gc=False``: the tests, a drill's threads) leaves it as it is. A thread
    of ``LiveController`` is such a guest."""
    from controller.live import LiveController
    from controller.service import Controller
    from controller.settings import Settings

    monkeypatch.setattr(collector, "_GC_TUNED", False)
    called: list[bool] = []
    monkeypatch.setattr("controller.services.leadership.tune_gc", lambda: called.append(True))
    ctl = Controller(Settings(database_url=f"sqlite:///{tmp_path}/y.db", tune_gc=tune))
    try:
        ctl.start()
    finally:
        ctl.stop()
        ctl.store.close()
    assert called == ([True] if tune else [])
    assert not collector._GC_TUNED

    called.clear()
    monkeypatch.setenv("YIWANG_TUNE_GC", "true")  # the suite's own default aside: the thread says so
    with LiveController(tmp_path / "live.db", name="guest") as live:
        assert live.running and live.controller.settings.tune_gc is False
    assert called == []
