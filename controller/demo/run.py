"""The demo: controller on SQLite + the embedded 1+32+N federation + a mixed batch of real jobs.

1. start the controller (real HTTP on 127.0.0.1, SQLite in .demo/);
2. start one agent per member cluster with the local executor (real processes);
3. register sample data sets of every classification, their CSVs placed only on the clusters
   that hold a copy (a job elsewhere has the data fetched, which residency must allow);
4. submit a mixed batch through the HTTP API, wait, and print where each job ran, why, and its output.
"""

from __future__ import annotations

import shutil
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from controller.client import ApiError, Client
from controller.demo.data import DATASETS, write_all
from controller.executors.base import ResourceAmounts
from controller.executors.local import LocalExecutor
from controller.federation import EmbeddedFederation
from controller.live import LiveController

PY = sys.executable


def task(*args: str) -> list[str]:
    return [PY, "-m", "controller.demo.tasks", *args]


def demo_jobs() -> list[dict[str, Any]]:
    """A mixed batch: each job shows one placement rule at work."""
    return [
        {
            "name": "gd-insurance-by-category",
            "tenant": "guangdong",
            "inputs": ["gd-social-insurance"],
            "runtime": {
                "command": task(
                    "aggregate", "gd-social-insurance", "--by", "category", "--value", "amount_yuan"
                )
            },
        },
        {
            "name": "zj-tax-by-sector",
            "tenant": "zhejiang",
            "inputs": ["zj-enterprise-tax"],
            "resources": {"cpu": 16, "memory_gib": 64},
            "runtime": {
                "command": task("aggregate", "zj-enterprise-tax", "--by", "sector", "--value", "amount_yuan")
            },
        },
        {
            "name": "sc-age-by-district",
            "tenant": "sichuan",
            "inputs": ["sc-population-register"],
            "runtime": {
                "command": task(
                    "aggregate",
                    "sc-population-register",
                    "--by",
                    "district",
                    "--value",
                    "age",
                    "--op",
                    "mean",
                )
            },
        },
        {
            "name": "national-cpi-by-item",
            "tenant": "national",
            "inputs": ["national-prices"],
            "runtime": {
                "command": task(
                    "aggregate", "national-prices", "--by", "item", "--value", "index", "--op", "mean"
                )
            },
        },
        {
            "name": "mps-incidents-by-severity",
            "tenant": "mps",
            "inputs": ["mps-traffic-incidents"],
            "runtime": {
                "command": task("aggregate", "mps-traffic-incidents", "--by", "severity", "--value", "count")
            },
        },
        {
            "name": "gd-vs-zj-revenue",
            "tenant": "national",
            "priority": 500,
            "inputs": ["gd-social-insurance", "zj-enterprise-tax"],
            "runtime": {
                "command": task(
                    "compare", "gd-social-insurance", "zj-enterprise-tax", "--value", "amount_yuan"
                )
            },
        },
        {
            "name": "hb-open-stats-offline",
            "tenant": "hubei",
            "inputs": ["hb-open-statistics"],
            "delay_tolerant": True,
            "constraints": {"deny_clusters": ["prov-hubei"]},
            "runtime": {
                "command": task("aggregate", "hb-open-statistics", "--by", "indicator", "--value", "value")
            },
        },
        {
            "name": "gd-insurance-not-in-gd",
            "tenant": "guangdong",
            "inputs": ["gd-social-insurance"],
            "constraints": {"deny_clusters": ["prov-guangdong"]},
            "runtime": {
                "command": task("aggregate", "gd-social-insurance", "--by", "district", "--op", "count")
            },
        },
        {
            "name": "bj-gpu-training",
            "tenant": "beijing",
            "resources": {"cpu": 32, "memory_gib": 128, "gpu": 8},
            "replicas": 2,
            "runtime": {"command": [PY, "-c", "print('trained 2x8 GPU gang: loss 0.042')"]},
        },
        {"name": "sh-schema-check", "tenant": "shanghai", "runtime": {"command": task("fail")}},
        # Cannot be placed: core data of Sichuan never moves, important data of Guangdong never
        # reaches Sichuan; no cluster satisfies both.
        {
            "name": "sh-join-core-and-important",
            "tenant": "shanghai",
            "inputs": ["sc-population-register", "gd-social-insurance"],
            "runtime": {
                "command": task("compare", "sc-population-register", "gd-social-insurance", "--value", "age")
            },
        },
        # Cannot be placed: no cluster of the federation has 50,000 free cores.
        {
            "name": "xj-too-big",
            "tenant": "xinjiang",
            "resources": {"cpu": 1000},
            "replicas": 50,
            "runtime": {"command": [PY, "-c", "print('unreachable')"]},
        },
    ]


def stage_data(
    workdir: Path,
) -> tuple[Path, dict[str, Path], Callable[[str, Path], bool], list[tuple[str, str]]]:
    """Write the sample data sets and place each copy on the clusters that hold one, and nowhere
    else. Returns (per-cluster data root, source files, the WAN fetch the agents use, moves made)."""
    data_root = workdir / "data"
    source = write_all(workdir / "source")
    by_id = {d.id: d for d in DATASETS}
    for ds in DATASETS:
        for cluster in ds.locations:
            (data_root / cluster).mkdir(parents=True, exist_ok=True)
            shutil.copy(source[ds.id], data_root / cluster / f"{ds.id}.csv")
    moved: list[tuple[str, str]] = []

    def fetch(ds_id: str, target: Path) -> bool:
        """Move a data set over the WAN to a cluster that lacks it (counted and shown)."""
        src = data_root / by_id[ds_id].locations[0] / f"{ds_id}.csv"
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(src, target)
        moved.append((ds_id, target.parent.name))
        return True

    return data_root, source, fetch, moved


def local_executors(ctl: Any, workdir: Path) -> Callable[[str], LocalExecutor]:
    """One local executor per cluster, advertising the cluster's declared capacity (the topology's),
    so placements are those of the real federation while the commands run as small local processes."""

    def executor(name: str) -> LocalExecutor:
        cap = ctl.registry.clusters[name].spec.capacity
        return LocalExecutor(
            workdir / "work" / name,
            kill_grace_s=2.0,
            capacity=ResourceAmounts(cap.cpu, cap.memory_gib, cap.gpu),
        )

    return executor


def register_datasets(client: Client, source: dict[str, Path]) -> None:
    for ds in DATASETS:
        client.add_dataset(
            {
                "id": ds.id,
                "owner": ds.owner,
                "classification": ds.classification,
                "size_bytes": source[ds.id].stat().st_size * 50_000,
                "locations": list(ds.locations),
                "description": ds.description,
            }
        )


def run(workdir: Path = Path(".demo"), timeout_s: float = 90.0, console: Console | None = None) -> int:
    console = console or Console(width=160)
    t0 = time.monotonic()
    workdir = workdir.resolve()  # jobs run in their own working directories: paths must be absolute
    shutil.rmtree(workdir, ignore_errors=True)
    data_root, source, fetch, moved = stage_data(workdir)

    live = LiveController(workdir / "yiwang.db", name="demo", loop_interval_s=0.1)
    with live, Client(live.url) as client:
        url, ctl = live.url, live.controller
        clusters = list(ctl.registry.clusters)
        console.print(
            f"[bold]Yiwang demo[/]: controller at {url} (SQLite {ctl.settings.database_url}), "
            f"{len(clusters)} member clusters (1+32+N)"
        )
        executor = local_executors(ctl, workdir)
        fed = EmbeddedFederation(
            url, clusters, executor, poll_interval_s=0.3, data_dir=data_root, fetch=fetch
        )
        fed.start()
        try:
            ready = sum(1 for c in client.clusters() if c["health"] == "Ready")
            console.print(
                f"{ready}/{len(clusters)} agents registered and Ready (local executor, real processes)"
            )
            register_datasets(client, source)
            console.print(
                f"registered {len(DATASETS)} data sets: "
                + ", ".join(f"{d.id} ({d.classification})" for d in DATASETS)
            )
            submitted = [client.submit(job, idempotency_key=f"demo-{job['name']}") for job in demo_jobs()]
            console.print(f"submitted {len(submitted)} jobs through POST /v1/jobs")
            final = wait_for(client, [j["id"] for j in submitted], timeout_s)
        finally:
            fed.stop()
        show(console, client, final, moved)
    elapsed = time.monotonic() - t0
    done = sum(1 for j in final if j["phase"] in ("Succeeded", "Failed"))
    console.print(
        f"\n{done} jobs ran to completion, {sum(1 for j in final if j['phase'] == 'Pending')} could "
        f"not be placed (reasons above); demo finished in {elapsed:.1f}s."
    )
    ok = all(j["phase"] in ("Succeeded", "Failed", "Pending") for j in final)
    return 0 if ok else 1


def refused(client: Client, job: dict[str, Any]) -> bool:
    """The scheduler decided the job and placed it nowhere (its stored decision, structured)."""
    try:
        decision = client.decision(job["id"])
    except ApiError as e:
        if e.status == 404:  # not decided yet
            return False
        raise
    return decision["cluster"] is None and decision["attempt"] == job["attempt"]


def wait_for(client: Client, ids: list[str], timeout_s: float) -> list[dict[str, Any]]:
    """Until every placeable job finished and every unplaceable one has its decision."""
    deadline = time.monotonic() + timeout_s
    while True:
        jobs = [client.job(i) for i in ids]
        settled = all(
            j["phase"] in ("Succeeded", "Failed", "Cancelled")
            or (j["phase"] == "Pending" and refused(client, j))
            for j in jobs
        )
        if settled or time.monotonic() > deadline:
            return jobs
        time.sleep(0.3)


def show(console: Console, client: Client, jobs: list[dict[str, Any]], moved: list[tuple[str, str]]) -> None:
    classes = {d["id"]: d["classification"] for d in client.datasets()}
    table = Table(title="Where each job ran", show_lines=False, expand=True)
    for col, ratio in (("job", 3), ("tenant", 2), ("inputs", 4), ("cluster", 3), ("phase", 2), ("output", 6)):
        table.add_column(col, overflow="fold", ratio=ratio)
    whys: list[tuple[str, str]] = []
    for j in jobs:
        spec = j["spec"]
        inputs = ", ".join(f"{d} ({classes.get(d, '?')})" for d in spec["inputs"]) or "-"
        try:
            d = client.decision(j["id"])
            why = d["summary"]
            top = d["feasible"][0] if d["feasible"] else None
            if top:
                why += " Scores of the winner: " + ", ".join(f"{k} {v:.0f}" for k, v in top["scores"].items())
                if top["transfer_bytes"]:
                    why += f"; moves {top['transfer_bytes'] / 1e9:.1f} GB in ~{top['transfer_seconds']:.0f}s"
        except ApiError:
            why = j["message"]
        whys.append((spec["name"], why))
        output = next(
            (e["reason"] for e in reversed(j["events"]) if e["to_phase"] in ("Succeeded", "Failed")), ""
        )
        style = {"Succeeded": "green", "Failed": "red", "Pending": "yellow"}.get(j["phase"], "white")
        table.add_row(
            spec["name"],
            spec["tenant"],
            inputs,
            j["cluster"] or "-",
            f"[{style}]{j['phase']}[/]",
            output[:300],
        )
    console.print(table)
    console.print("\n[bold]Why[/] (the stored decision of each job, GET /v1/jobs/{id}/decision):")
    for name, why in whys:
        console.print(f"  [cyan]{name}[/]: {why}")
    if moved:
        console.print(
            "\nData moved over the WAN (general data, or important data to its owner/national nodes): "
            + ", ".join(f"{d} -> {c}" for d, c in moved)
        )
