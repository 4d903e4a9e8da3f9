"""Reference data vendored from public sources (see README.md here): the 32 provincial platforms,
the East-Data-West-Computing hubs, the GB/T 20988 disaster-recovery levels and the Alibaba
cluster-trace-v2017 batch_task table. Nothing in the project reads data from outside the repository.
"""

from __future__ import annotations

from pathlib import Path

DATA_DIR = Path(__file__).resolve().parent

PROVINCES_CSV = DATA_DIR / "china_provinces_32.csv"
HUBS_CSV = DATA_DIR / "eastdata_westcompute_hubs.csv"
DR_LEVELS_CSV = DATA_DIR / "gbt20988_dr_levels.csv"
TRACE_CSV = DATA_DIR / "alibaba_v2017_batch_task.csv"
