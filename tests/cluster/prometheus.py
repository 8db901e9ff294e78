"""A real Prometheus for the tests: promtool's lint, and a throwaway server that scrapes targets.

The binaries come from build_prometheus.sh (`make prometheus-bin`), like the Kubernetes ones come
from build_binaries.sh; a missing build is an error naming that target, never a skip.
"""

from __future__ import annotations

import ipaddress
import json
import shutil
import subprocess
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

from .binaries import BinariesMissing, BinarySet
from .certificates import SERVICE_CLUSTER_IP_RANGE
from .ports import free_ports
from .processes import ProcessRecord, spawn, stop, tail
from .waiting import wait_for

# Must match PROMETHEUS_VERSION in build_prometheus.sh (the Go module's v0.3xx.y is 3.xx.y).
PROMETHEUS_VERSION = "v0.316.0"
BINARY_NAMES: tuple[str, ...] = ("promtool", "prometheus")
BIN_ENV = "CONTINUABLE_PROMETHEUS_BIN"
BUILD_SCRIPT = Path(__file__).resolve().parent / "build_prometheus.sh"

LOOPBACK = "127.0.0.1"


class PrometheusMissing(BinariesMissing):
    """A BinariesMissing, so whatever already reports missing Kubernetes binaries reports this."""


class PrometheusError(RuntimeError):
    pass


# Found like the Kubernetes binaries (binaries.py), with this build script and make target.
PROMETHEUS = BinarySet(
    names=BINARY_NAMES,
    env=BIN_ENV,
    folder_name=f"prometheus-{PROMETHEUS_VERSION}",
    description=f"promtool and prometheus ({PROMETHEUS_VERSION})",
    make_target="prometheus-bin",
    build_script=BUILD_SCRIPT,
    minutes=5,
    error=PrometheusMissing,
)


def cache_bin_dir() -> Path:
    return PROMETHEUS.cache_bin_dir()


def bin_dir() -> Path:
    """The folder holding promtool and prometheus; raises PrometheusMissing with the fix."""
    return PROMETHEUS.bin_dir(stacklevel=2)


def binary(name: str, folder: Path | None = None) -> Path:
    return PROMETHEUS.binary(name, folder, stacklevel=2)


def check_metrics(text: str, *, timeout: float = 30.0) -> list[str]:
    """`promtool check metrics` on exposition text: its complaints, one per line; [] when clean.

    promtool prints each lint problem as "<metric> <text>" on stderr and exits 3; text it cannot
    parse is one "error while linting: ..." line and exit 1. Both come back as complaints.
    """
    result = subprocess.run(
        [str(binary("promtool")), "check", "metrics"],
        input=text.encode(),
        capture_output=True,
        timeout=timeout,
        check=False,
    )
    complaints = [
        line.strip()
        for line in (result.stderr + result.stdout).decode(errors="replace").splitlines()
        if line.strip()
    ]
    if result.returncode != 0 and not complaints:
        # Never report "clean" for a failure that printed nothing.
        complaints = [f"promtool check metrics exited {result.returncode} without a message"]
    return complaints if result.returncode != 0 else []


@dataclass(frozen=True)
class Sample:
    """One element of an instant query's result: its labels (with __name__) and value."""

    labels: Mapping[str, str]
    value: float
    timestamp: float


def _config(targets: Sequence[str], job: str, scrape_interval: str) -> str:
    # JSON is YAML, so the config needs no YAML library and every target is quoted safely.
    config = {
        "global": {"scrape_interval": scrape_interval, "evaluation_interval": scrape_interval},
        "scrape_configs": [
            {
                "job_name": job,
                "scrape_interval": scrape_interval,
                "scrape_timeout": scrape_interval,
                "static_configs": [{"targets": list(targets)}],
            }
        ],
    }
    return json.dumps(config, indent=2) + "\n"


def _on_this_machine(host: str) -> bool:
    if host == LOOPBACK:
        return True
    try:
        return ipaddress.ip_address(host) in ipaddress.ip_network(SERVICE_CLUSTER_IP_RANGE)
    except ValueError:
        return False


class PrometheusServer:
    """A Prometheus on a free loopback port that scrapes `targets` ("127.0.0.1:<port>") every
    second, with its storage in a temporary folder removed on exit.

        with PrometheusServer(["127.0.0.1:9464"]) as prom:
            samples = prom.wait_for_series('continuable_attempts_total{reason="x"}', timeout=30)
    """

    def __init__(
        self,
        targets: Sequence[str],
        *,
        job: str = "continuable",
        scrape_interval: str = "1s",
        ready_timeout: float = 60.0,
        log_dir: Path | None = None,
        folder: Path | None = None,
    ) -> None:
        for target in targets:
            host, _, port = target.rpartition(":")
            # Loopback, or a Service's cluster IP (kube-proxy sends it to a pod on this
            # machine's bridge): a test must never make this machine scrape anything else.
            if not port.isdigit() or not _on_this_machine(host):
                raise ValueError(
                    f"target {target!r} is not {LOOPBACK}:<port> or <cluster IP in "
                    f"{SERVICE_CLUSTER_IP_RANGE}>:<port>"
                )
        self.targets = list(targets)
        self.job = job
        self.scrape_interval = scrape_interval
        self.ready_timeout = ready_timeout
        self._folder = folder or bin_dir()
        # The log outlives the server only when the caller gives it a home (e.g. tmp_path).
        self._log_dir = log_dir
        self._tmp: Path | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._record: ProcessRecord | None = None
        self.port = 0
        self.log_path = Path()
        self.startup_seconds = 0.0

    @property
    def url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}"

    @property
    def workdir(self) -> Path | None:
        """The temporary folder (config, TSDB) while the server runs; None once closed."""
        return self._tmp

    @property
    def record(self) -> ProcessRecord | None:
        return self._record

    def __enter__(self) -> PrometheusServer:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def start(self) -> None:
        prometheus = binary("prometheus", self._folder)
        self._tmp = Path(tempfile.mkdtemp(prefix="continuable-prometheus-"))
        try:
            config = self._tmp / "prometheus.yml"
            config.write_text(_config(self.targets, self.job, self.scrape_interval))
            log_dir = self._log_dir or self._tmp
            self.log_path = log_dir / "prometheus.log"
            (self.port,) = free_ports(1)
            argv = [
                str(prometheus),
                f"--config.file={config}",
                f"--storage.tsdb.path={self._tmp / 'data'}",
                f"--web.listen-address={LOOPBACK}:{self.port}",
            ]
            began = time.monotonic()
            self._proc, self._record = spawn("prometheus", argv, self.log_path)
            wait_for(
                self._ready,
                timeout=self.ready_timeout,
                what=f"prometheus on {self.url} to answer /-/ready",
                detail=lambda: f"log {self.log_path}:\n{tail(self.log_path)}",
            )
            self.startup_seconds = time.monotonic() - began
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        if self._record is not None:
            stop(self._record, self._proc, grace=5.0)
            self._record = None
            self._proc = None
        if self._tmp is not None:
            shutil.rmtree(self._tmp, ignore_errors=True)
            self._tmp = None

    def _ready(self) -> bool:
        if self._proc is not None and self._proc.poll() is not None:
            raise PrometheusError(
                f"prometheus exited with {self._proc.returncode} before it was ready; "
                f"log {self.log_path}:\n{tail(self.log_path)}"
            )
        try:
            with urllib.request.urlopen(f"{self.url}/-/ready", timeout=2.0) as response:
                return bool(response.status == 200)
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            # Refused while it binds, 503 while the TSDB opens: both mean "not yet".
            return False

    def api(self, path: str, params: Mapping[str, str] | None = None) -> Any:
        """GET /api/v1/<path> and return its "data"; raises PrometheusError with the reason."""
        query = f"?{urllib.parse.urlencode(params)}" if params else ""
        url = f"{self.url}/api/v1/{path}{query}"
        try:
            with urllib.request.urlopen(url, timeout=10.0) as response:
                body = json.load(response)
        except urllib.error.HTTPError as err:
            # A bad PromQL expression is a 400 whose JSON body says what is wrong.
            detail = err.read().decode(errors="replace")
            raise PrometheusError(f"GET {url}: {err.code} {detail}") from err
        if body.get("status") != "success":
            raise PrometheusError(f"GET {url}: {body}")
        return body["data"]

    def query(self, promql: str) -> list[Sample]:
        """An instant query; a vector comes back as its samples, a scalar as one unlabelled one."""
        data = self.api("query", {"query": promql})
        kind = data["resultType"]
        if kind == "vector":
            return [
                Sample(
                    labels=dict(item["metric"]),
                    value=float(item["value"][1]),
                    timestamp=float(item["value"][0]),
                )
                for item in data["result"]
            ]
        if kind == "scalar":
            timestamp, value = data["result"]
            return [Sample(labels={}, value=float(value), timestamp=float(timestamp))]
        raise PrometheusError(f"query {promql!r} returned a {kind}; only instant vectors here")

    def scrape_health(self) -> list[str]:
        """Each target's health and last scrape error, for failure messages."""
        try:
            data = self.api("targets")
        except (PrometheusError, urllib.error.URLError, OSError) as err:
            return [f"(targets unavailable: {err})"]
        return [
            f"{t['scrapeUrl']}: {t['health']} {t.get('lastError') or ''}".rstrip()
            for t in data.get("activeTargets", [])
        ]

    def wait_for_series(self, promql: str, timeout: float = 30.0) -> list[Sample]:
        """Poll `promql` until it returns at least one sample (bounded by `timeout`)."""

        def check() -> list[Sample] | None:
            return self.query(promql) or None

        return wait_for(
            check,
            timeout=timeout,
            what=f"a series for {promql!r} in prometheus on {self.url}",
            interval=0.2,
            detail=lambda: "targets:\n" + "\n".join(self.scrape_health()),
        )
