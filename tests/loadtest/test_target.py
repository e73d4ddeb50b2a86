"""The bundled demo target and the health preflight."""

from __future__ import annotations

import httpx
import pytest

from kgents_pipeline.errors import LoadTestError
from kgents_pipeline.loadtest.preflight import check_health
from kgents_pipeline.loadtest.target import DemoTarget


def test_demo_target_serves_health_with_component_statuses():
    with DemoTarget() as demo:
        assert demo.url.startswith("http://127.0.0.1:")
        response = httpx.get(demo.url + "/health/saas", trust_env=False)
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "healthy"
    assert set(body["components"]) == {"api", "nats", "redis", "agents"}


def test_injected_error_rate_and_latency_are_what_clients_see():
    with DemoTarget(error_rate=0.5, seed=7) as demo, httpx.Client(trust_env=False) as client:
        codes = [client.get(demo.url + "/health/saas").status_code for _ in range(200)]
        demo.set_faults(latency_ms=50, error_rate=0.0)
        elapsed = client.get(demo.url + "/health/saas").elapsed.total_seconds()
    assert 60 < codes.count(503) < 140
    assert elapsed >= 0.05


def test_keep_alive_responses_do_not_stall():
    # Without wbufsize the stdlib handler stalls ~40 ms per keep-alive response.
    with DemoTarget() as demo, httpx.Client(trust_env=False) as client:
        client.get(demo.url + "/health/saas")
        times = [client.get(demo.url + "/health/saas").elapsed.total_seconds() for _ in range(20)]
    assert sorted(times)[10] < 0.02


def test_fault_settings_are_validated():
    with pytest.raises(ValueError, match="error_rate"):
        DemoTarget(error_rate=1.5)
    with pytest.raises(ValueError, match="latency_ms"):
        DemoTarget(latency_ms=-1)


def test_the_capacity_limit_serves_workers_at_a_time_each_for_its_service_time():
    """2 workers x 50 ms: 8 requests at once take 4 rounds (~200 ms), not 50 ms."""
    import concurrent.futures
    import time

    with pytest.raises(ValueError, match="both workers and service_ms"):
        DemoTarget(workers=2)
    with DemoTarget(workers=2, service_ms=50) as demo:
        assert demo.capacity_rps == 40.0
        url = demo.url + "/health/saas"
        started = time.perf_counter()
        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            codes = list(pool.map(lambda _: httpx.get(url, trust_env=False).status_code, range(8)))
        elapsed = time.perf_counter() - started
    assert codes == [200] * 8
    assert 0.19 <= elapsed < 0.6
    assert DemoTarget().capacity_rps is None


def test_preflight_passes_a_healthy_target():
    with DemoTarget() as demo:
        report = check_health(demo.url)
    assert report.status == "healthy" and report.status_code == 200


def test_preflight_names_the_components_that_are_down():
    with DemoTarget(error_rate=1.0) as demo:
        with pytest.raises(LoadTestError, match=r"503.*components down: nats"):
            check_health(demo.url)


def test_preflight_on_a_refused_port_is_a_clear_error(free_port):
    with pytest.raises(LoadTestError, match="unreachable"):
        check_health(f"http://127.0.0.1:{free_port}")


def test_preflight_recognises_the_demo_target():
    with DemoTarget() as demo:
        assert check_health(demo.url).demo is True
