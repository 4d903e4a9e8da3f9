"""The 1+32+N topology: every province with its GB/T 2260 code, links, the network model, and
that the committed files are exactly what the generator makes."""

from __future__ import annotations

import csv
import math
import shutil
from pathlib import Path

import numpy as np
import pytest
import yaml
from typer.testing import CliRunner

from controller.cli import app as cli
from controller.errors import InvalidPolicy
from controller.services.policy_files import load_policy_set
from controller.topology import NetworkModel, Tier, load_topology
from controller.topology.generate import build
from controller.topology.network import great_circle_km
from tests.conftest import REFDATA, REPO

POLICIES = REPO / "policies"
# GB/T 2260 provincial codes of the 31 divisions, plus 660000 used by convention for XPCC.
ADCODES = {
    "110000",
    "120000",
    "130000",
    "140000",
    "150000",
    "210000",
    "220000",
    "230000",
    "310000",
    "320000",
    "330000",
    "340000",
    "350000",
    "360000",
    "370000",
    "410000",
    "420000",
    "430000",
    "440000",
    "450000",
    "460000",
    "500000",
    "510000",
    "520000",
    "530000",
    "540000",
    "610000",
    "620000",
    "630000",
    "640000",
    "650000",
    "660000",
}


@pytest.fixture(scope="module")
def topology():  # type: ignore[no-untyped-def]
    return load_topology(POLICIES / "topology.yaml")


def test_all_32_provinces_with_correct_adcodes(topology) -> None:  # type: ignore[no-untyped-def]
    provinces = [c for c in topology.clusters if c.tier is Tier.province]
    assert len(provinces) == 32
    assert {c.adcode for c in provinces} == ADCODES
    by_code = {c.adcode: c for c in provinces}
    assert by_code["440000"].name == "prov-guangdong"
    assert by_code["660000"].name == "prov-xpcc"
    assert by_code["540000"].display_name_zh == "西藏自治区"


def test_adcodes_and_capitals_match_the_reference_csv(topology) -> None:  # type: ignore[no-untyped-def]
    by_code = {c.adcode: c for c in topology.clusters if c.tier is Tier.province}
    with (REFDATA / "china_provinces_32.csv").open(encoding="utf-8") as fh:
        for row in csv.DictReader(fh):
            c = by_code[row["adcode"] or "660000"]
            assert c.display_name_zh == row["name_zh"]
            assert c.location.lng == pytest.approx(float(row["capital_lng_gcj02"]))
            assert c.location.lat == pytest.approx(float(row["capital_lat_gcj02"]))


def test_national_tier_and_default_ministries(topology) -> None:  # type: ignore[no-untyped-def]
    names = {c.name for c in topology.clusters}
    assert {"national-primary", "national-backup"} <= names
    ministries = [c for c in topology.clusters if c.tier is Tier.department]
    assert len(ministries) >= 8
    assert all(c.tenant != "national" for c in ministries)


def test_every_member_links_to_both_national_nodes(topology) -> None:  # type: ignore[no-untyped-def]
    linked: dict[str, set[str]] = {}
    for link in topology.links:
        linked.setdefault(link.a, set()).add(link.b)
        linked.setdefault(link.b, set()).add(link.a)
    for c in topology.clusters:
        if c.tier is not Tier.national:
            assert linked[c.name] == {"national-primary", "national-backup"}, c.name


def test_province_to_province_crosses_the_backbone(topology) -> None:  # type: ignore[no-untyped-def]
    net = NetworkModel(topology)
    i, j, p = net.index["prov-guangdong"], net.index["prov-xinjiang"], net.index["national-primary"]
    # No direct link: the path is no shorter than through a national node, and bandwidth is the
    # bottleneck of the two provincial links.
    assert net.latency_ms[i, j] == pytest.approx(
        min(
            net.latency_ms[i, p] + net.latency_ms[p, j],
            net.latency_ms[i, net.index["national-backup"]] + net.latency_ms[net.index["national-backup"], j],
        )
    )
    assert net.bandwidth_bps[i, j] == pytest.approx(10e9 / 8)
    assert np.all(np.diag(net.latency_ms) == 0)
    assert net.transfer_seconds(i, j, 1.25e9) == pytest.approx(net.latency_ms[i, j] / 1000 + 1.0)


def test_latency_grows_with_distance(topology) -> None:  # type: ignore[no-untyped-def]
    by = topology.by_name()
    lat = {(lk.a, lk.b): lk.latency_ms for lk in topology.links if lk.b == "national-primary"}
    near, far = lat[("prov-tianjin", "national-primary")], lat[("prov-xinjiang", "national-primary")]
    assert near < far
    km = great_circle_km(
        by["prov-xinjiang"].location.lng,
        by["prov-xinjiang"].location.lat,
        by["national-primary"].location.lng,
        by["national-primary"].location.lat,
    )
    assert 2200 < km < 2600  # Urumqi-Beijing is about 2,400 km
    assert math.isclose(far, 1 + 2 * 1.5 * km / 200, rel_tol=1e-3)


def test_committed_files_are_what_the_generator_makes(tmp_path: Path) -> None:
    topology, failover = build(REFDATA)
    committed_topology = yaml.safe_load((POLICIES / "topology.yaml").read_text(encoding="utf-8"))
    committed_failover = yaml.safe_load((POLICIES / "failover.yaml").read_text(encoding="utf-8"))
    assert committed_topology == topology
    assert committed_failover == failover


def test_ministry_count_is_configurable() -> None:
    topology, _ = build(REFDATA, ministries=12)
    assert sum(c["tier"] == "department" for c in topology["clusters"]) == 12
    with pytest.raises(ValueError):
        build(REFDATA, ministries=99)


def _broken_policies(tmp_path: Path) -> Path:
    d = tmp_path / "policies"
    shutil.copytree(POLICIES, d)
    topo = yaml.safe_load((d / "topology.yaml").read_text(encoding="utf-8"))
    topo["clusters"][3]["capacity"]["cpu"] = -5
    topo["clusters"][4]["adcode"] = "12AB"
    (d / "topology.yaml").write_text(yaml.safe_dump(topo), encoding="utf-8")
    (d / "placement.yaml").write_text("filters: [health, residency, teleport]\n", encoding="utf-8")
    fo = yaml.safe_load((d / "failover.yaml").read_text(encoding="utf-8"))
    fo["backups"]["prov-hebei"] = ["prov-atlantis"]
    (d / "failover.yaml").write_text(yaml.safe_dump(fo), encoding="utf-8")
    return d


def test_policy_check_reports_every_error_with_its_path(tmp_path: Path) -> None:
    d = _broken_policies(tmp_path)
    with pytest.raises(InvalidPolicy) as info:
        load_policy_set(d)
    paths = {(e["source"], e["path"]) for e in info.value.errors}
    assert ("topology.yaml", "clusters[3].capacity.cpu") in paths
    assert ("topology.yaml", "clusters[4].adcode") in paths
    # Once the files parse, cross-file references are checked too.
    topo = yaml.safe_load((POLICIES / "topology.yaml").read_text(encoding="utf-8"))
    (d / "topology.yaml").write_text(yaml.safe_dump(topo), encoding="utf-8")
    with pytest.raises(InvalidPolicy) as info:
        load_policy_set(d)
    paths = {(e["source"], e["path"]) for e in info.value.errors}
    assert ("placement", "filters[2]") in paths
    assert ("failover", "backups.prov-hebei[0]") in paths


def test_policy_check_cli(tmp_path: Path) -> None:
    runner = CliRunner()
    ok = runner.invoke(cli, ["policy", "check", str(POLICIES)])
    assert ok.exit_code == 0, ok.output
    assert "42 clusters" in ok.output
    bad = runner.invoke(cli, ["policy", "check", str(_broken_policies(tmp_path))])
    assert bad.exit_code == 1
    assert "clusters[3].capacity.cpu" in bad.output
