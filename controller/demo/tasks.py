"""Small, real analytics commands the demo's jobs run (``python -m controller.demo.tasks ...``).

Inputs come from the executor's environment: ``YIWANG_INPUTS`` maps data-set ids to local paths.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import sys
from collections import defaultdict


def _inputs() -> dict[str, str]:
    raw: dict[str, str] = json.loads(os.environ.get("YIWANG_INPUTS", "{}"))
    return raw


def _rows(ds: str) -> list[dict[str, str]]:
    path = _inputs().get(ds)
    if not path or not os.path.exists(path):
        raise SystemExit(f"input {ds} is not available here (got {path!r})")
    with open(path, newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def aggregate(ds: str, by: str, value: str, op: str) -> None:
    acc: dict[str, list[float]] = defaultdict(list)
    for row in _rows(ds):
        acc[row[by]].append(float(row[value]) if value else 1.0)
    results = {
        k: (sum(v) if op == "sum" else sum(v) / len(v) if op == "mean" else len(v)) for k, v in acc.items()
    }
    top = sorted(results.items(), key=lambda kv: -kv[1])[:3]
    print(f"{op}({value or '*'}) by {by}: " + ", ".join(f"{k}={v:,.1f}" for k, v in top))


def compare(left: str, right: str, value: str) -> None:
    a = sum(float(r[value]) for r in _rows(left))
    b = sum(float(r[value]) for r in _rows(right))
    print(f"{left} total {a:,.0f} vs {right} total {b:,.0f} (ratio {a / b:.2f})")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="controller.demo.tasks")
    sub = p.add_subparsers(dest="cmd", required=True)
    ag = sub.add_parser("aggregate")
    ag.add_argument("dataset")
    ag.add_argument("--by", required=True)
    ag.add_argument("--value", default="")
    ag.add_argument("--op", choices=("sum", "mean", "count"), default="sum")
    cp = sub.add_parser("compare")
    cp.add_argument("left")
    cp.add_argument("right")
    cp.add_argument("--value", required=True)
    sub.add_parser("fail")
    args = p.parse_args(argv)
    if args.cmd == "aggregate":
        aggregate(args.dataset, args.by, args.value, args.op)
    elif args.cmd == "compare":
        compare(args.left, args.right, args.value)
    else:
        print("schema check failed: column 'amount_yuan' has 3 negative values", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
