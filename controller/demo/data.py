"""Seeded generator of the demo's sample data sets (CSV), so the repo ships the recipe, not the data.

Each data set is a small table of government records: a province's social-insurance payments
(important), a population register (core), public price statistics (general), and so on. The same
seed always gives the same bytes, so the demo's job outputs are reproducible.
"""

from __future__ import annotations

import csv
import random
from dataclasses import dataclass
from pathlib import Path

SEED = 20261127


@dataclass(frozen=True)
class SampleDataset:
    id: str
    owner: str
    classification: str
    locations: tuple[str, ...]
    description: str
    columns: tuple[str, ...]
    rows: int


CATEGORIES = ("pension", "medical", "unemployment", "work-injury", "maternity")
SECTORS = ("manufacturing", "retail", "logistics", "software", "construction", "agriculture")
DISTRICTS = {
    "guangdong": ("Guangzhou", "Shenzhen", "Foshan", "Dongguan", "Shantou", "Zhuhai"),
    "zhejiang": ("Hangzhou", "Ningbo", "Wenzhou", "Shaoxing", "Jiaxing"),
    "sichuan": ("Chengdu", "Mianyang", "Deyang", "Yibin", "Nanchong"),
    "hubei": ("Wuhan", "Yichang", "Xiangyang", "Jingzhou"),
}

DATASETS: tuple[SampleDataset, ...] = (
    SampleDataset(
        "gd-social-insurance",
        "guangdong",
        "important",
        ("prov-guangdong",),
        "Guangdong social-insurance payments, 2025",
        ("district", "category", "amount_yuan"),
        4000,
    ),
    SampleDataset(
        "zj-enterprise-tax",
        "zhejiang",
        "important",
        ("prov-zhejiang",),
        "Zhejiang enterprise tax by sector, 2025",
        ("district", "sector", "amount_yuan"),
        3000,
    ),
    SampleDataset(
        "sc-population-register",
        "sichuan",
        "core",
        ("prov-sichuan",),
        "Sichuan population register extract",
        ("district", "age", "sex"),
        5000,
    ),
    SampleDataset(
        "national-prices",
        "national",
        "general",
        ("national-primary", "national-backup"),
        "National consumer price observations",
        ("month", "item", "index"),
        2400,
    ),
    SampleDataset(
        "hb-open-statistics",
        "hubei",
        "general",
        ("prov-hubei",),
        "Hubei open statistics (public)",
        ("district", "indicator", "value"),
        2000,
    ),
    SampleDataset(
        "mps-traffic-incidents",
        "mps",
        "important",
        ("dept-mps",),
        "Ministry of Public Security traffic incidents",
        ("province", "severity", "count"),
        3000,
    ),
)


def _row(ds: SampleDataset, rng: random.Random) -> list[object]:
    if ds.id == "sc-population-register":
        return [rng.choice(DISTRICTS["sichuan"]), rng.randint(0, 95), rng.choice(("F", "M"))]
    if ds.id == "national-prices":
        month = f"2025-{rng.randint(1, 12):02d}"
        return [
            month,
            rng.choice(("food", "housing", "transport", "health")),
            round(rng.gauss(101.5, 1.2), 2),
        ]
    if ds.id == "hb-open-statistics":
        return [
            rng.choice(DISTRICTS["hubei"]),
            rng.choice(("gdp", "retail", "exports")),
            round(rng.uniform(10, 500), 1),
        ]
    if ds.id == "mps-traffic-incidents":
        return [
            rng.choice(("Beijing", "Guangdong", "Sichuan", "Zhejiang", "Hubei")),
            rng.choice(("minor", "serious", "fatal")),
            rng.randint(1, 40),
        ]
    owner = ds.owner
    second = rng.choice(CATEGORIES if ds.id.startswith("gd") else SECTORS)
    return [rng.choice(DISTRICTS[owner]), second, round(rng.lognormvariate(7, 1), 2)]


def write_all(directory: Path) -> dict[str, Path]:
    """Write every sample data set as ``<dir>/<id>.csv``; returns id -> path."""
    directory.mkdir(parents=True, exist_ok=True)
    out = {}
    for i, ds in enumerate(DATASETS):
        rng = random.Random(SEED + i)
        path = directory / f"{ds.id}.csv"
        with path.open("w", newline="", encoding="utf-8") as fh:
            w = csv.writer(fh)
            w.writerow(ds.columns)
            for _ in range(ds.rows):
                w.writerow(_row(ds, rng))
        out[ds.id] = path
    return out
