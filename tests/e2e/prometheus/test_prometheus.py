"""The metrics tooling itself: promtool's lint judges exposition text, and a real Prometheus
scrapes an exporter and answers PromQL with the exporter's values and labels."""

from __future__ import annotations

import urllib.request
from pathlib import Path

import pytest
from prometheus_client import generate_latest

from tests.cluster import prometheus
from tests.cluster.processes import is_running
from tests.cluster.prometheus import PrometheusServer, check_metrics

from .conftest import Exporter

# A counter must end in _total: the classic mistake the operator's metrics must not make.
COUNTER_WITHOUT_TOTAL = """\
# HELP continuable_demo_restarts Restarts of demo jobs.
# TYPE continuable_demo_restarts counter
continuable_demo_restarts{reason="evicted"} 2
"""


def test_promtool_accepts_a_prometheus_client_exposition(
    prometheus_bin: Path, exporter: Exporter
) -> None:
    exporter.counter.labels(reason="preempted", namespace="default").inc(3)
    with urllib.request.urlopen(f"http://{exporter.target}/metrics", timeout=5) as response:
        served = response.read().decode()
    assert "continuable_demo_interruptions_total" in served
    assert check_metrics(served) == []
    assert check_metrics(generate_latest(exporter.registry).decode()) == []


def test_promtool_reports_a_counter_without_total(prometheus_bin: Path) -> None:
    complaints = check_metrics(COUNTER_WITHOUT_TOTAL)
    assert any("continuable_demo_restarts" in line and "_total" in line for line in complaints), (
        complaints
    )


def test_promtool_reports_text_it_cannot_parse(prometheus_bin: Path) -> None:
    complaints = check_metrics('continuable_demo_restarts{reason="evicted" 2\n')
    assert complaints, "promtool accepted a line with an unclosed label set"


def test_prometheus_scrapes_the_counter_with_its_labels(
    prometheus_bin: Path, exporter: Exporter, tmp_path: Path
) -> None:
    exporter.counter.labels(reason="preempted", namespace="default").inc(3)
    exporter.counter.labels(reason="evicted", namespace="default").inc()

    with PrometheusServer([exporter.target], job="demo", log_dir=tmp_path) as prom:
        samples = prom.wait_for_series(
            'continuable_demo_interruptions_total{reason="preempted"}', timeout=30
        )
        assert len(samples) == 1
        assert samples[0].value == 3
        # The exporter's labels, plus the two every scrape adds.
        assert dict(samples[0].labels) == {
            "__name__": "continuable_demo_interruptions_total",
            "reason": "preempted",
            "namespace": "default",
            "job": "demo",
            "instance": exporter.target,
        }

        by_reason = {
            s.labels["reason"]: s.value
            for s in prom.query("sum by (reason) (continuable_demo_interruptions_total)")
        }
        assert by_reason == {"preempted": 3, "evicted": 1}

        # Later scrapes see later values: the server keeps scraping, not a one-off snapshot.
        exporter.counter.labels(reason="preempted", namespace="default").inc(2)
        prom.wait_for_series(
            'continuable_demo_interruptions_total{reason="preempted"} == 5', timeout=30
        )


def test_prometheus_server_leaves_nothing_behind(prometheus_bin: Path, exporter: Exporter) -> None:
    with PrometheusServer([exporter.target]) as prom:
        record, workdir = prom.record, prom.workdir
        assert record is not None
        assert workdir is not None
        assert workdir.is_dir()
        assert is_running(record)
        assert prom.startup_seconds < 60
    assert not is_running(record)
    assert not workdir.exists()


def test_missing_binaries_fail_naming_the_make_target(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.delenv(prometheus.BIN_ENV, raising=False)
    with pytest.raises(prometheus.PrometheusMissing, match="make prometheus-bin"):
        prometheus.bin_dir()


def test_targets_off_loopback_are_refused() -> None:
    with pytest.raises(ValueError, match=r"127\.0\.0\.1"):
        PrometheusServer(["10.0.0.1:9100"], folder=Path("/nonexistent"))
