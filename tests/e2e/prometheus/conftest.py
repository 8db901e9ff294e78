"""Fixtures for the Prometheus proofs: the pinned binaries and a tiny in-process exporter.

No cluster: these prove the test tooling (promtool's lint, a scraping Prometheus) on its own, so
a failure in the operator's metrics tests is about the metrics and not about the tooling.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, Counter, start_http_server

from tests.cluster import prometheus
from tests.cluster.ports import free_ports


@pytest.fixture(scope="session")
def prometheus_bin() -> Path:
    """The folder with promtool and prometheus; fails (never skips) naming `make prometheus-bin`,
    as the cluster fixture does for the Kubernetes binaries: CI builds them, so absence is a bug."""
    try:
        return prometheus.bin_dir()
    except prometheus.PrometheusMissing as err:
        problem = str(err)
    # Outside the except block, so the report is the one message and not a chained traceback.
    pytest.fail(problem, pytrace=False)


@dataclass
class Exporter:
    registry: CollectorRegistry
    counter: Counter
    target: str  # "127.0.0.1:<port>", as a scrape target


@pytest.fixture
def exporter() -> Iterator[Exporter]:
    """A prometheus_client /metrics on a free loopback port with one labelled counter.

    Its own registry, so the exposition holds exactly what the test made (no process_* or gc
    metrics that differ between machines).
    """
    registry = CollectorRegistry()
    counter = Counter(
        "continuable_demo_interruptions",
        "Interruptions of demo jobs, by reason.",
        ["reason", "namespace"],
        registry=registry,
    )
    (port,) = free_ports(1)
    server, thread = start_http_server(port, addr="127.0.0.1", registry=registry)
    try:
        yield Exporter(registry=registry, counter=counter, target=f"127.0.0.1:{port}")
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
