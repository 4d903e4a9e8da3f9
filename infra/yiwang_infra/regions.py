"""The one table that maps topology regions (``cn-<province slug>``) to Alibaba Cloud regions.

The topology (policies/topology.yaml) names a cluster's region after the province that hosts it,
because data residency is a provincial matter. A cluster of a province must be created inside that
province, so a province may only use an Alibaba Cloud region whose data centres are in it.

Provinces with no public Alibaba Cloud region (Tianjin, Guizhou, ... - the ``None`` rows) run on
their provincial government cloud: their stacks use ``mode: existing`` with a kubeconfig secret.
The zones are the defaults for the two vSwitches of a new VPC; check them with
``aliyun ecs DescribeZones --RegionId <id>`` and override with the ``ack.zones`` config key.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class AlicloudRegion:
    region_id: str
    zones: tuple[str, ...]
    note: str = ""


# topology region -> Alibaba Cloud regions inside that province (first = default). Sources: the
# Alibaba Cloud "Regions and zones" page; the local regions (LR) host fewer services.
ALICLOUD_REGIONS: dict[str, tuple[AlicloudRegion, ...] | None] = {
    "cn-beijing": (AlicloudRegion("cn-beijing", ("cn-beijing-h", "cn-beijing-i"), "China (Beijing)"),),
    "cn-tianjin": None,
    "cn-hebei": (AlicloudRegion("cn-zhangjiakou", ("cn-zhangjiakou-a", "cn-zhangjiakou-b"), "Zhangjiakou"),),
    "cn-shanxi": None,
    "cn-inner-mongolia": (
        AlicloudRegion("cn-huhehaote", ("cn-huhehaote-a", "cn-huhehaote-b"), "Hohhot"),
        AlicloudRegion("cn-wulanchabu", ("cn-wulanchabu-a", "cn-wulanchabu-b"), "Ulanqab"),
    ),
    "cn-liaoning": None,
    "cn-jilin": None,
    "cn-heilongjiang": None,
    "cn-shanghai": (AlicloudRegion("cn-shanghai", ("cn-shanghai-e", "cn-shanghai-f"), "China (Shanghai)"),),
    "cn-jiangsu": (AlicloudRegion("cn-nanjing", ("cn-nanjing-a",), "Nanjing, local region"),),
    "cn-zhejiang": (AlicloudRegion("cn-hangzhou", ("cn-hangzhou-h", "cn-hangzhou-i"), "China (Hangzhou)"),),
    "cn-anhui": None,
    "cn-fujian": (AlicloudRegion("cn-fuzhou", ("cn-fuzhou-a",), "Fuzhou, local region"),),
    "cn-jiangxi": None,
    "cn-shandong": (AlicloudRegion("cn-qingdao", ("cn-qingdao-b", "cn-qingdao-c"), "China (Qingdao)"),),
    "cn-henan": None,
    "cn-hubei": (AlicloudRegion("cn-wuhan-lr", ("cn-wuhan-lr-a",), "Wuhan, local region"),),
    "cn-hunan": None,
    "cn-guangdong": (
        AlicloudRegion("cn-shenzhen", ("cn-shenzhen-e", "cn-shenzhen-f"), "China (Shenzhen)"),
        AlicloudRegion("cn-guangzhou", ("cn-guangzhou-a", "cn-guangzhou-b"), "Guangzhou"),
        AlicloudRegion("cn-heyuan", ("cn-heyuan-a", "cn-heyuan-b"), "Heyuan"),
    ),
    "cn-guangxi": None,
    "cn-hainan": None,
    "cn-chongqing": None,
    "cn-sichuan": (AlicloudRegion("cn-chengdu", ("cn-chengdu-a", "cn-chengdu-b"), "Chengdu"),),
    "cn-guizhou": None,
    "cn-yunnan": None,
    "cn-xizang": None,
    "cn-shaanxi": None,
    "cn-gansu": None,
    "cn-qinghai": None,
    "cn-ningxia": None,
    "cn-xinjiang": None,
    "cn-xpcc": None,
}


class UnknownRegion(ValueError):
    """A topology region that the table does not list."""


def alicloud_regions(topology_region: str) -> tuple[AlicloudRegion, ...]:
    """The Alibaba Cloud regions inside a topology region; empty if it has none."""
    if topology_region not in ALICLOUD_REGIONS:
        raise UnknownRegion(
            f"topology region {topology_region!r} is not in infra/yiwang_infra/regions.py; add a row"
        )
    return ALICLOUD_REGIONS[topology_region] or ()


def allowed_region_ids(topology_region: str) -> tuple[str, ...]:
    return tuple(r.region_id for r in alicloud_regions(topology_region))


def default_alicloud_region(topology_region: str) -> AlicloudRegion | None:
    regions = alicloud_regions(topology_region)
    return regions[0] if regions else None


def find_alicloud_region(region_id: str) -> AlicloudRegion | None:
    for regions in ALICLOUD_REGIONS.values():
        for region in regions or ():
            if region.region_id == region_id:
                return region
    return None
