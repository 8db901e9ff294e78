"""One log line per step event, so `kubectl logs` tells the story of each attempt.

Lines go to stderr through Python logging (logger `continuable`): readable on a terminal, one
JSON object per line when `CONTINUABLE_LOG_FORMAT=json`. A job that configures logging itself
keeps its own handlers.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from typing import Any

logger = logging.getLogger("continuable")

ENV_LOG_FORMAT = "CONTINUABLE_LOG_FORMAT"


class _HumanFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        text = f"continuable: {record.getMessage()}"
        if record.exc_info:
            text += "\n" + self.formatException(record.exc_info)
        return text


class _JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        fields: dict[str, Any] = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "message": record.getMessage(),
            **getattr(record, "fields", {}),
        }
        if record.exc_info:
            fields["traceback"] = self.formatException(record.exc_info)
        return json.dumps(fields, default=str)


def configure() -> None:
    """Give the `continuable` logger a stderr handler unless someone configured one."""
    if logger.handlers:
        return
    handler = logging.StreamHandler(sys.stderr)
    json_lines = os.environ.get(ENV_LOG_FORMAT, "").lower() == "json"
    handler.setFormatter(_JsonFormatter() if json_lines else _HumanFormatter())
    logger.addHandler(handler)
    if logger.level == logging.NOTSET:
        logger.setLevel(logging.INFO)
    logger.propagate = False


def event(
    name: str, message: str, *, level: int = logging.INFO, exc: bool = False, **fields: Any
) -> None:
    """Log `message`, with `event=name` and `fields` as structured data for JSON output."""
    logger.log(level, message, exc_info=exc, extra={"fields": {"event": name, **fields}})
