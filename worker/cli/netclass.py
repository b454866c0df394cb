"""`sessionwarden netclass`: show how the classification data sees ASNs and addresses.

Lets a user check the bundled lists, a refreshed copy or their own
``overrides.csv`` (docs/netclass.md) before a policy relies on them.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import asdict
from typing import Any

from worker.cli.options import settings_from_args


def cmd_netclass(args: argparse.Namespace) -> int:
    from worker.codec import dumps_line  # noqa: PLC0415 - keep `--help` fast
    from worker.enrich import Enricher  # noqa: PLC0415
    from worker.netclass import NetClassifier  # noqa: PLC0415

    settings = settings_from_args(args)
    for name in ("netclass_dir", "isp_db", "connection_type_db"):
        if getattr(args, name, None) is not None:
            setattr(settings, name, getattr(args, name))
    classifier = NetClassifier.from_settings(settings)
    out = sys.stdout.buffer
    out.write(dumps_line({"version": classifier.version, **classifier.counts()}))
    for text in args.asn:
        try:
            asn = int(text.upper().removeprefix("AS"))
        except ValueError:
            print(f"sessionwarden: not an AS number: {text}", file=sys.stderr)
            return 2
        out.write(dumps_line({"asn": asn, **asdict(classifier.classify(asn))}))
    if args.ip:
        enricher = Enricher.from_settings(settings)
        for ip in args.ip:
            try:
                net = enricher.network(ip, None)
            except ValueError:
                print(f"sessionwarden: not an IP address: {ip}", file=sys.stderr)
                return 2
            out.write(dumps_line({"ip": ip, "asn": net.asn, "asn_source": net.asn_source,
                                  "anonymous": list(net.anonymous),
                                  **asdict(classifier.classify_ip(ip, net.asn))}))
    return 0


def add_netclass_command(sub: Any) -> None:
    p = sub.add_parser("netclass", help="classify ASNs/addresses (hosting, mobile, operator)")
    p.add_argument("asn", nargs="*", metavar="ASN", help="AS numbers, e.g. 16509 or AS45143")
    p.add_argument("--ip", action="append", default=[], metavar="IP",
                   help="also classify this address (enriched as replay would)")
    p.add_argument("--netclass-dir", dest="netclass_dir",
                   help="classification data directory (default: bundled data/netclass)")
    p.add_argument("--isp-db", dest="isp_db", help="MaxMind-format GeoIP2-ISP database")
    p.add_argument("--connection-type-db", dest="connection_type_db",
                   help="MaxMind-format GeoIP2-Connection-Type database")
    p.add_argument("--asn-db", help="MaxMind-format ASN database (for --ip)")
    p.add_argument("--pyasn-db", help="pyasn IPASN data file (for --ip)")
    p.set_defaults(func=cmd_netclass)
