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


def logging_config(level: str, fmt: str) -> dict[str, Any] | None:
    """A dictConfig for mode/Faust's Worker; None keeps Faust's console format."""
    if fmt.lower() != "json":
        return None
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"json": {"()": JsonFormatter}},
        "handlers": {"default": {"class": "logging.StreamHandler", "formatter": "json",
                                 "stream": "ext://sys.stderr", "level": level.upper()}},
        "root": {"level": level.upper(), "handlers": ["default"]},
    }
