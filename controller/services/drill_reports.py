"""The drill reports in a folder (``yiwang drill run --out DIR`` writes ``DIR/<name>.json``), read
for the dashboard (GET /v1/drills): each report's budgets met or missed, detection and RTO per
fault. Only ``*.json`` files directly in the folder, each parsed and validated; a file that is not
a drill report (a medians summary, something else) is listed as unreadable with the reason."""

from __future__ import annotations

import json
import re
from datetime import datetime
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from controller.errors import NotFound

REPORT_NAME = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$"
MAX_REPORT_BYTES = 4 << 20
MAX_REPORTS = 500  # the newest files by modification time


class DrillBudget(BaseModel):
    model_config = ConfigDict(extra="ignore")

    name: str
    budget: float | None
    measured: float | None
    unit: str
    passed: bool
    skipped: bool = False
    message: str = ""


class DrillFault(BaseModel):
    model_config = ConfigDict(extra="ignore")

    fault: str
    cluster: str | None = None
    at_s: float | None = None
    injected_s: float | None = None
    skipped: str | None = None
    detection_s: float | None = None
    rto_s: float | None = None
    affected_jobs: int | None = None
    recovered_jobs: int | None = None
    finished_in_place: int = 0
    waiting_for_residency: list[str] = []
    moved_to: dict[str, str] = {}


class DrillSummary(BaseModel):
    model_config = ConfigDict(extra="ignore")

    name: str = Field(description="the report's file name without .json")
    scenario: str
    source: str = ""
    started_at: datetime
    duration_s: float = 0.0
    passed: bool
    error: str | None = None
    federation: dict[str, Any] = {}
    results: list[DrillBudget]
    timeline: list[DrillFault] = []
    jobs: dict[str, Any] = {}
    budgets_met: int = 0
    budgets_missed: int = 0


class DrillReportRead(DrillSummary):
    measurements: dict[str, Any] = {}
    details: dict[str, Any] = {}


class Unreadable(BaseModel):
    file: str
    reason: str


class DrillList(BaseModel):
    folder: str | None = Field(description="the configured folder (YIWANG_DRILL_REPORTS_DIR); None: not set")
    items: list[DrillSummary] = Field(description="newest first")
    unreadable: list[Unreadable]


# Parsed reports by (path, modification time, size): the console lists the folder every few
# seconds, and a report does not change once written.
_parsed: dict[tuple[str, int, int], DrillReportRead] = {}


def _load(path: Path) -> DrillReportRead:
    st = path.stat()
    key = (str(path), st.st_mtime_ns, st.st_size)
    cached = _parsed.get(key)
    if cached is not None:
        return cached
    report = _parse(path, st.st_size)
    if len(_parsed) >= 2 * MAX_REPORTS:
        _parsed.clear()
    _parsed[key] = report
    return report


def _parse(path: Path, size: int) -> DrillReportRead:
    if size > MAX_REPORT_BYTES:
        raise ValueError(f"larger than {MAX_REPORT_BYTES >> 20} MB")
    body = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(body, dict) or "results" not in body:
        raise ValueError("not a drill report (no results)")
    results = [DrillBudget.model_validate(r) for r in body.get("results", [])]
    missed = sum(1 for r in results if not r.passed and not r.skipped)
    met = sum(1 for r in results if r.passed and not r.skipped)
    body = {**body, "name": path.stem, "budgets_met": met, "budgets_missed": missed}
    body.setdefault("passed", body.get("error") is None and missed == 0)
    return DrillReportRead.model_validate(body)


def _files(folder: Path) -> list[Path]:
    if not folder.is_dir():
        return []
    files = [
        p for p in folder.iterdir() if p.suffix == ".json" and p.is_file() and re.match(REPORT_NAME, p.stem)
    ]
    files.sort(key=lambda p: p.stat().st_mtime, reverse=True)
    return files[:MAX_REPORTS]


def list_reports(folder: Path | None) -> DrillList:
    if folder is None:
        return DrillList(folder=None, items=[], unreadable=[])
    items: list[DrillSummary] = []
    bad: list[Unreadable] = []
    for path in _files(folder):
        try:
            full = _load(path)
        except (OSError, ValueError, ValidationError) as exc:
            reason = f"{exc.error_count()} invalid field(s)" if isinstance(exc, ValidationError) else str(exc)
            bad.append(Unreadable(file=path.name, reason=reason[:300]))
            continue
        items.append(DrillSummary.model_validate(full.model_dump(exclude={"measurements", "details"})))
    items.sort(key=lambda d: d.started_at, reverse=True)
    return DrillList(folder=str(folder), items=items, unreadable=bad)


def read_report(folder: Path | None, name: str) -> DrillReportRead:
    if folder is None or not re.match(REPORT_NAME, name):
        raise NotFound(f"no drill report {name!r}")
    path = folder / f"{name}.json"
    if path not in _files(folder):
        raise NotFound(f"no drill report {name!r} in the drill reports folder")
    try:
        return _load(path)
    except (OSError, ValueError, ValidationError) as exc:
        raise NotFound(f"{name}.json is not a readable drill report: {str(exc)[:200]}") from exc
