"""A bounded schemathesis run against the live gateway and a real tritonserver, driven by the
gateway's own /openapi.json: for generated requests to every operation, no answer is a 500
(an unhandled failure), every answer has the content type and, for JSON, the shape the
document declares (OpenAI's error envelope for errors)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.specs.openapi.checks import content_type_conformance, response_schema_conformance

from gateway.localtriton import LocalTriton
from tests.conftest import spawn_gateway, stop_process

EXAMPLES_PER_OPERATION = 15


@pytest.fixture(scope="module")
def fuzzed_gateway(triton: LocalTriton, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    # Generated bodies may ask for long generations (ignore_eos, min_tokens): bounded in time.
    process, url = spawn_gateway(
        triton.grpc_url, tmp_path_factory.mktemp("fuzz"), "--request-timeout=5", "--max-concurrent-requests=8"
    )
    try:
        yield url
    finally:
        stop_process(process)


def no_internal_error(ctx: object, response: schemathesis.Response, case: schemathesis.Case) -> None:
    assert response.status_code != 500, response.text[:500]


@pytest.mark.timeout(900)
def test_generated_requests(fuzzed_gateway: str) -> None:
    api = schemathesis.openapi.from_url(f"{fuzzed_gateway}/openapi.json")
    operations = [result.ok() for result in api.get_all_operations()]
    assert len(operations) >= 18  # every OpenAI-side route (the KServe ones are off here)
    statuses: list[int] = []
    for operation in operations:

        @given(operation.as_strategy())
        @settings(
            max_examples=EXAMPLES_PER_OPERATION,
            deadline=None,
            suppress_health_check=list(HealthCheck),
            derandomize=True,
            database=None,
        )
        def answers_as_documented(case: schemathesis.Case) -> None:
            response = case.call(base_url=fuzzed_gateway, timeout=30)
            statuses.append(response.status_code)
            case.validate_response(
                response, checks=[no_internal_error, content_type_conformance, response_schema_conformance]
            )

        answers_as_documented()
    assert len(statuses) >= 5 * len(operations)  # the run did run
    assert 200 in statuses and any(400 <= status < 500 for status in statuses)
