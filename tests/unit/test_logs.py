from __future__ import annotations

import contextlib
import io
import json
import logging
import threading
from collections.abc import Iterator
from queue import SimpleQueue

from gateway import logs
from gateway.logs import JsonFormatter, RequestIdFilter, configure_logging, request_id_var, stop_logging


def capture(formatter: logging.Formatter) -> tuple[logging.Logger, io.StringIO]:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(RequestIdFilter())
    handler.setFormatter(formatter)
    logger = logging.getLogger(f"test.{id(stream)}")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    return logger, stream


def test_every_line_carries_the_request_id() -> None:
    logger, stream = capture(logging.Formatter("[%(request_id)s] %(message)s"))
    token = request_id_var.set("req-42")
    try:
        logger.info("streaming")
    finally:
        request_id_var.reset(token)
    logger.info("outside a request")
    assert stream.getvalue().splitlines() == ["[req-42] streaming", "[-] outside a request"]


def test_json_lines() -> None:
    logger, stream = capture(JsonFormatter())
    token = request_id_var.set("req-7")
    try:
        logger.warning("slow %s", "client")
    finally:
        request_id_var.reset(token)
    line = json.loads(stream.getvalue())
    assert line["request_id"] == "req-7" and line["message"] == "slow client" and line["level"] == "WARNING"


def test_json_times_are_iso_8601_utc_and_access_fields_are_fields() -> None:
    from datetime import datetime

    from gateway.logs import ACCESS_FIELDS, access_line

    logger, stream = capture(JsonFormatter())
    fields = {"method": "POST", "path": "/v1/chat/completions", "status": 200, "duration_s": 0.25}
    fields |= {"model": "m", "prompt_tokens": 3, "completion_tokens": 5}
    logger.info("%s", access_line(fields), extra={ACCESS_FIELDS: fields})
    line = json.loads(stream.getvalue())
    assert datetime.fromisoformat(line["time"]).utcoffset() is not None and line["time"].endswith("+00:00")
    assert {key: line[key] for key in fields} == fields
    assert line["message"] == "POST /v1/chat/completions 200 0.250s model=m tokens=3+5"


class BlockingStream(io.StringIO):
    """A log reader that has fallen behind: every write waits until `drained` is set."""

    def __init__(self) -> None:
        super().__init__()
        self.drained = threading.Event()
        self.writing = threading.Event()

    def write(self, text: str) -> int:
        self.writing.set()
        assert self.drained.wait(10)
        return super().write(text)


@contextlib.contextmanager
def configured(stream: io.StringIO, log_format: str = "text") -> Iterator[logging.Logger]:
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    configure_logging("INFO", log_format, stream)
    try:
        yield logging.getLogger("gateway.test")
    finally:
        stop_logging()
        root.handlers[:], root.level = saved


def test_a_log_reader_that_falls_behind_does_not_hold_up_the_logger() -> None:
    """A full pipe blocks the write to stderr; the event loop only queues its lines."""
    stream = BlockingStream()
    with configured(stream) as logger:
        token = request_id_var.set("req-9")
        try:
            logger.info("first %s", "line")
            assert stream.writing.wait(5)  # the writer thread is stuck in the write...
            logger.warning("second")  # ...and logging still returns at once
        finally:
            request_id_var.reset(token)
        assert stream.getvalue() == ""
        stream.drained.set()
    lines = stream.getvalue().splitlines()
    assert [line.split(" ", 2)[2] for line in lines] == [
        "INFO gateway.test [req-9] first line",
        "WARNING gateway.test [req-9] second",
    ]


def test_stopping_writes_what_is_queued_and_later_lines_go_out_directly() -> None:
    stream = io.StringIO()
    with configured(stream, "json") as logger:
        try:
            raise ValueError("boom")
        except ValueError:
            logger.exception("failed %d", 3)
        stop_logging()
        assert json.loads(stream.getvalue())["message"] == "failed 3"
        assert "ValueError: boom" in json.loads(stream.getvalue())["exception"]
        logger.info("after")
        assert json.loads(stream.getvalue().splitlines()[-1])["message"] == "after"


def test_lines_beyond_the_limit_are_dropped_and_counted_while_the_reader_is_stuck(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setattr(logs, "QUEUED_LINES_LIMIT", 3)
    stream = BlockingStream()
    with configured(stream) as logger:
        logger.info("line 0")
        assert stream.writing.wait(5)  # the writer holds line 0; three more fit in the queue
        for number in range(1, 9):
            logger.info("line %d", number)
        stream.drained.set()
        stop_logging()  # wait for the queue to drain
        logger.info("line 9")  # written directly now; nothing is queued any more
        written = [line.split("] ", 1)[1] for line in stream.getvalue().splitlines()]
    notice = "5 log lines dropped: whatever reads the gateway's log fell behind"
    assert written == ["line 0", "line 1", "line 2", "line 3", notice, "line 9"]


def test_the_dropped_lines_are_counted_once_there_is_room() -> None:
    records: SimpleQueue[logging.LogRecord] = SimpleQueue()
    handoff = logs._Handoff(records)
    handoff.dropped = 5
    handoff.handle(logging.LogRecord("gateway.test", logging.INFO, __file__, 1, "after %s", ("stall",), None))
    notice, record = records.get_nowait(), records.get_nowait()
    assert notice.getMessage() == "5 log lines dropped: whatever reads the gateway's log fell behind"
    assert notice.levelno == logging.WARNING and record.getMessage() == "after stall" and handoff.dropped == 0
