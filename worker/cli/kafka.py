"""The Kafka commands: `sessionwarden worker` and `sessionwarden produce`.

Faust and aiokafka are imported inside the commands, so `replay` (and
`--help`) never import them.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import logging.config
import sys
from pathlib import Path
from typing import Any

from worker.cli.options import add_data_options, settings_from_args
from worker.errors import CouldNotRun
from worker.formats import FORMATS

log = logging.getLogger("sessionwarden.worker")


def cmd_worker(args: argparse.Namespace) -> int:
    """Validate everything, reach the broker, verify topics, then run Faust until SIGTERM."""
    import faust  # noqa: PLC0415

    from worker.about import run_facts, startup_line, test_data_warning  # noqa: PLC0415
    from worker.kafka.app import create_app  # noqa: PLC0415
    from worker.kafka.startup import prepare_topics  # noqa: PLC0415
    from worker.logs import logging_config  # noqa: PLC0415
    from worker.pipeline import Pipeline  # noqa: PLC0415

    settings = settings_from_args(args)  # 1. configuration: before Kafka is touched
    pipeline = Pipeline.from_settings(settings)
    _ensure_data_dir(settings.data_dir)
    logging.config.dictConfig(logging_config(settings.log_level, settings.log_format))
    facts = run_facts(pipeline.policy, pipeline.enricher, libraries=True)
    log.info(startup_line(facts), extra={"startup": facts})
    warning = test_data_warning(facts)
    if warning:
        log.warning(warning)
    # mode/Faust use the thread's current loop: create it before the app.
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    partitions = loop.run_until_complete(prepare_topics(settings))  # 2. broker and topics
    settings = settings.model_copy(update={"topic_partitions": partitions})
    app = create_app(settings, pipeline=pipeline)
    worker = faust.Worker(app, loglevel=settings.log_level, loop=loop,
                          quiet=settings.log_format == "json",
                          logging_config=logging_config(settings.log_level, settings.log_format))
    worker.execute_from_commandline()  # SIGTERM: stop, wait for batches, commit (and exit)
    raise AssertionError("unreachable: the Faust worker exits the process")


def _ensure_data_dir(path: Path) -> None:
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise CouldNotRun(f"cannot create the data directory {path} "
                          f"(SESSIONWARDEN_DATA_DIR): {exc.strerror}") from None


def cmd_produce(args: argparse.Namespace) -> int:
    from worker.codec import dumps_pretty  # noqa: PLC0415
    from worker.inputs import check_inputs  # noqa: PLC0415
    from worker.kafka.produce import produce  # noqa: PLC0415

    inputs = check_inputs(args.files)
    settings = settings_from_args(args)
    logging.basicConfig(level=logging.WARNING, format="%(message)s", stream=sys.stderr)
    topic = args.topic or settings.input_topic
    summary = asyncio.run(produce(inputs, settings, topic, settings.input_format))
    sys.stdout.write(dumps_pretty(summary.as_dict()).decode())
    print(f"sent {summary.messages_sent:,} messages ({summary.keyed:,} keyed, "
          f"{summary.unkeyed:,} unkeyed) from {summary.records_read:,} records in "
          f"{summary.seconds:.2f}s -> {topic}", file=sys.stderr)
    return 0


def add_kafka_commands(sub: Any) -> None:
    """Register `worker` and `produce` on the main parser's subcommands."""
    p = sub.add_parser("worker", help="run the streaming worker on Kafka (Faust)",
                       description="Consume session events, publish commands, audit events, "
                                   "alerts and dead letters. Settings come from "
                                   "SESSIONWARDEN_* environment variables; flags override.")
    p.add_argument("--broker", help="bootstrap servers, e.g. kafka://localhost:9092")
    p.add_argument("--app-id", help="Faust app id = consumer group id")
    p.add_argument("--data-dir", help="local state directory (RocksDB)")
    p.add_argument("--store", help="rocksdb:// (default) or memory://")
    p.add_argument("--input-topic", help="topic to consume (default session-events)")
    p.add_argument("--partitions", type=int, help="partitions for topics created at start-up")
    p.add_argument("--batch-size", type=int, help="max events per batch")
    p.add_argument("--web-port", type=int, help="port of /health and /metrics")
    p.add_argument("--web-host", help="bind address of the web server")
    p.add_argument("--no-web", action="store_true", help="no web server")
    p.add_argument("--no-create-topics", action="store_true",
                   help="do not create missing topics at start-up")
    p.add_argument("--log-level", help="DEBUG|INFO|WARNING|ERROR")
    p.add_argument("--log-format", choices=("json", "text"), help="log line format")
    add_data_options(p)
    p.set_defaults(func=cmd_worker)

    p = sub.add_parser("produce", help="send log files to the input topic, keyed by session")
    p.add_argument("files", nargs="+", metavar="FILE")
    p.add_argument("--broker", help="bootstrap servers, e.g. localhost:9092")
    p.add_argument("--topic", help="target topic (default: the input topic setting)")
    p.add_argument("--format", choices=FORMATS, help="force the input format (default: auto)")
    p.add_argument("--partitions", type=int, help="partitions if the topic must be created")
    p.add_argument("--no-create-topics", action="store_true",
                   help="do not create a missing topic")
    p.set_defaults(func=cmd_produce)
