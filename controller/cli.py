"""The `yiwang` command line."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
import yaml
from rich.console import Console
from rich.table import Table

from controller.errors import InvalidPolicy

app = typer.Typer(
    pretty_exceptions_enable=False,
    help="Yiwang: the compute-federation controller of the 1+32+N government big-data system.",
    no_args_is_help=True,
)
policy_app = typer.Typer(help="Validate and generate policies.", no_args_is_help=True)
jobs_app = typer.Typer(help="Submit and inspect jobs.", no_args_is_help=True)
clusters_app = typer.Typer(help="Inspect and operate member clusters.", no_args_is_help=True)
app.add_typer(policy_app, name="policy")
app.add_typer(jobs_app, name="jobs")
app.add_typer(clusters_app, name="clusters")
drill_app = typer.Typer(help="Failover drills: inject faults, measure budgets.", no_args_is_help=True)
app.add_typer(drill_app, name="drill")
token_app = typer.Typer(help="Issue, list and revoke API tokens (admin).", no_args_is_help=True)
app.add_typer(token_app, name="token")
console = Console(width=None if sys.stdout.isatty() else 160)

UrlOpt = Annotated[str, typer.Option("--url", envvar="YIWANG_URL", help="controller base URL")]
TokenOpt = Annotated[str | None, typer.Option("--token", envvar="YIWANG_TOKEN", help="bearer token")]
DEFAULT_URL = "http://127.0.0.1:8080"


def _client(url: str, token: str | None) -> Any:
    from controller.client import Client

    return Client(url, token)


def _fail(exc: Exception) -> None:
    console.print(f"[red]error:[/] {exc}")
    raise typer.Exit(2)


def _read_doc(path: str) -> Any:
    text = sys.stdin.read() if path == "-" else Path(path).read_text(encoding="utf-8")
    return yaml.safe_load(text)


@app.command()
def serve(
    host: str = "127.0.0.1",
    port: int = 8080,
    database_url: Annotated[str | None, typer.Option(envvar="YIWANG_DATABASE_URL")] = None,
    policies: Annotated[Path | None, typer.Option(help="policies directory")] = None,
    role: Annotated[
        str | None,
        typer.Option(
            envvar="YIWANG_ROLE",
            help="all: API and scheduling (one leader at a time); api: an API replica that never schedules",
        ),
    ] = None,
) -> None:
    """Run the controller (REST API + scheduling loop; with --role api, the REST API only)."""
    import uvicorn

    from controller.api.app import create_app
    from controller.settings import Settings

    overrides: dict[str, Any] = {}
    if database_url:
        overrides["database_url"] = database_url
    if policies:
        overrides["policies_dir"] = policies
    if role:
        if role not in ("all", "api"):
            console.print(f"[red]--role must be 'all' or 'api', not {role!r}[/red]")
            raise typer.Exit(2)
        overrides["role"] = role
    try:
        settings = Settings(**overrides)
        application = create_app(settings)
    except InvalidPolicy as exc:
        _print_policy_errors(exc)
        raise typer.Exit(2) from exc
    uvicorn.run(application, host=host, port=port, log_level="info")


@app.command()
def demo(workdir: Path = Path(".demo"), timeout: float = 90.0) -> None:
    """Run the whole loop on one machine: controller, 1+32+N agents, a mixed batch of real jobs."""
    from controller.demo.run import run

    raise typer.Exit(run(workdir, timeout, console))


@app.command()
def agent(
    cluster: Annotated[str, typer.Option(help="this member cluster's name")],
    controller_url: Annotated[str, typer.Option(envvar="YIWANG_CONTROLLER_URL")] = DEFAULT_URL,
    executor: Annotated[str, typer.Option(help="local | kubernetes | simulated")] = "local",
    workdir: Annotated[Path, typer.Option(help="local: where attempts run")] = Path(".yiwang-agent"),
    cpu: Annotated[
        float | None, typer.Option(envvar="YIWANG_AGENT_CPU", help="capacity offered: cores")
    ] = None,
    memory_gib: Annotated[
        float | None, typer.Option(envvar="YIWANG_AGENT_MEMORY_GIB", help="capacity offered: memory GiB")
    ] = None,
    gpu: Annotated[int, typer.Option(envvar="YIWANG_AGENT_GPU", help="capacity offered: GPUs")] = 0,
    nodes: Annotated[int, typer.Option(help="simulated: virtual nodes (capacity split evenly)")] = 4,
    kubeconfig: Annotated[
        str | None, typer.Option(help="kubernetes: kubeconfig (default: in-cluster)")
    ] = None,
    context: Annotated[str | None, typer.Option(help="kubernetes: kubeconfig context")] = None,
    namespace_prefix: Annotated[str, typer.Option(help="kubernetes: tenant namespace prefix")] = "tenant-",
    fake_kube: Annotated[bool, typer.Option(help="kubernetes: in-memory API (no cluster; demos)")] = False,
    metrics_port: Annotated[int, typer.Option(help="serve /metrics on this port (0: off)")] = 0,
    metrics_addr: Annotated[str, typer.Option(help="address /metrics listens on")] = "0.0.0.0",
    poll_interval: float = 1.0,
) -> None:
    """Run a member cluster's agent (pull mode). The token comes from YIWANG_AGENT_TOKEN."""
    import logging

    from controller.agent_runtime import AgentConfigError, ExecutorOptions, build_executor, run_agent

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    opts = ExecutorOptions(
        kind=executor,
        workdir=workdir,
        cpu=cpu,
        memory_gib=memory_gib,
        gpu=gpu,
        nodes=nodes,
        kubeconfig=kubeconfig,
        context=context,
        namespace_prefix=namespace_prefix,
        fake_kube=fake_kube,
    )
    try:
        ex = build_executor(opts)
    except (AgentConfigError, ValueError) as exc:
        _fail(exc)
        return
    asyncio.run(
        run_agent(
            cluster=cluster,
            controller_url=controller_url,
            executor=ex,
            token=os.environ.get("YIWANG_AGENT_TOKEN"),
            poll_interval_s=poll_interval,
            metrics_port=metrics_port,
            metrics_addr=metrics_addr,
        )
    )


def _print_policy_errors(exc: InvalidPolicy) -> None:
    console.print(f"[red]{exc.detail}[/]")
    for e in exc.errors:
        console.print(f"  {e.get('source', '')}: {e.get('path')}: {e.get('message')}")


@policy_app.command("check")
def policy_check(directory: Annotated[Path, typer.Argument()] = Path("policies")) -> None:
    """Validate every policy file; list every error with its file and path."""
    from controller.policies import load_policy_set

    try:
        ps = load_policy_set(directory)
    except InvalidPolicy as exc:
        _print_policy_errors(exc)
        raise typer.Exit(1) from exc
    tiers: dict[str, int] = {}
    for c in ps.topology.clusters:
        tiers[c.tier.value] = tiers.get(c.tier.value, 0) + 1
    console.print(
        f"[green]ok[/]: {len(ps.topology.clusters)} clusters ({tiers}), {len(ps.topology.links)} links, "
        f"policies {', '.join(k for k in ('residency', 'placement', 'failover'))} valid"
    )


@policy_app.command("generate")
def policy_generate(
    data_dir: Path = Path("../shared/data"),
    out: Path = Path("policies"),
    ministries: int = 8,
) -> None:
    """Regenerate topology.yaml and failover.yaml from the reference data."""
    from controller.topology.generate import write

    for path in write(data_dir, out, ministries):
        console.print(f"wrote {path}")


@jobs_app.command("submit")
def jobs_submit(
    file: str,
    url: UrlOpt = DEFAULT_URL,
    token: TokenOpt = None,
    idempotency_key: Annotated[str | None, typer.Option("--key")] = None,
) -> None:
    """Submit a job from a YAML/JSON file ('-' for stdin)."""
    from controller.client import ApiError

    with _client(url, token) as c:
        try:
            job = c.submit(_read_doc(file), idempotency_key)
        except ApiError as exc:
            _fail(exc)
    console.print_json(json.dumps(job))


@jobs_app.command("list")
def jobs_list(
    url: UrlOpt = DEFAULT_URL,
    token: TokenOpt = None,
    phase: str | None = None,
    tenant: str | None = None,
    cluster: str | None = None,
    limit: int = 50,
) -> None:
    with _client(url, token) as c:
        page = c.jobs(phase=phase, tenant=tenant, cluster=cluster, limit=limit)
    table = Table("id", "name", "tenant", "phase", "cluster", "attempt", "message")
    for j in page["items"]:
        table.add_row(
            j["id"],
            j["spec"]["name"],
            j["spec"]["tenant"],
            j["phase"],
            j["cluster"] or "-",
            str(j["attempt"]),
            j["message"][:80],
        )
    console.print(table)
    if page["next_cursor"]:
        console.print(f"more: --cursor {page['next_cursor']}")


@jobs_app.command("get")
def jobs_get(job_id: str, url: UrlOpt = DEFAULT_URL, token: TokenOpt = None) -> None:
    from controller.client import ApiError

    with _client(url, token) as c:
        try:
            console.print_json(json.dumps(c.job(job_id)))
        except ApiError as exc:
            _fail(exc)


@jobs_app.command("cancel")
def jobs_cancel(job_id: str, url: UrlOpt = DEFAULT_URL, token: TokenOpt = None) -> None:
    from controller.client import ApiError

    with _client(url, token) as c:
        try:
            console.print(f"{job_id}: {c.cancel(job_id)['phase']}")
        except ApiError as exc:
            _fail(exc)


def _print_decision(d: dict[str, Any]) -> None:
    console.print(f"[bold]{d['summary']}[/]")
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
    from controller.client import ApiError

    with _client(url, token) as c:
        try:
            _print_decision(c.decision(job_id))
        except ApiError as exc:
            _fail(exc)


@app.command()
def plan(file: str, url: UrlOpt = DEFAULT_URL, token: TokenOpt = None) -> None:
    """Where would this job go, and why? Nothing is created."""
    from controller.client import ApiError

    with _client(url, token) as c:
        try:
            _print_decision(c.plan(_read_doc(file)))
        except ApiError as exc:
            _fail(exc)


@clusters_app.command("list")
def clusters_list(url: UrlOpt = DEFAULT_URL, token: TokenOpt = None) -> None:
    with _client(url, token) as c:
        items = c.clusters()
    table = Table("name", "tier", "adcode", "health", "cordoned", "cpu alloc/cap", "gpu alloc/cap")
    for cl in items:
        table.add_row(
            cl["name"],
            cl["tier"],
            cl["adcode"] or "-",
            cl["health"],
            "yes" if cl["cordoned"] else "",
            f"{cl['allocated']['cpu']:.0f}/{cl['capacity']['cpu']:.0f}",
            f"{cl['allocated']['gpu']:.0f}/{cl['capacity']['gpu']:.0f}",
        )
    console.print(table)


@clusters_app.command("cordon")
def clusters_cordon(name: str, url: UrlOpt = DEFAULT_URL, token: TokenOpt = None) -> None:
    with _client(url, token) as c:
        console.print(f"{name}: cordoned={c.cluster_action(name, 'cordon')['cordoned']}")


@clusters_app.command("uncordon")
def clusters_uncordon(name: str, url: UrlOpt = DEFAULT_URL, token: TokenOpt = None) -> None:
    with _client(url, token) as c:
        console.print(f"{name}: cordoned={c.cluster_action(name, 'uncordon')['cordoned']}")


@clusters_app.command("drain")
def clusters_drain(name: str, url: UrlOpt = DEFAULT_URL, token: TokenOpt = None) -> None:
    with _client(url, token) as c:
        console.print(f"{name}: drained, {c.cluster_action(name, 'drain')['requeued_jobs']} job(s) re-queued")


@token_app.command("create")
def token_create(
    role: Annotated[str, typer.Option(help="admin | operator | tenant | agent")],
    tenant: Annotated[str | None, typer.Option(help="the tenant of a tenant token")] = None,
    cluster: Annotated[str | None, typer.Option(help="the cluster of an agent token")] = None,
    description: str = "",
    url: UrlOpt = DEFAULT_URL,
    token: TokenOpt = None,
) -> None:
    """Issue a token; its secret is printed once (the controller keeps only a hash)."""
    from controller.client import ApiError

    body = {"role": role, "tenant": tenant, "cluster": cluster, "description": description}
    with _client(url, token) as c:
        try:
            issued = c.create_token({k: v for k, v in body.items() if v})
        except ApiError as exc:
            _fail(exc)
    console.print_json(json.dumps(issued))


@token_app.command("list")
def token_list(url: UrlOpt = DEFAULT_URL, token: TokenOpt = None) -> None:
    from controller.client import ApiError

    with _client(url, token) as c:
        try:
            items = c.tokens()
        except ApiError as exc:
            _fail(exc)
    table = Table("id", "role", "tenant", "cluster", "created", "revoked", "description")
    for tk in items:
        table.add_row(
            tk["id"],
            tk["role"],
            tk["tenant"] or "-",
            tk["cluster"] or "-",
            tk["created_at"][:19],
            (tk["revoked_at"] or "")[:19],
            tk["description"],
        )
    console.print(table)


@token_app.command("revoke")
def token_revoke(token_id: str, url: UrlOpt = DEFAULT_URL, token: TokenOpt = None) -> None:
    from controller.client import ApiError

    with _client(url, token) as c:
        try:
            c.revoke_token(token_id)
        except ApiError as exc:
            _fail(exc)
    console.print(f"{token_id}: revoked")


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


@drill_app.command("list")
def drill_list(directory: Annotated[Path, typer.Argument()] = DRILLS_DIR) -> None:
    """List the scenarios of a directory: faults and budgets; invalid ones with their errors."""
    from controller.drills.procscenario import ProcScenario
    from controller.drills.runner import load_all

    ok, bad = load_all(sorted(directory.glob("*.yaml")))
    table = Table("file", "name", "clusters", "faults", "budgets")
    for path, scn in ok:
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


@app.command("db-upgrade")
def db_upgrade(database_url: Annotated[str, typer.Option(envvar="YIWANG_DATABASE_URL")]) -> None:
    """Apply the Alembic migrations to a database."""
    from controller.store.migrate import upgrade
    from controller.store.store import make_engine

    upgrade(make_engine(database_url))
    console.print("database at head")
