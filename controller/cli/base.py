"""The `yiwang` command line: the application, its shared options and helpers, and `main`
(errors as one line on stderr). The commands live beside it, one module per group."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
import yaml
from rich.console import Console

from controller.cli.audit import audit_app
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


def _print_policy_errors(exc: InvalidPolicy) -> None:
    """Plain text on stderr: policy and YAML messages may hold brackets rich would eat as markup."""
    _err(_one_line(exc.detail))
    for e in exc.errors:
        sys.stderr.write(f"  {e.get('source', '')}: {e.get('path')}: {_one_line(str(e.get('message')))}\n")


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
