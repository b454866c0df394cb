"""worker/netclass.py on the real shipped lists and the bundled MaxMind ISP test database."""

from __future__ import annotations

import csv
import hashlib
import importlib.util
import shutil
import sys
from pathlib import Path
from typing import Any

import orjson
import pytest

from tests.mmdb_world import build_world
from worker.cli import main as cli_main
from worker.enrich import EnrichmentError
from worker.netclass import BUNDLED_DIR, UNKNOWN, NetClassError, NetClassifier
from worker.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
ISP_DB = str(ROOT / "data" / "mmdb" / "GeoIP2-ISP-Test.mmdb")


@pytest.fixture(scope="module")
def bundled() -> NetClassifier:
    return NetClassifier.from_dir()


def _rows(name: str) -> list[dict[str, str]]:
    with (BUNDLED_DIR / name).open(encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def test_bundled_version_is_the_manifest_content_hash(bundled: NetClassifier) -> None:
    manifest = orjson.loads((BUNDLED_DIR / "manifest.json").read_bytes())
    assert bundled.version == manifest["version"]
    for name, digest in manifest["files"].items():
        assert hashlib.sha256((BUNDLED_DIR / name).read_bytes()).hexdigest() == digest
    for src in manifest["sources"].values():  # provenance is recorded for every source
        assert src["commit"] and src["licence"] in {"MIT", "CC-BY-4.0"}
        assert (BUNDLED_DIR / src["licence_file"]).is_file()


def test_every_listed_hosting_asn_classifies_as_hosting(bundled: NetClassifier) -> None:
    rows = _rows("hosting_asns.csv")
    assert len(rows) > 500
    for row in rows:
        got = bundled.classify(int(row["asn"]))
        assert got.hosting and not got.mobile
        assert got.sources == tuple(row["sources"].split(";"))


def test_carriers_group_mobile_and_fixed_asns_of_one_operator(bundled: NetClassifier) -> None:
    rows = _rows("mobile_asns.csv")
    by_op: dict[str, list[dict[str, str]]] = {}
    for row in rows:
        by_op.setdefault(row["operator"], []).append(row)
        got = bundled.classify(int(row["asn"]))
        assert got.operator == row["operator"]
        assert got.mobile == (row["role"] == "mobile")
    assert len(by_op) >= 3
    for op, members in by_op.items():
        asns = [int(r["asn"]) for r in members]
        assert bundled.operator_asns(op) == tuple(sorted(asns))
        for a in asns:
            for b in asns:
                assert bundled.same_operator(a, b)
    # Singtel's mobile AS45143 and its SingNet broadband AS3758: one operator.
    assert bundled.same_operator(45143, 3758)
    assert not bundled.same_operator(45143, 4773)  # Singtel vs M1
    assert not bundled.same_operator(45143, None)


def test_known_networks_of_the_bundled_test_databases(bundled: NetClassifier) -> None:
    assert bundled.classify(16509).hosting  # AMAZON-02
    assert bundled.classify(35908).hosting  # Krypt (67.43.156.0/24 in the test dbs)
    assert bundled.classify(7922) is UNKNOWN  # Comcast: an eyeball network
    assert bundled.classify(None) is UNKNOWN


def test_isp_database_marks_mobile_carriers_by_mcc_mnc() -> None:
    clf = NetClassifier.from_dir(isp_db=ISP_DB)
    assert clf.reads_isp_data
    # 149.101.100.0/28 is Verizon Wireless (AS6167, MCC 310 / MNC 004) in GeoIP2-ISP-Test.
    rec = clf.isp_record("149.101.100.1")
    assert rec is not None and rec.mobile_country_code == "310"
    got = clf.classify_ip("149.101.100.1", 6167)
    assert got.mobile and got.operator == "mccmnc:310-004" and got.sources == ("maxmind-isp",)
    fixed = clf.classify_ip("89.160.20.112", 29518)  # Bredband2: no MCC/MNC
    assert not fixed.mobile and fixed is UNKNOWN
    assert clf.classify_ip("10.0.0.1", None) is UNKNOWN  # private: never looked up
    assert clf.classify_ip("not-an-ip", None) is UNKNOWN
    # Without the ISP database the same address is only what the lists say.
    assert NetClassifier.from_dir().classify_ip("149.101.100.1", 6167) is UNKNOWN


def test_connection_type_database_marks_cellular(tmp_path: Path) -> None:
    dbs = build_world({"5.6.7.0/24": {"connection_type": "Cellular"},
                       "5.6.8.0/24": {"connection_type": "Cable/DSL"}}, tmp_path)
    clf = NetClassifier.from_dir(connection_type_db=dbs.connection_type)
    assert clf.classify_ip("5.6.7.9", 64500).mobile
    assert clf.classify_ip("5.6.7.9", 64500).sources == ("maxmind-connection-type",)
    assert not clf.classify_ip("5.6.8.9", 64501).mobile


def _copy(tmp_path: Path) -> Path:
    d = tmp_path / "netclass"
    shutil.copytree(BUNDLED_DIR, d)
    return d


def test_overrides_file_adds_operators_and_hosting(tmp_path: Path) -> None:
    d = _copy(tmp_path)
    (d / "overrides.csv").write_text(
        "asn,hosting,mobile,operator\n"
        "701,false,false,verizon\n6167,false,true,verizon\n"
        "64512,true,false,\n16509,false,false,\n", encoding="utf-8")
    clf = NetClassifier.from_dir(d)
    assert clf.version.startswith(NetClassifier.from_dir().version + "+overrides-")
    assert clf.same_operator(701, 6167) and clf.classify(6167).mobile
    assert clf.classify(64512).hosting and clf.classify(64512).sources == ("override",)
    assert not clf.classify(16509).hosting  # a user may also un-list a network


@pytest.mark.parametrize(("name", "content", "message"), [
    ("hosting_asns.csv", b"asn,name,sources\nASx,Foo,list\n", "not an AS number"),
    ("mobile_asns.csv", b"asn,operator,role,country,sources\n1,op,tablet,SG,x\n",
     "role must be one of"),
    ("hosting_asns.csv", b"number,name\n1,x\n", "expected columns"),
    ("hosting_asns.csv", b"\xff\xfe", "not UTF-8"),
    ("manifest.json", b"{not json", "not JSON"),
    ("manifest.json", b"{}", "has no version"),
])
def test_corrupt_files_are_clear_errors(tmp_path: Path, name: str, content: bytes,
                                        message: str) -> None:
    d = _copy(tmp_path)
    (d / name).write_bytes(content)
    if name != "manifest.json":  # a consistent manifest, so the file's own check runs
        manifest: dict[str, Any] = orjson.loads((d / "manifest.json").read_bytes())
        manifest["files"][name] = hashlib.sha256(content).hexdigest()
        (d / "manifest.json").write_bytes(orjson.dumps(manifest))
    with pytest.raises(NetClassError, match=message):
        NetClassifier.from_dir(d)


def test_hand_edited_list_does_not_pass_as_the_released_one(tmp_path: Path) -> None:
    d = _copy(tmp_path)
    with (d / "hosting_asns.csv").open("a", encoding="utf-8") as fh:
        fh.write("64512,mine,list\n")
    with pytest.raises(NetClassError, match="does not match its manifest"):
        NetClassifier.from_dir(d)


def test_missing_files_and_databases(tmp_path: Path) -> None:
    with pytest.raises(NetClassError, match="directory not found"):
        NetClassifier.from_dir(tmp_path / "nope")
    d = _copy(tmp_path)
    (d / "mobile_asns.csv").unlink()
    with pytest.raises(NetClassError, match=r"mobile_asns\.csv"):
        NetClassifier.from_dir(d)
    with pytest.raises(NetClassError, match="ISP database not found"):
        NetClassifier.from_dir(isp_db=str(tmp_path / "missing.mmdb"))
    bad = tmp_path / "bad.mmdb"
    bad.write_bytes(b"not a database")
    with pytest.raises(NetClassError, match="cannot open GeoIP2 Connection-Type"):
        NetClassifier.from_dir(connection_type_db=str(bad))
    assert issubclass(NetClassError, EnrichmentError)  # the CLI's exit-2 path


def test_from_settings_reads_the_environment(tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    d = _copy(tmp_path)
    (d / "overrides.csv").write_text("asn,hosting,mobile,operator\n64512,true,false,\n",
                                     encoding="utf-8")
    monkeypatch.setenv("SESSIONWARDEN_NETCLASS_DIR", str(d))
    monkeypatch.setenv("SESSIONWARDEN_ISP_DB", ISP_DB)
    clf = NetClassifier.from_settings(Settings())
    assert clf.classify(64512).hosting and clf.reads_isp_data


def test_cli_prints_classes_and_exits_2_on_bad_data(tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    assert cli_main(["netclass", "16509", "AS45143", "--ip", "149.101.100.1",
                     "--isp-db", ISP_DB]) == 0
    lines = [orjson.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert lines[1]["hosting"] and lines[2]["operator"] == "sg:singtel"
    assert lines[3]["asn"] == 6167 and lines[3]["mobile"]
    assert cli_main(["netclass", "1", "--netclass-dir", str(tmp_path / "none")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "directory not found" in err


def test_refresh_script_rebuilds_the_shipped_lists_from_upstream_files(tmp_path: Path) -> None:
    """The transformation is pure: feeding it the lists' own content reproduces them."""
    spec = importlib.util.spec_from_file_location("refresh_netclass",
                                                  ROOT / "scripts" / "refresh_netclass.py")
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod
    spec.loader.exec_module(mod)
    x4b = "AS16509 # AMAZON-02\nAS3223\t# VOXILITY, RO\n# comment\n\nAS16509 # dup\n"
    bad = 'ASN,Entity\n16509,"AMAZON-02 - Amazon.com, Inc., US"\n51447, "RootLayer, NL"\n'
    sg = orjson.dumps({"asns": [
        {"asn": 45143, "carrier": "singtel", "role": "mobile"},
        {"asn": 3758, "carrier": "singtel", "role": "fixed-broadband"},
        {"asn": 4817, "carrier": "simba", "role": "unknown"}]})
    files = mod.build({"x4bnet-datacenter": x4b.encode(), "bad-asn-list": bad.encode(),
                       "sg-mobile-asn-ranges": sg})
    assert files["hosting_asns.csv"].decode().splitlines() == [
        "asn,name,sources", "3223,\"VOXILITY, RO\",x4bnet-datacenter",
        "16509,AMAZON-02,x4bnet-datacenter;bad-asn-list", "51447,\"RootLayer, NL\",bad-asn-list"]
    assert files["mobile_asns.csv"].decode().splitlines() == [
        "asn,operator,role,country,sources", "3758,sg:singtel,fixed,SG,sg-mobile-asn-ranges",
        "45143,sg:singtel,mobile,SG,sg-mobile-asn-ranges"]
    assert mod.data_version(files) == mod.data_version(dict(files))
    out = tmp_path / "out"
    up = tmp_path / "up"
    up.mkdir()
    (up / "x4bnet-datacenter-ASN.txt").write_text(x4b)
    (up / "bad-asn-list.csv").write_text(bad)
    (up / "sg-asns.json").write_bytes(sg)
    assert mod.main(["--upstream-dir", str(up), "--out", str(out), "--retrieved", "2026-01-01",
                     "--commit", "bad-asn-list=abc"]) == 0
    clf = NetClassifier.from_dir(out)
    assert clf.classify(51447).hosting and clf.same_operator(45143, 3758)
