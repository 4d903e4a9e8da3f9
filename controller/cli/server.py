"""`yiwang serve | up | demo | agent | db-upgrade`: run the controller, the embedded federation,
the demo, a member cluster's agent; migrate a database."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from controller.cli.base import (
    DEFAULT_URL,
    CliError,
    UrlOpt,
    _one_line,
    _print_policy_errors,
    app,
    console,
)
from controller.errors import InvalidPolicy


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


@app.command("db-prune")
def db_prune(
    database_url: Annotated[str, typer.Option(envvar="YIWANG_DATABASE_URL")],
    older_than_days: Annotated[
        float, typer.Option(min=0, help="delete jobs finished (last changed) more than this many days ago")
    ],
) -> None:
    """Delete finished jobs older than the given age, with their events and decisions, and the
    decision parts nothing names (what the leader does every YIWANG_RETENTION_CHECK_S when
    YIWANG_RETENTION_DAYS is set; the audit log is kept). Prints the numbers as JSON."""
    import json
    from datetime import timedelta

    import sqlalchemy.exc

    from controller.errors import StoreUnavailable
    from controller.services.retention import Retention
    from controller.settings import Settings
    from controller.store.store import Store, now

    try:
        store = Store(database_url, migrate=False)
        pruner = Retention(store, Settings(database_url=database_url))
        total: dict[str, int] = {"jobs": 0, "events": 0, "decisions": 0, "parts": 0}
        while True:
            out = pruner.prune(now() - timedelta(days=older_than_days))
            for k in total:
                total[k] += int(out[k])
            if not out["backlog"]:
                break
    except (sqlalchemy.exc.SQLAlchemyError, OSError, StoreUnavailable) as exc:
        cause = getattr(exc, "orig", None) or exc
        raise CliError(f"cannot prune the database: {_one_line(str(cause))}") from exc
    console.print(json.dumps(total), markup=False, highlight=False)
