"""Logging: every line about a request carries its id; optionally one JSON object per line."""

from __future__ import annotations

import atexit
import contextvars
import copy
import json
import logging
import logging.handlers
import sys
from datetime import UTC, datetime
from queue import SimpleQueue
from typing import Any, TextIO

request_id_var: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="-")


class RequestIdFilter(logging.Filter):
    """Tags a record with the request id of the task that logs it (where the record was made:
    a record already tagged keeps its id)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "request_id"):
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


QUEUED_LINES_LIMIT = 10_000  # lines waiting for a log reader that fell behind; later ones are dropped


class _Handoff(logging.handlers.QueueHandler):
    """Hands a record to the log's writer thread, its message merged while its arguments are
    as they were logged and its exception left for the writer to format. While the writer is
    QUEUED_LINES_LIMIT lines behind, lines are dropped (and counted in a line of their own once
    there is room), so a reader that stopped costs bounded memory."""

    queue: SimpleQueue[logging.LogRecord]

    def __init__(self, records: SimpleQueue[logging.LogRecord]) -> None:
        super().__init__(records)
        self.dropped = 0

    def prepare(self, record: logging.LogRecord) -> logging.LogRecord:
        record = copy.copy(record)
        record.msg, record.args = record.getMessage(), None
        return record

    def enqueue(self, record: logging.LogRecord) -> None:
        if self.queue.qsize() >= QUEUED_LINES_LIMIT:
            self.dropped += 1
            return
        if self.dropped:
            self.queue.put_nowait(self.drop_notice())
        self.queue.put_nowait(record)

    def drop_notice(self) -> logging.LogRecord:
        """The line that counts the lines dropped since the last one (and resets the count)."""
        notice = logging.LogRecord(__name__, logging.WARNING, __file__, 0, "", None, None)
        notice.msg = f"{self.dropped} log lines dropped: whatever reads the gateway's log fell behind"
        notice.request_id = "-"
        self.dropped = 0
        return notice


_writer: tuple[_Handoff, logging.handlers.QueueListener] | None = None


def configure_logging(level: str, log_format: str = "text", stream: TextIO | None = None) -> None:
    """Log lines to stderr (or `stream`). Callers only queue a record: formatting it and
    writing it happen in a writer thread, so a log reader that falls behind (a full pipe
    blocks the write) never stalls the event loop."""
    global _writer
    stop_logging()
    writer = logging.StreamHandler(stream or sys.stderr)
    writer.addFilter(RequestIdFilter())  # for the lines written directly, after stop_logging
    if log_format == "json":
        writer.setFormatter(JsonFormatter())
    else:
        writer.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s"))
    records: SimpleQueue[logging.LogRecord] = SimpleQueue()
    handoff = _Handoff(records)
    handoff.addFilter(RequestIdFilter())  # the request id is the logging task's: read when queued
    root = logging.getLogger()
    root.handlers[:] = [handoff]
    root.setLevel(level)
    listener = logging.handlers.QueueListener(records, writer)
    listener.start()
    _writer = handoff, listener


def stop_logging() -> None:
    """Write out what is queued and stop the writer thread; later lines are written directly.
    Before a process prints its last words or exits."""
    global _writer
    if _writer is None:
        return
    (handoff, listener), _writer = _writer, None
    logging.getLogger().handlers[:] = list(listener.handlers)  # first: no line is queued after the last
    listener.stop()
    if handoff.dropped:
        for handler in listener.handlers:
            handler.handle(handoff.drop_notice())


atexit.register(stop_logging)  # what is still queued when the interpreter exits
