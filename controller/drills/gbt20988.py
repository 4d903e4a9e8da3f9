"""GB/T 20988-2007 disaster-recovery levels as RTO ceilings a drill can be held to.

Copied from controller/data/gbt20988_dr_levels.csv (tests check the RTO texts still match). The
standard states each level's RTO as a range or a floor; a drill takes the *strictest* reading of
the text, the shortest duration it names: ">=2 days" -> 2 days, "hours to 2 days" -> 1 hour,
"minutes" -> 1 minute. Levels 3-6 carry commonly cited, unverified values (as the CSV says).
"""

from __future__ import annotations

from dataclasses import dataclass

MINUTE, HOUR, DAY = 60.0, 3600.0, 86400.0


@dataclass(frozen=True)
class DrLevel:
    level: int
    name_en: str
    rto_text: str
    rto_ceiling_s: float
    verified: bool


LEVELS: dict[int, DrLevel] = {
    lv.level: lv
    for lv in (
        DrLevel(1, "Basic support", ">=2 days", 2 * DAY, True),
        DrLevel(2, "Alternate site support", ">=24 hours", 24 * HOUR, True),
        DrLevel(3, "Electronic transmission and partial equipment support", ">=12 hours", 12 * HOUR, False),
        DrLevel(4, "Electronic transmission and complete equipment support", "hours to 2 days", HOUR, False),
        DrLevel(
            5,
            "Real-time data transmission and complete equipment support",
            "minutes to 2 days",
            MINUTE,
            False,
        ),
        DrLevel(6, "Zero data loss and remote cluster support", "minutes", MINUTE, False),
    )
}
