"""`yiwang clusters list | cordon | uncordon | drain`."""

from __future__ import annotations

from rich.table import Table

from controller.cli.base import (
    DEFAULT_URL,
    OutputOpt,
    TokenOpt,
    UrlOpt,
    _check_output,
    _client,
    _dump,
    clusters_app,
    console,
)


@clusters_app.command("list")
def clusters_list(url: UrlOpt = DEFAULT_URL, token: TokenOpt = None, output: OutputOpt = None) -> None:
    """Member clusters: health, cordon/drain, and allocation against the capacity the scheduler
    uses (the agent's heartbeat, or Prometheus, or the topology's declared capacity before either)."""
    _check_output(output)
    with _client(url, token) as c:
        items = c.clusters()
    if output in ("json", "yaml"):
        _dump({"items": items}, output)
        return
    wide = output == "wide"
    cols = ["name", "tier", "health", "schedulable", "cpu alloc/cap", "mem GiB alloc/cap", "gpu alloc/cap"]
    table = Table(*cols, *(("capacity from", "declared cpu", "heartbeat age s") if wide else ()), box=None)
    for cl in items:
        eff = cl.get("effective_capacity") or cl["capacity"]
        state = "draining" if cl.get("draining") else "cordoned" if cl["cordoned"] else "yes"
        row = [
            cl["name"],
            cl["tier"],
            cl["health"],
            state,
            f"{cl['allocated']['cpu']:g}/{eff['cpu']:g}",
            f"{cl['allocated']['memory_gib']:g}/{eff['memory_gib']:g}",
            f"{cl['allocated']['gpu']:g}/{eff['gpu']:g}",
        ]
        if wide:
            age = cl.get("heartbeat_age_s")
            row += [
                str(cl.get("capacity_source", "-")),
                f"{cl['capacity']['cpu']:g}",
                f"{age:.1f}" if age is not None else "-",
            ]
        table.add_row(*row)
    console.print(table)


@clusters_app.command("cordon")
def clusters_cordon(name: str, url: UrlOpt = DEFAULT_URL, token: TokenOpt = None) -> None:
    """No new placements on the cluster; what runs there goes on."""
    with _client(url, token) as c:
        c.cluster_action(name, "cordon")
    console.print(f"cluster/{name} cordoned", markup=False, highlight=False)


@clusters_app.command("uncordon")
def clusters_uncordon(name: str, url: UrlOpt = DEFAULT_URL, token: TokenOpt = None) -> None:
    with _client(url, token) as c:
        c.cluster_action(name, "uncordon")
    console.print(f"cluster/{name} uncordoned", markup=False, highlight=False)


@clusters_app.command("drain")
def clusters_drain(name: str, url: UrlOpt = DEFAULT_URL, token: TokenOpt = None) -> None:
    """Cordon the cluster and send its jobs back to Pending, to be placed elsewhere."""
    with _client(url, token) as c:
        moved = c.cluster_action(name, "drain")["requeued_jobs"]
    console.print(f"cluster/{name} drained, {moved} job(s) re-queued", markup=False, highlight=False)
