"""Logging: every line about a request carries its id; optionally one JSON object per line."""

from __future__ import annotations

import contextvars
import json
import logging
import sys
from datetime import UTC, datetime
from typing import Any

request_id_var: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="-")


class RequestIdFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = request_id_var.get()
        return True


ACCESS_FIELDS = "access"  # the `extra` key under which an access line's fields travel


def access_line(fields: dict[str, Any]) -> str:
    """An access line as text: METHOD PATH STATUS SECONDSs [model=M] [tokens=P+C]."""
    text = f"{fields['method']} {fields['path']} {fields['status']} {fields['duration_s']:.3f}s"
    if fields.get("model"):
        text += f" model={fields['model']}"
    if fields.get("prompt_tokens") is not None:
        text += f" tokens={fields['prompt_tokens']}+{fields['completion_tokens']}"
    return text


class JsonFormatter(logging.Formatter):
    """One JSON object per line, its time in ISO-8601 UTC; an access line's fields are fields."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "request_id": getattr(record, "request_id", "-"),
            "message": record.getMessage(),
        }
        fields = getattr(record, ACCESS_FIELDS, None)
        if isinstance(fields, dict):
            entry.update(fields)
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


def configure_logging(level: str, log_format: str = "text") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(RequestIdFilter())
    if log_format == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
