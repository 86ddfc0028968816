"""Schemathesis against the app's own /openapi.json, over loopback to a live server.

Generated bodies, valid and invalid by the schema, hit every declared operation: no response
may be a 5xx, and every response must match what the schema declares (status code, content
type, body). The run is bounded (few examples per operation, no shrinking deadline) so it fits
in CI on two CPU cores.

`positive_data_acceptance` is left out on purpose: the schema cannot express the cross-field
rules (steps divide the blocks, the prompt plus the canvas fit the context, ...), so a body
valid by the schema may rightly get a 400.
"""

from __future__ import annotations

import httpx
import pytest
import torch
from hypothesis import HealthCheck, Phase, given, settings

schemathesis = pytest.importorskip("schemathesis")
from schemathesis.checks import positive_data_acceptance  # noqa: E402
from schemathesis.generation.modes import GenerationMode  # noqa: E402

from server import Settings  # noqa: E402
from tests.live_server import LiveServer  # noqa: E402

pytestmark = pytest.mark.timeout(120)


@pytest.fixture(scope="module")
def live(tiny_checkpoint):
    # No API key: the generated requests reach the routes; the key check has its own tests.
    s = LiveServer(Settings(model=str(tiny_checkpoint), served_model_name="tiny",
                            block_length=4, max_tokens=4, max_batch_size=16, max_queue=256,
                            request_timeout=20))
    yield s
    s.close()


@pytest.fixture(scope="module")
def operations(live):
    schema = schemathesis.openapi.from_url(live.url + "/openapi.json")
    return {op.label: op for op in (result.ok() for result in schema.get_all_operations())}


def test_the_schema_declares_the_api(operations):
    assert {"POST /v1/chat/completions", "POST /v1/completions", "GET /v1/models", "GET /health",
            "GET /ready", "GET /metrics"} <= set(operations)


@pytest.fixture
def no_flush_denormal():
    """conftest flushes subnormal floats (fast CPU decoding), which hypothesis refuses to work
    with; the setting is per thread, so turning it off here leaves the server's threads alone."""
    torch.set_flush_denormal(False)
    yield
    torch.set_flush_denormal(True)


# Driven by hand (not `schema.parametrize`, whose pytest plugin does not load under pytest 9).
# GET operations take no parameters, so they have no negative cases.
@pytest.mark.parametrize("label, mode", [
    *((route, mode) for route in ("POST /v1/chat/completions", "POST /v1/completions")
      for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)),
    *((route, GenerationMode.POSITIVE) for route in ("GET /v1/models", "GET /health", "GET /ready", "GET /metrics")),
])
def test_no_5xx_and_every_response_matches_the_schema(operations, label, mode, no_flush_denormal):
    examples = 30 if label.startswith("POST") else 3

    @given(case=operations[label].as_strategy(generation_mode=mode))
    @settings(max_examples=examples, deadline=None, derandomize=True, database=None,
              suppress_health_check=list(HealthCheck), phases=[Phase.explicit, Phase.generate])
    def run(case):
        response = case.call_and_validate(excluded_checks=[positive_data_acceptance], timeout=30)
        assert response.status_code < 500, response.text

    run()


def test_the_run_reached_the_engine_and_left_the_server_idle(live):
    """Some generated bodies were answered (not all refused), and nothing is left running."""
    counts = {}
    for line in httpx.get(live.url + "/metrics").text.splitlines():
        if line.startswith("evotoken_requests_total{") and "/completions" in line:
            status = line.split('status="')[1].split('"')[0]
            counts[status] = counts.get(status, 0) + float(line.split()[-1])
    assert counts.get("200", 0) >= 2 and counts.get("400", 0) >= 10, counts
    assert not any(status.startswith("5") for status in counts), counts
    assert live.worker.alive
    assert live.worker.rows_in_flight == 0 and live.worker.engine.active_count == 0
