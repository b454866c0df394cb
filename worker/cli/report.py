"""`sessionwarden report` and `sessionwarden diff`: the analyst's view of replays."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

from worker.cli.options import add_data_options, add_json_option, decision_settings

BUILTIN = "builtin"


def cmd_report(args: argparse.Namespace) -> int:
    from worker.report.render import build_report  # noqa: PLC0415 - keep `--help` fast

    out = Path(args.out_dir)
    built = build_report(out, timelines=not args.no_timelines)
    if built.note:
        print(f"report: {built.note}", file=sys.stderr)
    print(f"report: {built.path} ({built.size / 1e6:.1f} MB, {built.sessions:,} acted-on "
          f"sessions, {built.timelines} timelines from the {built.timeline_source}) in "
          f"{built.seconds:.1f}s", file=sys.stderr)
    print(built.path)
    return 0


def cmd_diff(args: argparse.Namespace) -> int:
    from worker.cli.terminal import diff_summary, wants_json  # noqa: PLC0415
    from worker.codec import dumps_pretty  # noqa: PLC0415
    from worker.errors import CouldNotRun  # noqa: PLC0415
    from worker.report import DIFF_FILE  # noqa: PLC0415
    from worker.report.diff import compare, digest_outputs  # noqa: PLC0415

    if args.outputs and args.files:
        raise CouldNotRun("give either input FILEs (replay under two policies) or "
                          "--outputs BASE_DIR CANDIDATE_DIR, not both")
    if args.outputs:
        base_dir, out = (Path(p) for p in args.outputs)
        diff = compare(digest_outputs(base_dir, str(base_dir)), digest_outputs(out, str(out)))
    elif args.files:
        if args.out is None:
            raise CouldNotRun("diff over input files needs --out DIR (the candidate's outputs)")
        out = Path(args.out)
        diff = _diff_inputs(args, out)
    else:
        raise CouldNotRun("nothing to compare: give input FILEs with --policy, or --outputs "
                          "BASE_DIR CANDIDATE_DIR")
    _write_atomically(out / DIFF_FILE, dumps_pretty(diff))
    report = None
    if args.report:
        from worker.report.render import build_report  # noqa: PLC0415

        report = build_report(out).path
        print(f"report: {report}", file=sys.stderr)
    if wants_json(args.json):
        sys.stdout.write(dumps_pretty(diff).decode())
    else:
        diff_summary(diff, out, report)
    return 0


def _diff_inputs(args: argparse.Namespace, out: Path) -> dict[str, Any]:
    """One pass over the inputs under the base and the candidate policy."""
    from worker.about import run_facts, startup_line  # noqa: PLC0415
    from worker.enrich import Enricher  # noqa: PLC0415
    from worker.inputs import check_inputs  # noqa: PLC0415
    from worker.policy_file import load_policy  # noqa: PLC0415
    from worker.report.diff import compare, replay_two  # noqa: PLC0415
    from worker.report.manifest import make_manifest  # noqa: PLC0415
    from worker.settings import DecisionSettings  # noqa: PLC0415
    from worker.signals.tokens import Signer  # noqa: PLC0415

    inputs = check_inputs(args.files, out)
    settings = decision_settings(args)
    candidate = load_policy(settings.policy_file)
    if args.base_policy == BUILTIN:
        base = load_policy(None)
    elif args.base_policy:
        base = load_policy(Path(args.base_policy))
    else:
        base = load_policy(DecisionSettings().policy_file)
    if base.version == candidate.version:
        print(f"warning: the base and candidate policies are the same ({base.version}); "
              "give --policy CANDIDATE and --base-policy BASE", file=sys.stderr)
    enricher = Enricher.from_settings(settings)
    signer = Signer.from_settings(settings, ephemeral_ok=True)
    facts = run_facts(candidate, enricher)
    print(startup_line(facts), file=sys.stderr)
    started = time.perf_counter()
    a, b = replay_two(inputs, out, base, candidate, enricher, settings.input_format, signer,
                      make_manifest(settings, inputs, facts))
    print(f"replayed {a.summary['events_read']:,} records under two policies in "
          f"{time.perf_counter() - started:.2f}s -> {out}", file=sys.stderr)
    return compare(a, b)


def _write_atomically(path: Path, data: bytes) -> None:
    from worker.errors import CouldNotRun  # noqa: PLC0415

    tmp = path.with_name(f".{path.name}.tmp")
    try:
        tmp.write_bytes(data)
        tmp.replace(path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise CouldNotRun(f"cannot write {path}: {exc.strerror}") from None


def add_report_commands(sub: Any) -> None:
    p = sub.add_parser("report", help="write OUT_DIR/report.html about a replay",
                       description="Build a self-contained HTML report (no network needed) "
                                   "of a replay output directory: headline counts, decisions "
                                   "over time, top sessions/users/networks, acted-on sessions "
                                   "with their timelines, dead letters, policy and data "
                                   "versions, and the policy diff when diff.json is there.")
    p.add_argument("out_dir", metavar="OUT_DIR", help="a `replay --out` directory")
    p.add_argument("--no-timelines", action="store_true",
                   help="do not re-read the input for per-session timelines")
    p.set_defaults(func=cmd_report)

    d = sub.add_parser("diff", help="backtest a policy: which sessions' decisions change",
                       description="Replay input FILEs once under a base and a candidate "
                                   "policy (the candidate's outputs go to --out), or compare "
                                   "two replay output directories (--outputs); writes "
                                   "diff.json into the candidate's directory.")
    d.add_argument("files", nargs="*", metavar="FILE", help="input files, or - for stdin")
    d.add_argument("--base-policy", metavar="FILE",
                   help=f"the policy in force ('{BUILTIN}' for the defaults; default: "
                        "SESSIONWARDEN_POLICY_FILE or the defaults)")
    d.add_argument("--out", metavar="DIR", help="output directory of the candidate policy")
    d.add_argument("--outputs", nargs=2, metavar=("BASE_DIR", "CANDIDATE_DIR"),
                   help="compare two existing replay output directories instead")
    d.add_argument("--report", action="store_true", help="also write report.html")
    add_json_option(d)
    add_data_options(d)
    d.set_defaults(func=cmd_diff)
