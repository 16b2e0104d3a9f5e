"""The service's log: one line per record on stderr, as text or JSON (``[logging]``).

Every record written while an HTTP request is served carries that request's id
(``request_id``; pbx_bridge/request_context.py), as do the access log lines. SIGHUP sets
the level again from the config file (:func:`set_level`).
"""

from __future__ import annotations

import json
import logging
import sys
import time

from pbx_bridge.config import LoggingSettings, Settings
from pbx_bridge.request_context import current_request_id

__all__ = ["set_level", "setup_logging"]


class _RequestIdFilter(logging.Filter):
    """Gives each record ``request_id``: the one it was logged with (the access log's
    ``extra``), else the request being served, else None."""

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "request_id", None) is None:
            record.request_id = current_request_id.get()
        return True


class _TextFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        request_id = getattr(record, "request_id", None)
        return f"{line} [request {request_id}]" if request_id else line


class _JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        out = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        request_id = getattr(record, "request_id", None)
        if request_id:
            out["request_id"] = request_id
        if record.exc_info:
            out["exception"] = self.formatException(record.exc_info)
        return json.dumps(out, ensure_ascii=False)


def setup_logging(settings: Settings) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(_RequestIdFilter())
    handler.setFormatter(_JsonFormatter() if settings.logging.is_json else _TextFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(settings.logging.level)


def set_level(logging_settings: LoggingSettings) -> bool:
    """Apply ``[logging] level`` (SIGHUP); True if it changed."""
    root = logging.getLogger()
    new = logging.getLevelName(logging_settings.level)
    if root.level == new:
        return False
    root.setLevel(new)
    return True
