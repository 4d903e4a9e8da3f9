"""Combined commits (controller/store/combine.py): concurrent writes in one transaction, each
caller back only after a transaction holding its item committed; and heartbeats through them."""

from __future__ import annotations

import threading
import time
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from controller.service import Controller
from controller.settings import Settings
from controller.store import Store
from controller.store.clusters import later_contact
from controller.store.combine import Combiner
from controller.store.store import now, utc

CAP = {"capacity": {"cpu": 64, "memory_gib": 256, "gpu": 0}}


def wait_until(cond: object, timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not cond():  # type: ignore[operator]
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.005)


def test_callers_queued_behind_a_write_share_the_next_transaction() -> None:
    written: list[dict[int, int]] = []
    committed: set[int] = set()
    first_in = threading.Event()
    release = threading.Event()

    def write(batch: dict[int, int]) -> None:
        if not written:
            first_in.set()
            release.wait(10)
        written.append(dict(batch))
        committed.update(batch)

    c: Combiner[int, int] = Combiner(write)
    back: dict[int, bool] = {}

    def put(k: int) -> None:
        c.put(k, k * 10)
        back[k] = k in committed  # returned only once its item committed

    first = threading.Thread(target=put, args=(0,))
    first.start()
    assert first_in.wait(10)
    rest = [threading.Thread(target=put, args=(k,)) for k in range(1, 20)]
    for t in rest:
        t.start()
    wait_until(lambda: c.queued() == 19)  # all waiting on the first write
    release.set()
    for t in [first, *rest]:
        t.join(10)
    assert written == [{0: 0}, {k: k * 10 for k in range(1, 20)}]
    assert back == {k: True for k in range(20)}
    assert (c.batches, c.items) == (2, 20)


def test_a_failed_transaction_fails_every_caller_in_it_and_not_the_next() -> None:
    first_in = threading.Event()
    release = threading.Event()
    calls: list[dict[str, int]] = []

    def write(batch: dict[str, int]) -> None:
        calls.append(dict(batch))
        if len(calls) == 1:
            first_in.set()
            release.wait(10)
        if len(calls) == 2:
            raise RuntimeError("database gone")

    c: Combiner[str, int] = Combiner(write)
    errors: dict[str, str] = {}

    def put(k: str) -> None:
        try:
            c.put(k, 1)
        except RuntimeError as exc:
            errors[k] = str(exc)

    threads = [threading.Thread(target=put, args=(k,)) for k in ("a", "b", "c")]
    threads[0].start()
    assert first_in.wait(10)
    for t in threads[1:]:
        t.start()
    wait_until(lambda: c.queued() == 2)
    release.set()
    for t in threads:
        t.join(10)
    assert errors == {"b": "database gone", "c": "database gone"}  # "a" committed first
    c.put("d", 1)  # the next transaction goes through
    assert calls[-1] == {"d": 1}


def test_a_caller_that_wakes_late_still_gets_its_transactions_failure() -> None:
    """A caller of a failed transaction raises its error however many transactions are written
    before it wakes (the first version kept the errors of the last 64 failed transactions only:
    a caller that woke after more had failed returned as if its item had committed)."""
    first_in = threading.Event()
    release = threading.Event()
    late = threading.Event()  # holds the late caller between its wake-up and its check

    def write(batch: dict[str, int]) -> None:
        if "w" in batch:
            first_in.set()
            release.wait(10)
        if "late" in batch or any(k.startswith("x") for k in batch):
            raise RuntimeError("database gone")

    c: Combiner[str, int] = Combiner(write)
    held: list[bool] = []

    class SlowToWake(threading.Condition):
        def wait(self, timeout: float | None = None) -> bool:
            woke = super().wait(timeout)
            if threading.current_thread().name == "late" and not held:
                held.append(True)
                self.release()  # another caller takes over, and many transactions go by
                late.wait(10)
                self.acquire()
            return woke

    c._cond = SlowToWake()
    outcome: dict[str, str] = {}

    def put(k: str) -> None:
        try:
            c.put(k, 1)
            outcome[k] = "returned"
        except RuntimeError as exc:
            outcome[k] = str(exc)

    writer = threading.Thread(target=put, args=("w",))
    writer.start()
    assert first_in.wait(10)
    slow = threading.Thread(target=put, args=("late",), name="late")
    slow.start()
    wait_until(lambda: c.queued() == 1)
    other = threading.Thread(target=put, args=("other",))
    other.start()
    wait_until(lambda: c.queued() == 2)
    release.set()  # "other" writes the failed batch holding "late"; "late" is held
    other.join(10)
    assert outcome.get("other") == "database gone"
    for k in range(100):  # a hundred more transactions fail before "late" looks at its own
        with pytest.raises(RuntimeError):
            c.put(f"x{k}", 1)
    late.set()
    for t in (writer, slow):
        t.join(10)
    assert outcome == {"w": "returned", "other": "database gone", "late": "database gone"}
    assert held == [True]


def test_the_later_heartbeat_of_a_cluster_wins_within_a_batch() -> None:
    t0 = now()
    early, late = (t0, {"n": 1}), (t0 + timedelta(seconds=2), {"n": 2})
    assert later_contact(early, late) == late
    assert later_contact(late, early) == late  # arrived out of order: still the later contact


def test_concurrent_heartbeats_all_land_in_fewer_transactions(db_url: str) -> None:
    threads = 42  # the agents of the 1+32+N federation
    store = Store(db_url)
    names = [f"prov-c{k:02d}" for k in range(threads)]
    store.insert_missing_clusters({n: {"name": n} for n in names})
    at = {n: now() + timedelta(seconds=k) for k, n in enumerate(names)}
    gate = threading.Barrier(threads)
    seen: dict[str, tuple[str, datetime | None]] = {}

    def beat(n: str) -> None:
        gate.wait(10)
        store.heartbeat(n, CAP, at[n])
        row = next(r for r in store.list_clusters() if r["name"] == n)
        seen[n] = (row["health"], utc(row["last_heartbeat"]))  # read back as soon as it returned

    workers = [threading.Thread(target=beat, args=(n,)) for n in names]
    for w in workers:
        w.start()
    for w in workers:
        w.join(30)
    assert seen == {n: ("Ready", at[n]) for n in names}  # each committed before it returned
    rows = {r["name"]: r for r in store.list_clusters()}
    assert all(rows[n]["reported"] == CAP for n in names)
    assert store._heartbeats.items == threads
    assert store._heartbeats.batches < threads
    store.close()


def test_a_heartbeat_does_not_wait_for_a_scheduling_cycle(tmp_path: Path) -> None:
    """A cycle holds the controller's lock through its evaluation (0.5 s and more for 10,000 jobs);
    a renewal is committed and answered meanwhile, and the registry shows the new contact."""
    ctl = Controller(Settings(database_url=f"sqlite:///{tmp_path / 'y.db'}", background=False))
    try:
        held, done = threading.Event(), threading.Event()

        def cycle() -> None:
            with ctl.lock:  # as schedule_pending holds it while it evaluates
                held.set()
                done.wait(30)

        holder = threading.Thread(target=cycle)
        holder.start()
        assert held.wait(10)
        answered: list[dict[str, Any]] = []
        beat = threading.Thread(target=lambda: answered.append(ctl.heartbeat("prov-hubei", CAP)))
        beat.start()
        beat.join(5)
        still_held, got = holder.is_alive(), list(answered)  # before the lock is let go
        done.set()
        holder.join(10)
        beat.join(10)
        assert still_held and got, "the heartbeat waited for the cycle's lock"
        state = ctl.registry.clusters["prov-hubei"]
        assert state.health == "Ready" and state.reported == CAP
    finally:
        ctl.stop()
        ctl.store.close()
