"""Structured (JSON Lines) logging for the worker.

Log shippers (Fluent Bit, Vector, Loki) parse one JSON object per line
without regexes, and `extra={...}` fields stay queryable instead of being
flattened into the message text.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import orjson

_STANDARD = frozenset(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {
    "message", "asctime", "color_message"}


class JsonFormatter(logging.Formatter):
    """One compact JSON object per record: ts, level, logger, msg, extras, exc."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
                  + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        out.update({key: value for key, value in vars(record).items()
                    if key not in _STANDARD and not key.startswith("_")})
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        # Not on the wire, so not via worker.codec: here anything goes (repr).
        return orjson.dumps(out, default=repr).decode()


TEXT_FORMAT = "[%(asctime)s] [%(process)d] [%(levelname)s] %(name)s: %(message)s"


def logging_config(level: str, fmt: str) -> dict[str, Any]:
    """A dictConfig for mode/Faust's Worker: JSON or text lines, repeats rate-limited."""
    json_lines = fmt.lower() == "json"
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"json": {"()": JsonFormatter}, "text": {"format": TEXT_FORMAT}},
        "filters": {"repeats": {"()": RepeatFilter}},
        "handlers": {"default": {"class": "logging.StreamHandler",
                                 "formatter": "json" if json_lines else "text",
                                 "filters": ["repeats"],
                                 "stream": "ext://sys.stderr", "level": level.upper()}},
        "root": {"level": level.upper(), "handlers": ["default"]},
    }


class RepeatFilter(logging.Filter):
    """Lets a repeated log message through once per `window` seconds, with a count.

    During a broker outage aiokafka and Faust log the same connection error
    for every attempt: one worker wrote 17,814 ERROR lines (2.4 MB) in 13 s.
    The first occurrence of a message (same logger, level and format string)
    passes; repeats within the window are counted and dropped, and the next
    one after the window carries `repeated` = how many were dropped.
    """

    def __init__(self, window: float = 10.0, max_keys: int = 1024) -> None:
        super().__init__()
        self.window = window
        self.max_keys = max_keys
        self._seen: dict[tuple[str, int, str], tuple[float, int]] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < logging.WARNING:
            return True
        # Our own lines are few and deliberate (one per start-up attempt, say):
        # only identical ones are held back. Libraries' lines are grouped by
        # their format string, whatever the varying arguments.
        text = record.getMessage() if record.name.startswith("sessionwarden") else record.msg
        key = (record.name, record.levelno, str(text))
        now = record.created
        last = self._seen.get(key)
        if last is not None and now - last[0] < self.window:
            self._seen[key] = (last[0], last[1] + 1)
            return False
        if last is not None and last[1]:
            record.repeated = last[1]
        if len(self._seen) >= self.max_keys and key not in self._seen:
            self._seen.clear()
        self._seen[key] = (now, 0)
        return True
