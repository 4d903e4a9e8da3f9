"""`yiwang jobs ...` and `yiwang plan`: submit, inspect, wait for, cancel and explain jobs."""

from __future__ import annotations

import sys
from typing import Annotated, Any

import typer
from rich.table import Table

from controller.cli.base import (
    DEFAULT_URL,
    CliError,
    OutputOpt,
    TokenOpt,
    UrlOpt,
    _check_output,
    _client,
    _dump,
    _job_id,
    _read_doc,
    app,
    console,
    jobs_app,
)

JOB_COLUMNS = ("id", "name", "tenant", "phase", "cluster", "attempt")


def _job_row(j: dict[str, Any], wide: bool) -> list[str]:
    row = [
        j["id"],
        j["spec"]["name"],
        j["spec"]["tenant"],
        j["phase"],
        j["cluster"] or "-",
        str(j["attempt"]),
    ]
    if wide:
        r = j["spec"].get("resources", {})
        row += [f"{j['spec'].get('replicas', 1)}x{r.get('cpu', '-')}", j["message"][:100]]
    return row


def _job_table(items: list[dict[str, Any]], wide: bool) -> Table:
    table = Table(*JOB_COLUMNS, *(("gang", "message") if wide else ()), box=None, pad_edge=False)
    for j in items:
        table.add_row(*_job_row(j, wide), style=None)
    return table


@jobs_app.command("submit")
def jobs_submit(
    file: Annotated[str, typer.Argument(help="job.yaml or job.json ('-' for stdin)")],
    url: UrlOpt = DEFAULT_URL,
    token: TokenOpt = None,
    idempotency_key: Annotated[
        str | None, typer.Option("--key", help="Idempotency-Key: the same key replays the job")
    ] = None,
    output: OutputOpt = None,
) -> None:
    """Submit a job from a YAML/JSON file: prints job/ID created (Pending)."""
    _check_output(output)
    doc = _read_doc(file)
    with _client(url, token) as c:
        job = c.submit(doc, idempotency_key)
        created = c.last_status == 201
    if output in ("json", "yaml"):
        _dump(job, output)
        return
    if output == "name":
        sys.stdout.write(f"job/{job['id']}\n")
        return
    what = "created" if created else "unchanged (Idempotency-Key replayed)"
    console.print(f"job/{job['id']} {what} ({job['phase']})", markup=False, highlight=False)
    if output == "wide":
        console.print(_job_table([job], wide=True))


@jobs_app.command("list")
def jobs_list(
    url: UrlOpt = DEFAULT_URL,
    token: TokenOpt = None,
    phase: str | None = None,
    tenant: str | None = None,
    cluster: str | None = None,
    limit: Annotated[int, typer.Option(help="jobs per page (1-1000)")] = 50,
    cursor: Annotated[str | None, typer.Option(help="continue from a previous page's cursor")] = None,
    all_pages: Annotated[bool, typer.Option("--all", help="follow the cursor to the last page")] = False,
    output: OutputOpt = None,
) -> None:
    """List jobs in submission order, a page at a time (--cursor to continue, --all for every page)."""
    _check_output(output)
    items: list[dict[str, Any]] = []
    with _client(url, token) as c:
        while True:
            page = c.jobs(phase=phase, tenant=tenant, cluster=cluster, limit=limit, cursor=cursor)
            items += page["items"]
            cursor = page["next_cursor"]
            if not (all_pages and cursor):
                break
    if output in ("json", "yaml"):
        _dump({"items": items, "next_cursor": cursor}, output)
        return
    if output == "name":
        sys.stdout.write("".join(f"job/{j['id']}\n" for j in items))
    else:
        console.print(_job_table(items, wide=output == "wide"))
    if cursor:
        console.print(f"more: yiwang jobs list --cursor {cursor} (or --all)", markup=False, highlight=False)


@jobs_app.command("get")
def jobs_get(
    job_id: str, url: UrlOpt = DEFAULT_URL, token: TokenOpt = None, output: OutputOpt = None
) -> None:
    """One job: a summary line, or the whole document with -o json|yaml."""
    _check_output(output)
    with _client(url, token) as c:
        job = c.job(_job_id(job_id))
    if output in ("json", "yaml"):
        _dump(job, output)
        return
    console.print(_job_table([job], wide=True))


@jobs_app.command("logs")
def jobs_logs(job_id: str, url: UrlOpt = DEFAULT_URL, token: TokenOpt = None) -> None:
    """The output its executor reported for the job's latest attempt (local executor: the tail of
    stdout and stderr)."""
    with _client(url, token) as c:
        logs = c.logs(_job_id(job_id))
    if not logs["output"]:
        raise CliError(
            f"job/{_job_id(job_id)} has no output yet (phase {logs['phase']}; output is reported when an attempt ends)"
        )
    sys.stdout.write(logs["output"] if logs["output"].endswith("\n") else logs["output"] + "\n")


@jobs_app.command("wait")
def jobs_wait(
    job_id: str,
    url: UrlOpt = DEFAULT_URL,
    token: TokenOpt = None,
    timeout: Annotated[float, typer.Option(help="seconds to wait at most")] = 60.0,
) -> None:
    """Wait until the job has finished (Succeeded, Failed or Cancelled); exit 1 on timeout or if
    it did not succeed."""
    import time

    deadline = time.monotonic() + timeout
    with _client(url, token) as c:
        while True:
            job = c.job(_job_id(job_id))
            if job["phase"] in ("Succeeded", "Failed", "Cancelled"):
                break
            if time.monotonic() > deadline:
                raise CliError(
                    f"job/{job['id']} is still {job['phase']} after {timeout:g}s: {job['message']}"
                )
            time.sleep(0.25)
    console.print(f"job/{job['id']} {job['phase']}", markup=False, highlight=False)
    if job["phase"] != "Succeeded":
        raise typer.Exit(1)


@jobs_app.command("cancel")
def jobs_cancel(job_id: str, url: UrlOpt = DEFAULT_URL, token: TokenOpt = None) -> None:
    with _client(url, token) as c:
        console.print(
            f"job/{_job_id(job_id)} {c.cancel(_job_id(job_id))['phase']}", markup=False, highlight=False
        )


def _print_decision(d: dict[str, Any]) -> None:
    console.print(d["summary"], markup=False, highlight=False, style="bold")
    table = Table("cluster", "total", *sorted({k for f in d["feasible"] for k in f["scores"]}), "moves GB")
    for f in d["feasible"][:10]:
        table.add_row(
            f["cluster"],
            f"{f['total']:.1f}",
            *[f"{v:.1f}" for _, v in sorted(f["scores"].items())],
            f"{f['transfer_bytes'] / 1e9:.1f}",
        )
    if d["feasible"]:
        console.print(table)


@jobs_app.command("why")
def jobs_why(job_id: str, url: UrlOpt = DEFAULT_URL, token: TokenOpt = None) -> None:
    """Show the latest placement decision of a job: scores and reasons."""
    with _client(url, token) as c:
        _print_decision(c.decision(_job_id(job_id)))


@app.command()
def plan(
    file: Annotated[str, typer.Argument(help="job.yaml or job.json ('-' for stdin)")],
    url: UrlOpt = DEFAULT_URL,
    token: TokenOpt = None,
    output: OutputOpt = None,
) -> None:
    """Where would this job go, and why? Nothing is created. Exit 1 when no cluster fits."""
    _check_output(output)
    doc = _read_doc(file)
    with _client(url, token) as c:
        decision = c.plan(doc)
    if output in ("json", "yaml"):
        _dump(decision, output)
    else:
        _print_decision(decision)
    if decision["cluster"] is None:
        raise typer.Exit(1)
