#!/usr/bin/env python3
"""Rebuild ``data/netclass/`` (hosting and mobile-carrier ASN lists) from upstream.

Users run this to refresh the shipped classification data; it needs network
access to raw.githubusercontent.com and api.github.com (it is never run by the
tests). ``--upstream-dir DIR`` builds from files already downloaded into DIR
instead (same names as ``SOURCES[*].filename``), which is how the shipped copy
was produced on a machine without web access.

Sources (all permissively licensed; docs/netclass.md says why these and not others):

- X4BNet/lists_vpn ``input/datacenter/ASN.txt`` (MIT): ASNs of datacenters and
  VPN hosters, "anything that is not an eyeball network".
- brianhama/bad-asn-list ``bad-asn-list.csv`` (MIT): ASNs of cloud, managed
  hosting and colocation facilities.
- Xavierfok/sg-mobile-asn-ranges ``sources/asns.json`` (data CC-BY-4.0):
  hand-curated roles (mobile | fixed-broadband | carrier-core) of the ASNs of
  each Singapore carrier, i.e. the operator grouping of mobile and fixed ASNs.

Outputs (deterministic: sorted, no timestamps other than the recorded
retrieval date, so the same upstream bytes give the same files):

- ``hosting_asns.csv``: ``asn,name,sources``
- ``mobile_asns.csv``: ``asn,operator,role,country,sources``
- ``manifest.json``: data version, per-source URL, commit, licence, sha256 of
  the upstream file and how it was transformed.

    python scripts/refresh_netclass.py                      # download and rebuild
    python scripts/refresh_netclass.py --upstream-dir DIR   # rebuild offline
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import io
import json
import os
import re
import sys
import tempfile
import urllib.request
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
OUT_DIR = ROOT / "data" / "netclass"
FORMAT_VERSION = 1


@dataclass(frozen=True)
class Source:
    """One upstream file and where it lives."""

    key: str
    repo: str
    branch: str
    path: str
    filename: str
    licence: str
    licence_file: str
    transform: str

    @property
    def raw_url(self) -> str:
        return f"https://raw.githubusercontent.com/{self.repo}/{self.branch}/{self.path}"

    @property
    def commits_url(self) -> str:
        return f"https://api.github.com/repos/{self.repo}/commits?path={self.path}&sha={self.branch}&per_page=1"


SOURCES: tuple[Source, ...] = (
    Source("x4bnet-datacenter", "X4BNet/lists_vpn", "main", "input/datacenter/ASN.txt",
           "x4bnet-datacenter-ASN.txt", "MIT", "LICENSE-X4BNet-lists_vpn.txt",
           "lines 'AS<n> # <name>': ASN and name kept; every ASN is hosting"),
    Source("bad-asn-list", "brianhama/bad-asn-list", "master", "bad-asn-list.csv",
           "bad-asn-list.csv", "MIT", "LICENSE-bad-asn-list.txt",
           "CSV 'ASN,Entity': ASN and entity name kept; every ASN is hosting"),
    Source("sg-mobile-asn-ranges", "Xavierfok/sg-mobile-asn-ranges", "main",
           "sources/asns.json", "sg-asns.json", "CC-BY-4.0", "LICENSE-sg-mobile-asn-ranges.md",
           "asns[]: asn, carrier -> operator 'sg:<carrier>', role mobile|fixed-broadband|"
           "carrier-core (role 'unknown' dropped), country SG; only role=mobile is mobile"),
)

_ASN_LINE = re.compile(r"^\s*AS(\d+)\b\s*(?:#\s*(.*))?$", re.IGNORECASE)


def parse_x4bnet(text: str) -> dict[int, str]:
    """``AS123 # NAME`` lines; comments and blanks skipped."""
    out: dict[int, str] = {}
    for line in text.splitlines():
        m = _ASN_LINE.match(line)
        if m:
            out.setdefault(int(m.group(1)), (m.group(2) or "").strip())
    return out


def parse_bad_asn(text: str) -> dict[int, str]:
    """``ASN,Entity`` CSV (some rows have a space after the comma)."""
    out: dict[int, str] = {}
    for row in csv.reader(io.StringIO(text), skipinitialspace=True):
        if not row or not row[0].strip().isdigit():
            continue  # header or junk
        out.setdefault(int(row[0]), row[1].strip() if len(row) > 1 else "")
    return out


def parse_sg(text: str) -> list[dict[str, Any]]:
    """Carrier ASN roles; ``unknown`` roles are dropped (nothing to classify)."""
    doc = json.loads(text)
    rows = []
    for entry in doc["asns"]:
        role = {"mobile": "mobile", "fixed-broadband": "fixed",
                "carrier-core": "core"}.get(entry["role"])
        if role is None:
            continue
        rows.append({"asn": int(entry["asn"]), "operator": f"sg:{entry['carrier']}",
                     "role": role, "country": "SG"})
    return rows


def build(raw: dict[str, bytes]) -> dict[str, bytes]:
    """Output files from the upstream bytes (pure: no I/O, no clock)."""
    hosting: dict[int, tuple[str, list[str]]] = {}
    for key, parse in (("x4bnet-datacenter", parse_x4bnet), ("bad-asn-list", parse_bad_asn)):
        for asn, name in parse(raw[key].decode("utf-8")).items():
            old = hosting.get(asn)
            if old is None:
                hosting[asn] = (name, [key])
            else:
                old[1].append(key)
    h = io.StringIO(newline="")
    w = csv.writer(h, lineterminator="\n")
    w.writerow(["asn", "name", "sources"])
    for asn in sorted(hosting):
        name, keys = hosting[asn]
        w.writerow([asn, name, ";".join(keys)])

    m = io.StringIO(newline="")
    w = csv.writer(m, lineterminator="\n")
    w.writerow(["asn", "operator", "role", "country", "sources"])
    for row in sorted(parse_sg(raw["sg-mobile-asn-ranges"].decode("utf-8")),
                      key=lambda r: r["asn"]):
        w.writerow([row["asn"], row["operator"], row["role"], row["country"],
                    "sg-mobile-asn-ranges"])
    return {"hosting_asns.csv": h.getvalue().encode(), "mobile_asns.csv": m.getvalue().encode()}


def data_version(files: dict[str, bytes]) -> str:
    """Content hash of the output lists: the same data has the same version."""
    digest = hashlib.sha256()
    for name in sorted(files):
        digest.update(name.encode() + b"\0" + files[name] + b"\0")
    return f"netclass-{digest.hexdigest()[:12]}"


def _get(url: str) -> bytes:
    req = urllib.request.Request(url, headers={"User-Agent": "sessionwarden-refresh-netclass"})
    with urllib.request.urlopen(req, timeout=60) as resp:
        body: bytes = resp.read()
        return body


def _latest_commit(src: Source) -> tuple[str | None, str | None]:
    try:
        data = json.loads(_get(src.commits_url))
        return data[0]["sha"], data[0]["commit"]["committer"]["date"]
    except Exception:  # the commit is provenance only: a rate limit must not stop a refresh
        return None, None


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--upstream-dir", type=Path,
                   help="build from files already downloaded here instead of the network")
    p.add_argument("--commit", action="append", default=[], metavar="KEY=SHA",
                   help="record this upstream commit for KEY (with --upstream-dir)")
    p.add_argument("--retrieved", help="retrieval date to record (default: today, UTC)")
    p.add_argument("--out", type=Path, default=OUT_DIR)
    args = p.parse_args(argv)

    commits = dict(c.split("=", 1) for c in args.commit)
    raw: dict[str, bytes] = {}
    meta: dict[str, dict[str, Any]] = {}
    for src in SOURCES:
        if args.upstream_dir is not None:
            raw[src.key] = (args.upstream_dir / src.filename).read_bytes()
            sha, date = commits.get(src.key), None
        else:
            raw[src.key] = _get(src.raw_url)
            sha, date = _latest_commit(src)
        meta[src.key] = {
            "url": f"https://github.com/{src.repo}/blob/{src.branch}/{src.path}",
            "raw_url": src.raw_url, "commit": sha, "commit_date": date,
            "licence": src.licence, "licence_file": src.licence_file,
            "sha256": hashlib.sha256(raw[src.key]).hexdigest(), "transform": src.transform,
        }
    files = build(raw)
    manifest = {
        "format": FORMAT_VERSION,
        "version": data_version(files),
        "retrieved": args.retrieved or datetime.now(UTC).date().isoformat(),
        "generator": "scripts/refresh_netclass.py",
        "files": {name: hashlib.sha256(body).hexdigest() for name, body in sorted(files.items())},
        "sources": meta,
    }
    files["manifest.json"] = (json.dumps(manifest, indent=1, sort_keys=True) + "\n").encode()
    args.out.mkdir(parents=True, exist_ok=True)
    for name, body in files.items():  # atomic: a reader never sees half a file
        fd, tmp = tempfile.mkstemp(dir=args.out, prefix=f".{name}.")
        with os.fdopen(fd, "wb") as fh:
            fh.write(body)
        os.chmod(tmp, 0o644)  # mkstemp creates 0600; the data is public
        os.replace(tmp, args.out / name)
    n_host = files["hosting_asns.csv"].count(b"\n") - 1
    n_mob = files["mobile_asns.csv"].count(b"\n") - 1
    print(f"{manifest['version']}: {n_host} hosting ASNs, {n_mob} carrier ASNs -> {args.out}",
          file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
