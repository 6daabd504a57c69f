"""Schemathesis against the served API's own /openapi.json — every operation,
with generated cases that fit the schema (200 each) and cases that break it (100 each):
no 5xx, and every response conforms to the documented schema (status code, content type,
headers, body).

schemathesis' pytest plugin does not run under pytest 9, so the operations are walked
here and each one is a Hypothesis test of its own.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.generation.modes import GenerationMode
from schemathesis.specs.openapi.checks import positive_data_acceptance

from tests.helpers import served_api

CASES = {GenerationMode.POSITIVE: 200, GenerationMode.NEGATIVE: 100}


def _fuzz(operation: Any, mode: GenerationMode, seen: Counter[str]) -> None:
    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(
        max_examples=CASES[mode],
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    def check(case: Any) -> None:
        seen[operation.label] += 1
        if not _has_filters(case):
            case.call_and_validate(timeout=30)
            return
        # Which filter keys exist depends on the configured table, which the static
        # schema cannot list: a schema-valid body may be refused, but for its filters
        # only — the same body without them must be accepted.
        response = case.call_and_validate(timeout=30, excluded_checks=[positive_data_acceptance])
        if mode is GenerationMode.POSITIVE and response.status_code == 422:
            assert "filter" in response.json()["error"], response.text
            case.body = {k: v for k, v in case.body.items() if k != "filters"}
            case.call_and_validate(timeout=30)

    check()


def test_every_operation_conforms_and_never_fails(search_db: str, pg_root: Path) -> None:
    env = {"DATABASE_URL": search_db, "PRODSEARCH_HOME": str(pg_root), "PRODSEARCH_MODE": "int8"}
    seen: Counter[str] = Counter()
    with served_api(env) as url:
        schema = schemathesis.openapi.from_url(url + "/openapi.json")
        operations = [result.ok() for result in schema.get_all_operations()]
        for operation in operations:
            for mode in CASES:
                if mode is GenerationMode.NEGATIVE and not _takes_input(operation):
                    continue
                _fuzz(operation, mode, seen)
    labels = {op.label for op in operations}
    assert {"POST /search/semantic", "GET /search/similar/{product_id}"} <= labels
    for op in operations:
        if _takes_input(op):  # an operation without inputs has one case to try
            assert seen[op.label] >= CASES[GenerationMode.POSITIVE], (op.label, seen)


def _has_filters(case: Any) -> bool:
    return isinstance(case.body, dict) and "filters" in case.body


def _takes_input(operation: Any) -> bool:
    return bool(operation.body or operation.path_parameters or operation.query)
