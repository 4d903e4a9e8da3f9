"""The GB/T 20988 table in code matches the reference data it was copied from."""

from __future__ import annotations

import csv

from controller.drills.gbt20988 import LEVELS
from tests.conftest import REFDATA


def test_levels_match_the_reference_csv() -> None:
    path = REFDATA / "gbt20988_dr_levels.csv"
    with path.open(encoding="utf-8") as f:
        rows = {int(r["level"]): r for r in csv.DictReader(f)}
    assert set(rows) == set(LEVELS)
    for level, lv in LEVELS.items():
        assert rows[level]["rto"].startswith(lv.rto_text), level
        assert (rows[level]["verified_here"] == "yes") == lv.verified
        assert rows[level]["name_en"] == lv.name_en


def test_ceilings_tighten_with_the_level() -> None:
    ceilings = [LEVELS[i].rto_ceiling_s for i in sorted(LEVELS)]
    assert ceilings == sorted(ceilings, reverse=True)
