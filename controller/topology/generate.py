"""Generate policies/topology.yaml and policies/failover.yaml from the reference data.

Sources (vendored in controller/data/, see its README.md): china_provinces_32.csv (the 32 provincial platforms: adcodes, capitals,
2020 census population, East-Data-West-Computing hub) and eastdata_westcompute_hubs.csv (hub sides).

Sizing rule (documented in docs/topology.md):
- a province gets ``800 + 40 * population_in_millions`` cores, rounded to 100; a province in an
  eastern hub x1.25, in a western hub x2 (the western hubs host offline analytics and backup);
  XPCC, whose population is counted inside Xinjiang's, gets the floor of 800;
- memory is 4 GiB per core; GPUs are one per 250 cores in hub provinces, one per 500 elsewhere;
- national-primary (Beijing) 16,000 cores, national-backup (Gui'an, Guizhou western hub) 12,000;
- each ministry 1,600 cores.
Links: each province and ministry has a 10 Gbit/s link to each national node, the national nodes a
100 Gbit/s backbone between them; latency is the round trip over a fibre route 1.5x the
great-circle distance between capitals, plus 1 ms.
"""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from controller.topology.network import great_circle_km, rtt_ms_for_distance

XPCC_ADCODE = "660000"  # no GB/T 2260 code; 660000 is the conventional code in statistics systems
BEIJING = (116.405285, 39.904989)
GUIAN = (106.713478, 26.578343)  # Guiyang / Gui'an new area, the Guizhou national hub


@dataclass(frozen=True)
class Ministry:
    slug: str
    name_en: str
    name_zh: str


# Real central ministries and commissions; the first DEFAULT_MINISTRIES ship by default.
MINISTRIES: tuple[Ministry, ...] = (
    Ministry("mps", "Ministry of Public Security", "公安部"),
    Ministry("mof", "Ministry of Finance", "财政部"),
    Ministry("mohrss", "Ministry of Human Resources and Social Security", "人力资源和社会保障部"),
    Ministry("mnr", "Ministry of Natural Resources", "自然资源部"),
    Ministry("mee", "Ministry of Ecology and Environment", "生态环境部"),
    Ministry("mot", "Ministry of Transport", "交通运输部"),
    Ministry("nhc", "National Health Commission", "国家卫生健康委员会"),
    Ministry("mca", "Ministry of Civil Affairs", "民政部"),
    Ministry("moe", "Ministry of Education", "教育部"),
    Ministry("samr", "State Administration for Market Regulation", "国家市场监督管理总局"),
    Ministry("nbs", "National Bureau of Statistics", "国家统计局"),
    Ministry("mem", "Ministry of Emergency Management", "应急管理部"),
    Ministry("mwr", "Ministry of Water Resources", "水利部"),
    Ministry("moa", "Ministry of Agriculture and Rural Affairs", "农业农村部"),
    Ministry("mohurd", "Ministry of Housing and Urban-Rural Development", "住房和城乡建设部"),
    Ministry("sta", "State Taxation Administration", "国家税务总局"),
)
DEFAULT_MINISTRIES = 8

PROVINCE_LINK_GBPS = 10.0
MINISTRY_LINK_GBPS = 10.0
BACKBONE_GBPS = 100.0


def slugify(name_en: str) -> str:
    name = re.sub(r"\(.*?\)", "", name_en).strip().lower()
    if name.startswith("xinjiang production"):
        return "xpcc"
    return re.sub(r"[^a-z0-9]+", "-", name).strip("-")


def round100(x: float) -> int:
    return round(x / 100.0) * 100


def hub_sides(hubs_csv: Path) -> dict[str, tuple[str, str]]:
    """adcode -> (hub name, side)."""
    out: dict[str, tuple[str, str]] = {}
    with hubs_csv.open(encoding="utf-8") as fh:
        for row in csv.DictReader(fh):
            for adcode in row["provinces_adcodes"].split(";"):
                out[adcode.strip()] = (row["hub_en"], row["side"])
    return out


def province_cpu(pop: int | None, side: str | None) -> int:
    cores = 800.0 if pop is None else 800 + 40 * pop / 1e6
    cores *= {"east": 1.25, "west": 2.0}.get(side or "", 1.0)
    return max(800, round100(cores))


def _cluster(
    name: str,
    tier: str,
    tenant: str,
    display: str,
    display_zh: str,
    region: str,
    lng: float,
    lat: float,
    cpu: int,
    gpu_per: int,
    adcode: str | None = None,
    hub: str | None = None,
    side: str | None = None,
) -> dict[str, Any]:
    c: dict[str, Any] = {
        "name": name,
        "tier": tier,
        "tenant": tenant,
        "display_name": display,
        "display_name_zh": display_zh,
        "region": region,
        "location": {"lng": lng, "lat": lat},
        "capacity": {"cpu": cpu, "memory_gib": cpu * 4, "gpu": cpu // gpu_per},
    }
    if adcode:
        c["adcode"] = adcode
    if hub:
        c["hub"], c["hub_side"] = hub, side
    return c


def build(data_dir: Path, ministries: int = DEFAULT_MINISTRIES) -> tuple[dict[str, Any], dict[str, Any]]:
    """Return (topology, failover policy) documents."""
    if not 0 <= ministries <= len(MINISTRIES):
        raise ValueError(f"ministries must be between 0 and {len(MINISTRIES)}")
    hubs = hub_sides(data_dir / "eastdata_westcompute_hubs.csv")
    clusters: list[dict[str, Any]] = [
        _cluster(
            "national-primary",
            "national",
            "national",
            "National platform (primary)",
            "国家平台主节点",
            "cn-beijing",
            *BEIJING,
            16000,
            250,
            hub="Beijing-Tianjin-Hebei",
            side="east",
        ),
        _cluster(
            "national-backup",
            "national",
            "national",
            "National platform (backup)",
            "国家平台备节点",
            "cn-guizhou",
            *GUIAN,
            12000,
            250,
            hub="Guizhou",
            side="west",
        ),
    ]
    with (data_dir / "china_provinces_32.csv").open(encoding="utf-8") as fh:
        for row in csv.DictReader(fh):
            adcode = row["adcode"].strip() or XPCC_ADCODE
            slug = slugify(row["name_en"])
            hub, side = hubs.get(adcode, (None, None))
            pop = int(row["pop_census_2020"]) if row["pop_census_2020"].strip() else None
            clusters.append(
                _cluster(
                    f"prov-{slug}",
                    "province",
                    slug,
                    row["name_en"],
                    row["name_zh"],
                    f"cn-{slug}",
                    float(row["capital_lng_gcj02"]),
                    float(row["capital_lat_gcj02"]),
                    province_cpu(pop, side),
                    250 if hub else 500,
                    adcode=adcode,
                    hub=hub,
                    side=side,
                )
            )
    for m in MINISTRIES[:ministries]:
        clusters.append(
            _cluster(
                f"dept-{m.slug}",
                "department",
                m.slug,
                m.name_en,
                m.name_zh,
                "cn-beijing",
                *BEIJING,
                1600,
                500,
            )
        )

    def rtt(a: dict[str, Any], b: dict[str, Any]) -> float:
        la, lb = a["location"], b["location"]
        return rtt_ms_for_distance(great_circle_km(la["lng"], la["lat"], lb["lng"], lb["lat"]))

    primary, backup = clusters[0], clusters[1]
    links: list[dict[str, Any]] = [
        {
            "a": primary["name"],
            "b": backup["name"],
            "bandwidth_gbps": BACKBONE_GBPS,
            "latency_ms": rtt(primary, backup),
        }
    ]
    for c in clusters[2:]:
        gbps = PROVINCE_LINK_GBPS if c["tier"] == "province" else MINISTRY_LINK_GBPS
        for national in (primary, backup):
            links.append(
                {
                    "a": c["name"],
                    "b": national["name"],
                    "bandwidth_gbps": gbps,
                    "latency_ms": rtt(c, national),
                }
            )

    # Failover: a province falls back to its nearest other province, then to the national backup.
    provinces = [c for c in clusters if c["tier"] == "province"]
    groups: dict[str, list[str]] = {
        "national-primary": ["national-backup"],
        "national-backup": ["national-primary"],
    }
    for p in provinces:
        others = [q for q in provinces if q["name"] != p["name"] and q["location"] != p["location"]]
        nearest = min(others, key=lambda q: rtt(p, q))
        groups[p["name"]] = [nearest["name"], "national-backup"]
    for c in clusters:
        if c["tier"] == "department":
            groups[c["name"]] = ["national-backup", "national-primary"]
    topology = {"version": 1, "clusters": clusters, "links": links}
    failover = {"version": 1, "heartbeat_grace_s": 6, "lease_s": 15, "backups": groups}
    return topology, failover


HEADER = (
    "# GENERATED by `yiwang policy generate` from controller/data (see controller/topology/generate.py).\n"
)


def write(data_dir: Path, policies_dir: Path, ministries: int = DEFAULT_MINISTRIES) -> list[Path]:
    topology, failover = build(data_dir, ministries)
    out = []
    for name, doc in (("topology.yaml", topology), ("failover.yaml", failover)):
        path = policies_dir / name
        path.write_text(
            HEADER + yaml.safe_dump(doc, allow_unicode=True, sort_keys=False, width=120), encoding="utf-8"
        )
        out.append(path)
    return out
