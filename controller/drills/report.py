"""A drill's verdict: one result per budget or invariant, written as JSON and as JUnit XML so any
CI shows a broken budget as a failed test ("measured 5.2 s > budget 0.001 s")."""

from __future__ import annotations

import json
import math
import xml.etree.ElementTree as ET
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from controller.drills.gbt20988 import LEVELS
from controller.drills.scenario import Budgets


@dataclass
class BudgetResult:
    name: str
    budget: float | None
    measured: float | None
    unit: str  # "s" or "jobs"
    passed: bool
    message: str
    skipped: bool = False


@dataclass
class DrillReport:
    scenario: str
    source: str
    started_at: str
    duration_s: float = 0.0
    federation: dict[str, Any] = field(default_factory=dict)
    timeline: list[dict[str, Any]] = field(default_factory=list)
    measurements: dict[str, Any] = field(default_factory=dict)
    results: list[BudgetResult] = field(default_factory=list)
    jobs: dict[str, Any] = field(default_factory=dict)
    details: dict[str, Any] = field(default_factory=dict)
    error: str | None = None

    @property
    def passed(self) -> bool:
        return self.error is None and all(r.passed or r.skipped for r in self.results)

    def as_dict(self) -> dict[str, Any]:
        body = asdict(self)
        body["passed"] = self.passed
        return body


def _fmt(value: float | None, unit: str) -> str:
    if value is None:
        return "not measured"
    if unit == "s":
        return f"{value:.3f} s"
    return f"{value:g} {unit}"


def check_max(
    name: str, measured: float | None, budget: float, unit: str, why_missing: str = ""
) -> BudgetResult:
    """Pass when measured <= budget; a budget that could not be measured fails and says why."""
    if measured is None or (isinstance(measured, float) and math.isnan(measured)):
        return BudgetResult(
            name,
            budget,
            None,
            unit,
            False,
            f"not measured ({why_missing or 'no value'}); budget {_fmt(budget, unit)}",
        )
    ok = measured <= budget
    op = "<=" if ok else ">"
    return BudgetResult(
        name, budget, measured, unit, ok, f"measured {_fmt(measured, unit)} {op} budget {_fmt(budget, unit)}"
    )


def evaluate(budgets: Budgets, m: dict[str, Any], invariants: dict[str, int]) -> list[BudgetResult]:
    """One result per budget of the scenario, then one per invariant (each must be 0)."""
    out: list[BudgetResult] = []
    if budgets.detection_s is not None:
        out.append(
            check_max(
                "detection_s", m.get("detection_s"), budgets.detection_s, "s", m.get("detection_note", "")
            )
        )
    if budgets.rto_s is not None:
        out.append(check_max("rto_s", m.get("rto_s"), budgets.rto_s, "s", m.get("rto_note", "")))
    out.append(check_max("jobs_lost", m.get("jobs_lost"), budgets.jobs_lost, "jobs"))
    out.append(check_max("jobs_run_twice", m.get("jobs_run_twice"), budgets.jobs_run_twice, "jobs"))
    if budgets.gbt20988_level is not None:
        level = LEVELS[budgets.gbt20988_level]
        r = check_max("gbt20988_level", m.get("rto_s"), level.rto_ceiling_s, "s", m.get("rto_note", ""))
        r.message = f"GB/T 20988 level {level.level} ({level.name_en}, RTO {level.rto_text}): {r.message}"
        out.append(r)
    for name, count in invariants.items():
        out.append(check_max(name, count, 0, "jobs"))
    return out


def write_json(report: DrillReport, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report.as_dict(), indent=2, default=str) + "\n", encoding="utf-8")


def junit_tree(reports: list[DrillReport]) -> ET.ElementTree:
    root = ET.Element("testsuites", name="yiwang drills")
    for rep in reports:
        failures = sum(1 for r in rep.results if not r.passed and not r.skipped)
        suite = ET.SubElement(
            root,
            "testsuite",
            name=f"drill.{rep.scenario}",
            tests=str(len(rep.results) + (1 if rep.error else 0)),
            failures=str(failures),
            errors="1" if rep.error else "0",
            skipped=str(sum(1 for r in rep.results if r.skipped)),
            time=f"{rep.duration_s:.3f}",
            timestamp=rep.started_at,
        )
        props = ET.SubElement(suite, "properties")
        ET.SubElement(props, "property", name="source", value=rep.source)
        for result in rep.results:
            case = ET.SubElement(suite, "testcase", classname=f"drill.{rep.scenario}", name=result.name)
            if result.skipped:
                ET.SubElement(case, "skipped", message=result.message)
            elif not result.passed:
                failure = ET.SubElement(case, "failure", message=result.message, type="BudgetExceeded")
                failure.text = result.message
            else:
                ET.SubElement(case, "system-out").text = result.message
        if rep.error:
            case = ET.SubElement(suite, "testcase", classname=f"drill.{rep.scenario}", name="run")
            ET.SubElement(case, "error", message=rep.error, type="DrillError").text = rep.error
    ET.indent(root)
    return ET.ElementTree(root)


def write_junit(reports: list[DrillReport], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    junit_tree(reports).write(path, encoding="utf-8", xml_declaration=True)
