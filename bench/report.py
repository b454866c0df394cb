"""results.json -> BENCHMARKS.md: the figures, the targets, and how they were measured."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

TARGETS: tuple[tuple[str, str, str, float, str], ...] = (
    # (label, section, key (dots go deeper), target, comparison): issue 11's targets
    ("worker events/s / the previous worker's, same rounds", "kafka", "baseline.speedup", 3, ">="),
    ("worker process CPU per event (µs)", "kafka", "cpu_us_per_event", 150, "<="),
    ("worker / aiokafka passthrough", "kafka", "ratio_to_passthrough", 0.35, ">="),
    ("p99 input -> command at half the measured capacity (ms)", "kafka", "latency_ms_p99",
     100, "<"),
    ("two workers: CPU-per-event efficiency", "scale", "cpu_efficiency", 0.9, ">="),
    ("replay / orjson round trip (one process)", "replay", "ratio_to_orjson", 0.25, ">="),
    ("replay --jobs 2 / --jobs 1", "replay", "jobs2_speedup", 1.6, ">="),
    ("RSS growth per session (bytes, 50,000 sessions)", "memory", "bytes_per_session", 1024,
     "<="),
    ("stored bytes per baseline", "memory", "stored_bytes_per_baseline", 300, "<="),
    ("changelog records smaller than JSON (x)", "memory", "changelog_shrink_vs_json", 2, ">="),
)


def _lookup(results: dict[str, Any], section: str, key: str) -> Any:
    value: Any = results.get(section) or {}
    for part in key.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return value


def check_targets(results: dict[str, Any]) -> list[dict[str, Any]]:
    """Each stated target with its measured value and whether it is met (None: not run)."""
    rows: list[dict[str, Any]] = []
    for label, section, key, target, op in TARGETS:
        value = _lookup(results, section, key)
        met: bool | None = None
        if isinstance(value, int | float):
            met = {">=": value >= target, "<": value < target, "<=": value <= target}[op]
        rows.append({"target": label, "key": f"{section}.{key}", "goal": f"{op} {target:g}",
                     "value": value, "met": met})
    return rows


def _fmt(value: Any) -> str:
    if value is None:
        return "not run"
    if isinstance(value, float) and value < 10:
        return f"{value:.3f}".rstrip("0").rstrip(".")
    if isinstance(value, int | float):
        return f"{value:,.0f}"
    return str(value)


def _table(header: list[str], rows: list[list[Any]]) -> list[str]:
    out = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    out += ["| " + " | ".join(_fmt(c) if not isinstance(c, str) else c for c in r) + " |"
            for r in rows]
    return out


def render(results: dict[str, Any]) -> str:
    """The Markdown page (deterministic for given results)."""
    m, v = results["machine"], results["versions"]
    lines = [
        "# Benchmarks",
        "",
        f"Measured {results['date']} with `{results['command']}` "
        f"({results['mode']} mode, {results['duration_s']:.0f} s). "
        "Regenerate with `make bench` (full) or `make bench-quick` (small, for development). "
        "Raw figures: [bench/results.json](bench/results.json).",
        "",
        f"**Machine:** {m['cpu_model']}, {m['cores']} cores, {m['ram_gib']} GiB RAM, {m['os']}; "
        f"load average {m['loadavg_at_start']} at start, {m.get('loadavg_at_end')} at the "
        "end (other jobs were running: absolute numbers are noisy, ratios are measured side "
        "by side).",
        "",
        f"**Versions:** Python {v['python']} ({v['python_build']}), orjson {v['orjson']}, "
        f"faust-streaming {v['faust-streaming']}, aiokafka {v['aiokafka']}, "
        f"rocksdict {v['rocksdict']}, ua-parser {v['ua-parser']}, "
        f"Apache Kafka {v['kafka_broker']} (single node, KRaft, {v['java']}).",
        "",
        "## Against the targets",
        "",
    ]
    rows = [[r["target"], r["goal"], r["value"],
             "not run" if r["met"] is None else ("yes" if r["met"] else "**no**")]
            for r in results["targets"]]
    lines += _table(["target", "goal", "measured", "met"], rows)
    lines += ["", "## Figures", ""]
    lines += _before_after_section(results.get("kafka"))
    lines += _replay_section(results.get("replay"))
    lines += _stages_section(results.get("replay"), results.get("kafka"))
    lines += _kafka_section(results.get("kafka"), results.get("scale"))
    lines += _memory_section(results.get("memory"))
    lines += _report_section(REPORT_RESULTS)
    lines += evaluation_section(EVALUATION_RESULTS)
    lines += ["## Workload", ""]
    for name, w in (results.get("workload") or {}).items():
        lines.append(f"- `{name}`: {w}")
    lines += ["", "## Method", ""]
    lines += [f"- {note}" for note in results.get("method", [])]
    if results.get("errors"):
        lines += ["", "## Errors", ""]
        lines += [f"- {k}: {e}" for k, e in results["errors"].items()]
    return "\n".join(lines) + "\n"


STAGES_BEFORE = {"decode": 33.8, "enrich": 10.3, "evaluate": 53.8, "serialize": 0.7,
                 "bookkeeping": 38.8, "pipeline": 137.3}
"""Per-stage CPU (µs/event) before issue 11 (commit fcec0b4, `bench.profile_replay` on the
first 50,000 lines of the replay file, mean of two rounds; docs/perf-profile.md)."""
STAGE_NAMES = {
    "decode": "decode (JSON, checks, event)",
    "enrich": "enrich (IP, user agent)",
    "evaluate": "evaluate (detectors, decisions, records)",
    "serialize": "serialize (orjson of the records)",
    "bookkeeping": "bookkeeping (counters, store, signing, garbage collector)",
    "pipeline": "**whole pipeline** (`Pipeline.process`)",
}


def _before_after_section(k: dict[str, Any] | None) -> list[str]:
    """The worker before and after, measured in the same interleaved rounds."""
    base = (k or {}).get("baseline")
    if not k or not base or base.get("events_per_s") is None:
        return []
    passthrough = k.get("passthrough_events_per_s") or 0
    rows = [["events/s", base["events_per_s"], k["events_per_s"]],
            ["process CPU per event (µs)", base.get("cpu_us_per_event"),
             k.get("cpu_us_per_event")],
            ["broker CPU per event (µs)", base.get("broker_cpu_us_per_event"),
             k.get("broker_cpu_us_per_event")],
            ["ratio to the aiokafka passthrough",
             round(base["events_per_s"] / passthrough, 3) if passthrough else "",
             k.get("ratio_to_passthrough")]]
    return ["### before / after: the worker", "",
            f"The previous worker (`{base['command']}`) and this one in the same interleaved "
            "rounds on the same pre-filled topic (medians; see the kafka section).", "",
            *_table(["", "before", "after"], rows), ""]


def _stages_section(r: dict[str, Any] | None, k: dict[str, Any] | None) -> list[str]:
    """Where the CPU goes: the pipeline's stages, and the worker's cost beyond them."""
    stages = (r or {}).get("stages")
    if not stages:
        return []
    cpu = stages["cpu_us_per_event"]
    out = ["### where the CPU goes (µs of process CPU per event)", "",
           f"`python -m bench.profile_replay` on the first {stages['lines']:,} lines of the "
           "replay file: each stage runs alone over the whole input, once, caches cold. "
           "\"Before\" is the code before issue 11 (commit fcec0b4, same tool and input, "
           "docs/perf-profile.md).", *([stages["note"]] if stages.get("note") else []), ""]
    rows = [[STAGE_NAMES.get(name, name), STAGES_BEFORE.get(name, ""), value]
            for name, value in cpu.items()]
    if r and r.get("orjson_cpu_us_per_event") is not None:
        rows.append(["orjson decode + encode loop (the replay target's yardstick)", "",
                     r["orjson_cpu_us_per_event"]])
    if k and k.get("cpu_us_per_event") is not None and cpu.get("pipeline"):
        beyond = round(k["cpu_us_per_event"] - cpu["pipeline"], 1)
        rows += [["worker process, all threads (kafka run)", "", k["cpu_us_per_event"]],
                 ["worker beyond the pipeline: Kafka client and Faust (fetch, Messages, "
                  "acks, commits), RocksDB reads/writes, baseline codec, delivery", "", beyond]]
        if k.get("passthrough_cpu_us_per_event") is not None:
            rows.append(["aiokafka passthrough (consume + produce only)", "",
                         k["passthrough_cpu_us_per_event"]])
    out += _table(["stage", "before", "now"], rows)
    return [*out, ""]


def _replay_section(r: dict[str, Any] | None) -> list[str]:
    if not r:
        return ["### replay", "", "not run", ""]
    out = ["### replay (file to files, one process)", "",
           f"Median of {len(r['rounds'])} interleaved rounds on {r['events']:,} events "
           f"(`{r['input']}`); process start-up (one-line replay) is "
           f"{r['process_startup_s']} s and is included.", ""]
    rows = [["sessionwarden replay", r["events_per_s"], ""],
            ["orjson decode + encode loop", r["orjson_roundtrip_events_per_s"], ""],
            ["ratio (median of per-round ratios)", "", r["ratio_to_orjson"]]]
    if r.get("cpu_us_per_event") is not None:
        rows += [["replay process CPU per event (µs)", "", r["cpu_us_per_event"]]]
    if r.get("jobs2_speedup") is not None:
        rows += [["`--jobs 2` / `--jobs 1` (wall, same file)", "", r["jobs2_speedup"]]]
    full = r.get("full_file")
    if full:
        rows += [[f"full file, {full['events']:,} events, one pair: replay",
                  full["events_per_s"], ""],
                 ["full file: orjson loop", full["orjson_roundtrip_events_per_s"], ""],
                 ["full file: ratio", "", full["ratio_to_orjson"]]]
    out += _table(["run", "events/s", "ratio"], rows)
    return [*out, ""]


def _kafka_section(k: dict[str, Any] | None, s: dict[str, Any] | None) -> list[str]:
    out = ["### kafka (one worker process, end to end through the local broker)", ""]
    if not k:
        return [*out, "not run", ""]
    rows: list[list[Any]] = []
    if "rounds" in k:
        out += [f"Median of {len(k['rounds'])} interleaved rounds on {k['events']:,} "
                f"pre-filled events in {k['partitions']} partitions "
                f"({k['expected_outputs']:,} output records per run).", ""]
        rows += [["sessionwarden worker", k["events_per_s"], ""],
                 ["worker process CPU per event, all threads (µs)", "",
                  k.get("cpu_us_per_event")],
                 ["broker CPU per event with the worker (µs)", "",
                  k.get("broker_cpu_us_per_event")],
                 ["aiokafka consume+produce passthrough", k["passthrough_events_per_s"], ""],
                 ["passthrough CPU per event (µs)", "", k.get("passthrough_cpu_us_per_event")],
                 ["ratio (median of per-round ratios)", "", k["ratio_to_passthrough"]]]
        base = k.get("baseline")
        if base:
            rows += [[f"previous worker (`{base['command']}`), same rounds",
                      base["events_per_s"], ""],
                     ["previous worker CPU per event (µs)", "", base["cpu_us_per_event"]],
                     ["speed-up over the previous worker", "", base["speedup"]]]
        if k.get("rounds_dropped") is not None:
            out += [f"Rounds where other processes used more than "
                    f"{100 * k.get('other_cpu_limit', 0.1):.0f} % of the machine: "
                    f"{k['rounds_dropped']} of {len(k['rounds'])} (when every round is over "
                    "the limit, all are used and the figures are noisier).", ""]
    lat = k.get("at_rate")
    if lat:
        rows += [[f"latency p50 at {lat['offered_events_per_s']:,}/s offered (ms)", "",
                  k.get("latency_ms_p50")],
                 ["latency p99 (ms)", "", k.get("latency_ms_p99")],
                 ["latency max (ms)", "", lat.get("latency_ms_max")]]
    low = k.get("at_low_rate")
    if low:
        rows += [[f"latency p50 / p99 at {low['offered_events_per_s']:,}/s offered (ms)", "",
                  f"{low['latency_ms_p50']} / {low['latency_ms_p99']}"]]
    heavy = k.get("at_rate_every_event_a_command")
    if heavy:
        rows += [[f"latency p50 / p99, every event a command, at "
                  f"{heavy['offered_events_per_s']:,}/s offered (ms)", "",
                  f"{heavy['latency_ms_p50']} / {heavy['latency_ms_p99']}"]]
    out += _table(["run", "events/s", "value"], rows)
    if lat:
        out += ["", f"At-rate run: {lat['seconds']} s measured after {lat['warmup_s']} s "
                f"warm-up, sent {lat['achieved_send_rate']:,.0f} events/s; "
                f"{lat['commands_received']:,} of "
                f"{lat.get('commands_expected', lat['measured_events']):,} commands "
                f"arrived ({lat['missing']:,} missing; negative: re-sent copies) at "
                f"{lat.get('completed_events_per_s', 0):,.0f} events/s: when that is below "
                "the offered load the worker is saturated, a backlog builds up and the "
                "latency grows with the length of the run. CPU per event in that run "
                f"(µs): {lat.get('cpu_us_per_event')}; the machine was "
                f"{100 * (lat.get('machine_busy_share') or 0):.0f} % busy."]
    out += ["", "### scale (one consumer group, "
            f"{(s or {}).get('partitions', '?')} partitions)", ""]
    if s:
        cold = s.get("cold", {})
        out += [f"Median of {len(s['rounds'])} interleaved rounds on {s['events']:,} events. "
                "Steady state counts only the work left once every worker is ready; "
                "'from first ready' includes the second worker's join and rebalance.", ""]
        out += _table(["workers", "events/s (steady)", "events/s (from first ready)"],
                      [["1", s["one_worker_events_per_s"], cold.get("one_worker_events_per_s")],
                       ["2", s["two_workers_events_per_s"],
                        cold.get("two_workers_events_per_s")],
                       ["ratio 2/1 (median of per-round ratios)", s["ratio"],
                        cold.get("ratio")]])
        if s.get("cpu_efficiency") is not None:
            out += ["", f"CPU per event: one worker {s.get('one_worker_cpu_us_per_event')} µs, "
                    f"two workers summed {s.get('two_workers_cpu_us_per_event')} µs; "
                    f"efficiency (one / two) **{s['cpu_efficiency']}** (1.0 = no extra CPU "
                    "for the second worker)."]
        pinned = s.get("pinned")
        if pinned:
            out += ["", "`taskset` cross-check (one pair: broker, bench and producer pinned to "
                    f"core 0, the workers to core 1): one worker "
                    f"{pinned['one_worker_cpu_us_per_event']} µs, two workers summed "
                    f"{pinned['two_workers_cpu_us_per_event']} µs per event; efficiency "
                    f"**{pinned['cpu_efficiency']}**."]
    else:
        out.append("not run")
    return [*out, ""]


def _memory_section(mem: dict[str, Any] | None) -> list[str]:
    out = ["### memory (per session baseline)", ""]
    if not mem:
        return [*out, "not run", ""]
    rows: list[list[Any]] = []
    w = mem.get("worker")
    if w:
        rows += [["worker RSS growth", w["bytes_per_session"], w["mib_per_100k_sessions"]],
                 ["worker RocksDB directory", w["store_bytes_per_session"],
                  w["store_mib_per_100k_sessions"]]]
    r = mem.get("replay")
    if r:
        rows += [["replay dict, deep size", r["deep_bytes_per_session"],
                  round(r["deep_bytes_per_session"] * 100_000 / 2**20, 1)],
                 ["replay process RSS growth", r["rss_bytes_per_session"],
                  round(r["rss_bytes_per_session"] * 100_000 / 2**20, 1)],
                 ["baseline as stored (table / changelog value)",
                  r["baseline_stored_bytes_avg"],
                  round(r["baseline_stored_bytes_avg"] * 100_000 / 2**20, 1)]]
        if r.get("baseline_shrink_vs_json") is not None:
            rows += [["changelog record, JSON (format 1) / format 2", "",
                      f"{r['baseline_shrink_vs_json']}x smaller"]]
    out += _table(["what", "bytes/session", "MiB per 100,000 sessions"], rows)
    sessions = (w or r or {}).get("sessions")
    out += ["", f"Measured over {sessions:,} sessions' full event streams and scaled "
            "linearly to 100,000." if sessions else ""]
    return [*out, ""]


REPORT_RESULTS = Path(__file__).resolve().parent / "report_results.json"


def _report_section(path: Path) -> list[str]:
    """The replay report on the 1M-event log (`python -m bench.report_bench`), when measured."""
    out = ["### replay report", ""]
    if not path.is_file():
        return [*out, "not run (`python -m bench.report_bench`)", ""]
    r = json.loads(path.read_text())
    rep, lean = r["report"], r["report_without_timelines"]
    out += [f"`sessionwarden report` on the replay of {r['events']:,} events / "
            f"{r['sessions']:,} sessions ({r['input_bytes'] / 1e6:,.0f} MB input, "
            f"{r['revokes']:,} revokes, {rep['acted_on_sessions']:,} acted-on sessions; "
            f"load average {r['machine']['loadavg_at_start']} at start). Raw figures: "
            "[bench/report_results.json](bench/report_results.json).", ""]
    out += _table(["report", "seconds", "size (MB)"], [
        [f"with timelines ({rep['timelines']}, re-run of the input)", rep["seconds"],
         rep["bytes"] / 1e6],
        ["without timelines (`--no-timelines`)", lean["seconds"], lean["bytes"] / 1e6]])
    return [*out, ""]


EVALUATION_RESULTS = Path(__file__).resolve().parent / "evaluation_results.json"


def evaluation_section(path: Path) -> list[str]:
    """Detection quality on the labelled corpus, before/after issue 9 (`bench.evaluation`)."""
    from bench.evaluation import compare_table  # noqa: PLC0415

    out = ["### detection quality (labelled corpus)", ""]
    if not path.is_file():
        return [*out, "not run (`python -m bench.evaluation --compare ...`)", ""]
    r = json.loads(path.read_text())
    c = r["after"]["corpus"]
    out += [f"One generated corpus (`data/generate_labelled.py`, seed {c['seed']}: "
            f"{c['events']:,} events, {c['history_days']} days of each user's history, then "
            f"{c['benign_per_scenario']} benign and {c['hijack_per_scenario']} hijacked "
            "sessions per scenario), replayed under the default policy before issue 9 "
            "(`bench/policies/before-issue-9.toml`: any ASN change revoked, the other network "
            "detectors alerted) and under today's default; scored by `sessionwarden score`. "
            "Regenerate: `python -m bench.evaluation --benign 200 --hijack 50 --compare "
            "bench/policies/before-issue-9.toml --results bench/evaluation_results.json`.", ""]
    out += compare_table(r["before"], r["after"]).splitlines()
    return [*out, ""]


def write(results: dict[str, Any], path: Path) -> None:
    path.write_text(render(results))
