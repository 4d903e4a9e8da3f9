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

from controller.audit_cli import audit_app
from controller.data import DATA_DIR
from controller.errors import InvalidPolicy


class _Yiwang(typer.Typer):
    """Called bare (the ``yiwang`` console script), runs ``main``: errors as one line on stderr."""

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if args or kwargs:
            return super().__call__(*args, **kwargs)
        raise SystemExit(main())


app = _Yiwang(
    pretty_exceptions_enable=False,
    help="Yiwang: the compute-federation controller of the 1+32+N government big-data system.\n\n"
    "Errors are one line on stderr (exit 1; 2 for a usage mistake); --debug shows the traceback. "
    "Shell completion: yiwang --install-completion.",
    no_args_is_help=True,
    rich_markup_mode=None,
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
app.add_typer(audit_app, name="audit")
console = Console(width=None if sys.stdout.isatty() else 160)

DEFAULT_URL = "http://127.0.0.1:8080"
URL_HELP = "controller base URL (env YIWANG_URL)"
UrlOpt = Annotated[str, typer.Option("--url", envvar="YIWANG_URL", help=URL_HELP)]
TokenOpt = Annotated[str | None, typer.Option("--token", envvar="YIWANG_TOKEN", help="bearer token")]
OUTPUTS = ("json", "yaml", "wide", "name")
OutputOpt = Annotated[
    str | None, typer.Option("--output", "-o", help="json | yaml | wide | name (default: a short summary)")
]


class CliError(Exception):
    """An ordinary mistake, reported as one line on stderr (exit 1)."""


@app.callback()
def _root(
    debug: Annotated[
        bool, typer.Option("--debug", help="on an error, print the full traceback (also YIWANG_DEBUG=1)")
    ] = False,
) -> None:
    """(--debug is accepted anywhere on the command line.)"""


def _client(url: str, token: str | None) -> Any:
    from controller.client import Client

    return Client(url, token)


def _check_output(output: str | None) -> None:
    if output is not None and output not in OUTPUTS:
        raise typer.BadParameter(f"{output!r} is not one of json, yaml, wide", param_hint="'--output' / '-o'")


def _dump(obj: Any, output: str) -> None:
    if output == "yaml":
        sys.stdout.write(yaml.safe_dump(obj, sort_keys=False, allow_unicode=True))
    else:
        sys.stdout.write(json.dumps(obj, indent=2, ensure_ascii=False) + "\n")


def _job_id(ref: str) -> str:
    """A job id, also accepted as job/ID (what submit and -o name print)."""
    return ref.removeprefix("job/")


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def _read_doc(path: str) -> Any:
    """A YAML or JSON document from a file ('-': stdin); a mistake is a CliError naming the file."""
    try:
        text = sys.stdin.read() if path == "-" else Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise CliError(f"cannot read {path}: {exc.strerror or exc}") from exc
    except UnicodeDecodeError as exc:
        raise CliError(f"cannot read {path}: not UTF-8 text") from exc
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise CliError(f"{path} is not valid YAML or JSON: {_one_line(problem)}{where}") from exc
    if not isinstance(doc, dict):
        raise CliError(f"{path} must hold one mapping (a job), not {type(doc).__name__}")
    return doc


def _describe(exc: BaseException) -> str:
    """One line for an error, naming what the user can act on."""
    import httpx
    import pydantic

    from controller.client import ApiError
    from controller.errors import YiwangError

    if isinstance(exc, CliError):
        return str(exc)
    if isinstance(exc, ApiError):
        p = exc.problem
        text = f"{p.get('title') or 'error'} ({exc.status}): {p.get('detail') or ''}".rstrip(": ")
        fields = "; ".join(f"{e.get('path')}: {e.get('message')}" for e in p.get("errors", []))
        return _one_line(text + (f" [{fields}]" if fields else ""))
    if isinstance(exc, httpx.TransportError):
        try:
            u = exc.request.url
            where = f"{u.scheme}://{u.netloc.decode()}"
        except RuntimeError:
            where = "the controller"
        reason = _one_line(str(exc)) or type(exc).__name__
        return (
            f"cannot reach the controller at {where} ({reason}); is it running (yiwang up)? "
            "Set --url or YIWANG_URL to point at it"
        )
    if isinstance(exc, pydantic.ValidationError):
        msgs = [str(e.get("msg", "")).removeprefix("Value error, ") for e in exc.errors()]
        return "invalid settings: " + _one_line("; ".join(msgs))
    if isinstance(exc, YiwangError):
        return _one_line(str(exc))
    if isinstance(exc, ModuleNotFoundError):
        return (
            f"the Python package {exc.name!r} is not installed: install the extra that provides it "
            "(pip install -e '.[kubernetes]' for the Kubernetes executor, '.[dev]' for the tests)"
        )
    if isinstance(exc, OSError):
        name = f" {exc.filename}" if exc.filename else ""
        return f"{exc.strerror or exc}:{name}".rstrip(":")
    return f"{type(exc).__name__}: {_one_line(str(exc))} (run with --debug for the traceback)"


def _err(text: str) -> None:
    sys.stderr.write(f"error: {text}\n")
    sys.stderr.flush()


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
            raise typer.BadParameter(f"must be 'all' or 'api', not {role!r}", param_hint="'--role'")
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
def up(
    port: Annotated[int, typer.Option(help="the controller's port on 127.0.0.1")] = 8080,
    workdir: Annotated[Path, typer.Option(help="state: SQLite, data, job work dirs (wiped)")] = Path(
        ".yiwang/up"
    ),
) -> None:
    """Run the embedded federation in the foreground: the controller, one agent per member cluster
    (local executor) and the sample data sets, until Ctrl-C. Every README quick-start step works
    against it."""
    from controller.demo.up import PortInUse
    from controller.demo.up import up as run_up

    try:
        code = run_up(workdir, port, console)
    except PortInUse as exc:
        raise CliError(str(exc)) from exc
    raise typer.Exit(code)


@app.command()
def agent(
    cluster: Annotated[str, typer.Option(help="this member cluster's name")],
    url: UrlOpt = DEFAULT_URL,
    controller_url: Annotated[
        str | None, typer.Option("--controller-url", envvar="YIWANG_CONTROLLER_URL", hidden=True)
    ] = None,
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
    max_parallel: Annotated[
        int | None,
        typer.Option(
            min=1,
            envvar="YIWANG_AGENT_MAX_PARALLEL",
            help="attempts run at once; the rest wait, Scheduled, at the controller (default: no limit)",
        ),
    ] = None,
) -> None:
    """Run a member cluster's agent (pull mode). The token comes from YIWANG_AGENT_TOKEN."""
    import logging

    from controller.agent_runtime import AgentConfigError, ExecutorOptions, build_executor, run_agent

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)  # not one INFO line per poll
    if controller_url is not None:  # the old names, kept as a deprecated alias of --url/YIWANG_URL
        sys.stderr.write(
            "warning: --controller-url/YIWANG_CONTROLLER_URL are deprecated; use --url/YIWANG_URL\n"
        )
        if url == DEFAULT_URL:
            url = controller_url
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
        raise typer.BadParameter(str(exc)) from exc
    log = logging.getLogger("controller.agent")
    log.info("%s: agent for controller %s (executor %s)", cluster, url, executor)
    asyncio.run(
        run_agent(
            cluster=cluster,
            controller_url=url,
            executor=ex,
            token=os.environ.get("YIWANG_AGENT_TOKEN"),
            poll_interval_s=poll_interval,
            metrics_port=metrics_port,
            metrics_addr=metrics_addr,
            max_parallel=max_parallel,
        )
    )


def _print_policy_errors(exc: InvalidPolicy) -> None:
    """Plain text on stderr: policy and YAML messages may hold brackets rich would eat as markup."""
    _err(_one_line(exc.detail))
    for e in exc.errors:
        sys.stderr.write(f"  {e.get('source', '')}: {e.get('path')}: {_one_line(str(e.get('message')))}\n")


@policy_app.command("check")
def policy_check(directory: Annotated[Path, typer.Argument()] = Path("policies")) -> None:
    """Validate every policy file; list every error with its file and path."""
    from controller.services.policy_files import load_policy_set

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
    data_dir: Path = DATA_DIR,
    out: Path = Path("policies"),
    ministries: int = 8,
) -> None:
    """Regenerate topology.yaml and failover.yaml from the reference data."""
    from controller.topology.generate import write

    for path in write(data_dir, out, ministries):
        console.print(f"wrote {path}")


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
    body = {"role": role, "tenant": tenant, "cluster": cluster, "description": description}
    with _client(url, token) as c:
        issued = c.create_token({k: v for k, v in body.items() if v})
    console.print_json(json.dumps(issued))


@token_app.command("list")
def token_list(url: UrlOpt = DEFAULT_URL, token: TokenOpt = None) -> None:
    with _client(url, token) as c:
        items = c.tokens()
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
    with _client(url, token) as c:
        c.revoke_token(token_id)
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


@app.command("db-upgrade")
def db_upgrade(database_url: Annotated[str, typer.Option(envvar="YIWANG_DATABASE_URL")]) -> None:
    """Apply the Alembic migrations to a database."""
    import sqlalchemy.exc
    from sqlalchemy.engine import make_url

    from controller.store.migrate import upgrade
    from controller.store.store import make_engine

    try:
        shown = make_url(database_url).render_as_string(hide_password=True)
    except sqlalchemy.exc.ArgumentError as exc:
        raise CliError(f"--database-url is not a database URL: {_one_line(str(exc))}") from exc
    try:
        upgrade(make_engine(database_url))
    except (sqlalchemy.exc.SQLAlchemyError, OSError) as exc:
        cause = getattr(exc, "orig", None) or exc
        first = str(cause).strip().splitlines()[0] if str(cause).strip() else type(cause).__name__
        raise CliError(f"cannot upgrade the database at {shown}: {first}") from exc
    console.print(f"database at {shown} is up to date", markup=False, highlight=False)
    console.print("database at head")


def main(argv: list[str] | None = None) -> int:
    """The entry point (``yiwang``): run the command; ordinary mistakes become one line on stderr
    (exit 1; 2 for a usage mistake), with the traceback only under --debug or YIWANG_DEBUG=1."""
    import importlib
    import traceback

    try:  # typer >= 0.20 vendors click as typer._click; older versions use click itself
        cx: Any = importlib.import_module("typer._click.exceptions")
    except ImportError:
        cx = importlib.import_module("click.exceptions")

    args = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in args or os.environ.get("YIWANG_DEBUG", "") not in ("", "0")
    args = [a for a in args if a != "--debug"]
    try:
        result = app(args=args, prog_name="yiwang", standalone_mode=False)
    except cx.NoArgsIsHelpError as exc:
        sys.stderr.write(exc.ctx.get_help() + "\n" if exc.ctx else str(exc))
        return 2
    except cx.UsageError as exc:
        if debug:
            traceback.print_exc()
        hint = f" (see '{exc.ctx.command_path} --help')" if exc.ctx else ""
        _err(_one_line(exc.format_message()) + hint)
        return 2
    except typer.Exit as exc:
        return exc.exit_code
    except typer.Abort:
        sys.stderr.write("aborted\n")
        return 130
    except KeyboardInterrupt:
        return 130
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else 1
    except Exception as exc:
        if debug:
            traceback.print_exc()
        _err(_describe(exc))
        return 1
    return result if isinstance(result, int) else 0


def run() -> None:
    """Console-script entry point."""
    raise SystemExit(main())


if __name__ == "__main__":
    run()
