from __future__ import annotations

import io
import json
import logging

from gateway.logs import JsonFormatter, RequestIdFilter, request_id_var


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
