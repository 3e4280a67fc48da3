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
