"""The replay's comparison: policy x order x load (x workload), and the floors checked against
the strongest fair baseline at the same order and load.

"Strongest" is taken per metric: for each metric the baseline with the best value at that order
and load (the most demanding comparison; a policy that wins on one metric may lose on another).
Floors (issue 16): WAN bytes <= 0.5x; mean and p95 JCT <= 1.0x (unplaced jobs counted, censored
at the end); 0 residency violations; at 70 % load no tenant's p95 wait over 10x the federation's
median wait; Jain's index over tenants' mean bounded slowdown >= 0.9.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from controller.scheduler.ordering import SORTED_ORDERS
from controller.sim.baselines import BASELINES
from controller.sim.replay import LOADS, OURS, replay, setup

WORKLOADS = {"gpu": 0.25, "cpu": 0.0}  # workload -> fraction of jobs with GPUs (sim/gpu.py)

Row = dict[str, Any]


def run_matrix(
    workloads: Iterable[str] = ("gpu",),
    loads: Iterable[float] = LOADS,
    orders: Iterable[str] = SORTED_ORDERS,
    policies: Iterable[str] | None = None,
    trace: Path | None = None,
    limit: int | None = None,
    progress: Callable[[str], None] | None = None,
    plan: bool = False,
) -> dict[str, Any]:
    names = list(policies or [OURS, *BASELINES])
    rows: list[Row] = []
    setups: list[dict[str, Any]] = []
    for w in workloads:
        for load in loads:
            kw: dict[str, Any] = {"limit": limit, "target": load, "gpu_fraction": WORKLOADS[w], "plan": plan}
            if trace is not None:
                kw["trace_path"] = trace
            jobs, snap, meta = setup(**kw)
            setups.append({"workload": w, **meta})
            for order in orders:
                for p in names:
                    r = replay(p, jobs, snap, order).as_dict()
                    rows.append({"workload": w, "load": load, **r})
                    if progress is not None:
                        progress(f"{w} {load} {order} {p}: mean JCT {r['mean_jct_s']} s ({r['wall_s']} s)")
    return {"setups": setups, "rows": rows, "floors": floors(rows)}


METRICS = {  # metric -> (floor on ours / strongest baseline, or None: reported only)
    "wan_bytes": 0.5,
    "mean_jct_s": 1.0,
    "p95_jct_s": 1.0,
    "p95_wait_s": None,
    "tenant_p95_wait_max_s": None,
}


def floors(rows: list[Row]) -> list[Row]:
    """One line per (workload, load, order): ours against the best baseline on each metric."""
    out: list[Row] = []
    keys = sorted({(r["workload"], r["load"], r["order"]) for r in rows})
    for key in keys:
        group = [r for r in rows if (r["workload"], r["load"], r["order"]) == key]
        ours = next((r for r in group if r["policy"] == OURS), None)
        base = [r for r in group if r["policy"] != OURS]
        if ours is None or not base:
            continue
        line: Row = {"workload": key[0], "load": key[1], "order": key[2]}
        met = True
        for m, floor in METRICS.items():
            best = min(base, key=lambda r: float(r[m]))
            ratio = ours[m] / best[m] if best[m] else float("inf") if ours[m] else 1.0
            line[m] = {"ratio": round(ratio, 3), "against": best["policy"]}
            if floor is not None and ratio > floor:
                met = False
        line["residency_violations"] = ours["residency_violations"]
        line["jain_slowdown"] = ours["jain_slowdown"]
        line["tenants_p95_wait_over_10x_median"] = ours["tenants_p95_wait_over_10x_median"]
        met = met and ours["residency_violations"] == 0 and ours["jain_slowdown"] >= 0.9
        if abs(key[1] - 0.7) < 1e-9:
            met = met and ours["tenants_p95_wait_over_10x_median"] == 0
        line["all_floors_met"] = met
        out.append(line)
    return out


def markdown(result: dict[str, Any]) -> str:
    lines = [
        "| workload | load | order | policy | WAN TB | mean JCT s | p95 JCT s | p95 wait s | worst tenant p95 wait s "
        "| tenants p95 > 10x median | Jain | gpu util | cpu util | unplaced | violations |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in result["rows"]:
        lines.append(
            f"| {r['workload']} | {int(r['load'] * 100)} % | {r['order']} | {r['policy']} | "
            f"{r['wan_bytes'] / 1e12:.1f} | {r['mean_jct_s']:,.0f} | {r['p95_jct_s']:,.0f} | {r['p95_wait_s']:,.0f} | "
            f"{r['tenant_p95_wait_max_s']:,.0f} | {r['tenants_p95_wait_over_10x_median']}/{r['tenants']} | "
            f"{r['jain_slowdown']:.2f} | {r['gpu_utilization']:.2f} | {r['utilization']:.2f} | {r['unplaced']} | "
            f"{r['residency_violations']} |"
        )
    lines += [
        "",
        "| workload | load | order | WAN ours/best | mean JCT ours/best | p95 JCT ours/best | Jain (ours) | all floors |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for f in result["floors"]:
        lines.append(
            f"| {f['workload']} | {int(f['load'] * 100)} % | {f['order']} | "
            f"{f['wan_bytes']['ratio']} ({f['wan_bytes']['against']}) | "
            f"{f['mean_jct_s']['ratio']} ({f['mean_jct_s']['against']}) | "
            f"{f['p95_jct_s']['ratio']} ({f['p95_jct_s']['against']}) | {f['jain_slowdown']} | "
            f"{'met' if f['all_floors_met'] else 'NOT met'} |"
        )
    best_wan: dict[tuple[str, float], float] = {}
    for r in result["rows"]:
        if r["policy"] != OURS:
            key = (r["workload"], r["load"])
            best_wan[key] = min(best_wan.get(key, float("inf")), float(r["wan_bytes"]))
    setups = [s for s in result.get("setups", []) if "wan_lower_bound_bytes" in s]
    if setups:
        lines += [
            "",
            "| workload | load | jobs | infeasible | WAN lower bound TB | lower bound / best baseline's WAN "
            "| busiest pool: load of the jobs confined to it |",
            "|---|---|---|---|---|---|---|",
        ]
        workloads = {r["load"]: r["workload"] for r in result["rows"]}
        for s in setups:
            w = s.get("workload", workloads.get(s["target_load"], ""))
            best = best_wan.get((w, s["target_load"]))
            ratio = f"{s['wan_lower_bound_bytes'] / best:.3f}" if best else "-"
            pool = s.get("busiest_pool")
            busiest = (
                f"{pool['load']:.2f} of its {pool['resource']} ({', '.join(pool['clusters'])}; {pool['jobs']} jobs)"
                if pool
                else "-"
            )
            lines.append(
                f"| {w} | {int(s['target_load'] * 100)} % | {s['jobs']} | {s['infeasible']} | "
                f"{s['wan_lower_bound_bytes'] / 1e12:.1f} | {ratio} | {busiest} |"
            )
    return "\n".join(lines) + "\n"
