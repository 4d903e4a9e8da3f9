"""`yiwang policy check | generate`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from controller.cli.base import (
    _print_policy_errors,
    console,
    policy_app,
)
from controller.data import DATA_DIR
from controller.errors import InvalidPolicy


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
