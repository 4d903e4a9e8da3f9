"""`yiwang drill run | list | restore`: failover drills, and the national store's restore drill."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from controller.cli.base import (
    console,
    drill_app,
)

DRILLS_DIR = Path("policies/drills")


@drill_app.command("run")
def drill_run(
    files: Annotated[list[Path], typer.Argument(help="scenario files (policies/drills/*.yaml)")],
    out: Annotated[Path, typer.Option(help="where the JSON reports and junit.xml go")] = Path(
        "reports/drills"
    ),
    runs: Annotated[
        int, typer.Option(min=1, max=50, help="run each scenario N times; medians in <name>.medians.json")
    ] = 1,
    keep_logs: Annotated[
        bool, typer.Option(help="process drills: keep the processes' logs and markers in <out>/<name>.logs/")
    ] = False,
) -> None:
    """Run drills; write <out>/<name>.json and <out>/junit.xml. Exit 1 if a budget breaks, 2 if a
    scenario is invalid. Process drills run the code of YIWANG_DRILL_CODE (default: this checkout)."""
    from controller.drills.runner import run_files

    code, reports = run_files(files, out, console.print, runs=runs, keep_logs=keep_logs)
    if reports:
        console.print(f"reports in {out}/ (JSON per drill, junit.xml)")
    raise typer.Exit(code)


@drill_app.command("restore")
def drill_restore(
    out: Annotated[Path, typer.Option(help="where national-restore.json goes")] = Path("reports/drills"),
    jobs_after: Annotated[
        int, typer.Option(min=1, help="jobs committed after the base backup (the WAL to replay)")
    ] = 300,
    budget_restore_s: Annotated[float, typer.Option(help="the restore's time budget, seconds")] = 60.0,
) -> None:
    """The national store restored from its backups after both sites are lost (real etcd,
    Patroni and PostgreSQL; a stand-in for WAL-G): every archived job back on both sites, within
    the budget. Root, from a checkout (make tools installs etcd and Patroni). Exit 1 if a budget
    breaks or the drill fails."""
    from controller.drills.national import unavailable
    from controller.drills.restore import run_restore_drill, scripts_missing

    why = unavailable() or scripts_missing()
    if why:
        console.print(f"[red]cannot run here: {why}[/]")
        raise typer.Exit(2)
    report = run_restore_drill(
        after=jobs_after, budget_restore_s=budget_restore_s, say=console.print, out=out
    )
    if report["error"]:
        console.print(f"[red]the drill failed: {report['error']}[/]")
    for r in report["results"]:
        console.print(f"  {'ok ' if r['passed'] else 'BAD'} {r['name']}: {r['value']}")
    m = report.get("measurements") or {}
    if m:
        console.print(
            f"  unarchived jobs lost with both sites: {m['unarchived_lost']} of {m['unarchived_jobs']} "
            f"(the recovery point of losing both sites); archive {report.get('archive_mib')} MiB"
        )
    console.print(f"report in {out}/national-restore.json")
    raise typer.Exit(0 if report["passed"] else 1)


@drill_app.command("list")
def drill_list(directory: Annotated[Path, typer.Argument()] = DRILLS_DIR) -> None:
    """List the scenarios of a directory: faults and budgets; invalid ones with their errors."""
    from controller.drills.nationalscenario import NationalScenario
    from controller.drills.procscenario import ProcScenario
    from controller.drills.runner import load_all

    ok, bad = load_all(sorted(directory.glob("*.yaml")))
    table = Table("file", "name", "clusters", "faults", "budgets")
    for path, scn in ok:
        if isinstance(scn, NationalScenario):
            faults = ", ".join(f"{f.at_s:g}s {f.fault} {f.site}" for f in scn.timeline)
            budgets = ", ".join(f"{k} {v:g}" for k, v in scn.budgets.model_dump().items() if v is not None)
            table.add_row(
                path.name, scn.name, f"3 sites, {len(scn.federation.agents)} agents", faults, budgets
            )
            continue
        if isinstance(scn, ProcScenario):
            faults = ", ".join(
                f"{f.at_s:g}s {f.fault} {getattr(f, 'cluster', '') or ''}".strip() for f in scn.timeline
            )
            budgets = ", ".join(f"{k} {v:g}" for k, v in scn.budgets.model_dump().items() if v is not None)
            agents = f"{len(scn.federation.agents)} processes"
            table.add_row(path.name, scn.name, agents, faults or "-", budgets)
            continue
        members = scn.federation.clusters
        b = scn.budgets
        budgets = ", ".join(
            f"{k} {v:g}" for k, v in b.model_dump().items() if v is not None and not isinstance(v, bool)
        )
        faults = ", ".join(
            f"{f.at_s:g}s {f.fault} {getattr(f, 'cluster', '') or ''}".strip() for f in scn.timeline
        )
        table.add_row(path.name, scn.name, "all" if members == "all" else str(len(members)), faults, budgets)
    console.print(table)
    for path, exc in bad:
        console.print(f"[red]{path}: invalid[/]")
        for e in exc.errors:
            console.print(f"  {e['path']}: {e['message']}")
    if bad:
        raise typer.Exit(2)
