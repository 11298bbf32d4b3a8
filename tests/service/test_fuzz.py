"""Fuzzing the OpenAPI document with schemathesis: bodies that fit the schema and bodies that break it, sent
to every operation of the in-process API with a valid admin token; no answer may be a 5xx."""

import time
from collections import Counter

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.generation import GenerationMode
from starlette.applications import Starlette
from starlette.routing import Mount

from tests.service.conftest import auth
from umrisk.serving.api import app
from umrisk.serving.ratelimit import FailedAuthThrottle, RateLimiter

EXAMPLES = 20  # per operation and mode: 40 calls an operation, well under a minute on two busy cores


def test_schemathesis_finds_no_server_error(client, served, capsys):
    s = app.state.umrisk
    # the fuzzer's own bad credentials must not slow it down: limits are tests/service/test_api.py's
    s.rate_limiter, s.auth_throttle = RateLimiter(per_minute=1_000_000), FailedAuthThrottle(free=1_000_000)
    schema = schemathesis.openapi.from_asgi("/v1/openapi.json", Starlette(routes=[Mount("/v1", app)]))
    headers = auth(served["tokens"]["admin"])
    calls, errors, failures, statuses = 0, 0, [], Counter()
    start = time.perf_counter()
    operations = [op.ok() for op in schema.get_all_operations()]
    assert {op.path for op in operations} >= {"/score", "/review-queue", "/outreach", "/models"}
    for operation in operations:
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):

            @settings(max_examples=EXAMPLES, deadline=None, database=None,
                      suppress_health_check=list(HealthCheck))
            @given(case=operation.as_strategy(generation_mode=mode))
            def run(case):
                nonlocal calls, errors
                response = case.call(headers=headers)
                calls += 1
                statuses[response.status_code] += 1
                if response.status_code >= 500:
                    errors += 1
                    failures.append((case.operation.label, response.status_code, case.body))
                case.validate_response(response, checks=[not_a_server_error], headers=headers)

            try:
                run()
            except (Exception, BaseExceptionGroup) as err:  # noqa: BLE001 - collect; report every operation
                failures.append((operation.label, mode.value, type(err).__name__, str(err)[:300]))
    with capsys.disabled():
        print(f"\nschemathesis: {calls} cases over {len(operations)} operations, {errors} server errors, "
              f"{time.perf_counter() - start:.1f} s; statuses {dict(sorted(statuses.items()))}")
    assert not failures, failures[:5]
    assert calls >= 4 * EXAMPLES


@pytest.fixture(autouse=True)
def _restore_limits():
    yield
    s = getattr(app.state, "umrisk", None)
    if s is not None:
        s.rate_limiter, s.auth_throttle = RateLimiter(s.settings.rate_limit), FailedAuthThrottle()
