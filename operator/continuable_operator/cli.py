"""`continuable-operator`: runs the operator (its watches, reconcilers and health endpoints)
until SIGTERM or SIGINT.

In a pod it uses the pod's service account; elsewhere $KUBECONFIG, as kubectl does.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import signal
import socket
import sys
import threading
from collections.abc import Sequence

from .caching import Store, watched_kinds
from .cluster import ClusterApi
from .electing import KubeLeases, LeaseElector
from .handlers import on_store_change
from .informing import start_informers
from .metrics import OperatorMetrics
from .namespaces import scopes
from .reconciling import Reconciler
from .serving import health_app, serve_health

log = logging.getLogger("continuable_operator")


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="continuable-operator", description=__doc__)
    parser.add_argument(
        "--namespace",
        action="append",
        default=[],
        metavar="NS",
        help="watch this namespace (repeatable); all namespaces when omitted",
    )
    parser.add_argument(
        "--bind-address",
        default="0.0.0.0",
        help="address of the health and metrics endpoints (default 0.0.0.0)",
    )
    parser.add_argument("--metrics-port", type=int, default=8080, help="serves /metrics")
    parser.add_argument("--health-port", type=int, default=8081, help="serves /healthz and /readyz")
    parser.add_argument(
        "--leader-elect",
        action="store_true",
        help="act only while holding a Lease (for more than one replica)",
    )
    parser.add_argument(
        "--kueue",
        action="store_true",
        help="queue jobs labelled kueue.x-k8s.io/queue-name through Kueue: one Workload each "
        "(Kueue's Workload CRD must be installed)",
    )
    parser.add_argument(
        "--kueue-priority-boost",
        action="store_true",
        help="with --kueue: raise each running job's Workload priority boost "
        "(kueue.x-k8s.io/priority-boost, Kueue's PriorityBoost gate) with the age of its "
        "checkpoint, so the job that saved last is preempted first among equals",
    )
    parser.add_argument("--lease-name", default="continuable-operator")
    parser.add_argument(
        "--lease-namespace",
        default=os.environ.get("POD_NAMESPACE", "default"),
        help="namespace of the Lease (default: $POD_NAMESPACE, else default)",
    )
    # The kubelet's defaults: at 20/30 (kube-controller-manager's) the soak measured the
    # operator asleep in its own rate limit for seconds after each restart, while it read its
    # 30 jobs again, and every relaunch waited behind that.
    parser.add_argument("--qps", type=float, default=50.0, help="API requests per second")
    parser.add_argument("--burst", type=int, default=100, help="API request burst")
    parser.add_argument("--log-format", choices=("text", "json"), default="text")
    parser.add_argument("--verbose", action="store_true", help="debug logging")
    return parser.parse_args(argv)


class _JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line = {
            "time": self.formatTime(record),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            line["traceback"] = self.formatException(record.exc_info)
        return json.dumps(line)


def _configure_logging(args: argparse.Namespace) -> None:
    handler = logging.StreamHandler(sys.stderr)
    if args.log_format == "json":
        handler.setFormatter(_JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, handlers=[handler])


def _load_credentials() -> None:
    from kubernetes import config

    try:
        config.load_incluster_config()
    except config.ConfigException:
        # Named here: the package's own default is KUBECONFIG as it was when it was imported.
        config.load_kube_config(config_file=os.environ.get("KUBECONFIG"))


# How often the wait for the first lists (the operator's readiness) looks at a stop.
SYNC_POLL_SECONDS = 1.0


async def _run(args: argparse.Namespace) -> None:
    stopping, stop = asyncio.Event(), threading.Event()  # the loop's, and the threads'

    def on_signal() -> None:
        stopping.set()
        stop.set()

    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, on_signal)
    metrics = OperatorMetrics()
    metrics.serve(args.bind_address, args.metrics_port)
    log.info("metrics on %s:%d/metrics", args.bind_address, args.metrics_port)
    kueue = args.kueue or args.kueue_priority_boost
    store = Store(scopes(args.namespace), kinds=watched_kinds(kueue))
    reconciler = Reconciler(
        ClusterApi(qps=args.qps, burst=args.burst),
        store,
        metrics=metrics,
        priority_boost=args.kueue_priority_boost,
    )
    store.on_change = on_store_change(reconciler)
    ready, standby = asyncio.Event(), asyncio.Event()
    app = health_app(ready, standby, reconciler.scheduler.stalled)
    health = await serve_health(args.bind_address, args.health_port, app)
    log.info("health endpoints on %s:%d", args.bind_address, args.health_port)
    try:
        if args.leader_elect:
            elector = LeaseElector(
                KubeLeases(args.lease_namespace, args.lease_name),
                f"{socket.gethostname()}-{os.getpid()}",
            )
            standby.set()
            if not await asyncio.to_thread(elector.acquire, stop):
                return
            standby.clear()
            elector.keep(_exit_on_lost_lease, stop)
        _watch(store, args.namespace, stop)
        while not stop.is_set():
            if await asyncio.to_thread(store.wait_synced, store.kinds, SYNC_POLL_SECONDS):
                ready.set()
                log.info("ready: the first lists of %s are in", ", ".join(store.kinds))
                break
        await stopping.wait()
        log.info("stopping")
    finally:
        stop.set()
        reconciler.stop()
        await health.cleanup()


def _watch(store: Store, namespaces: list[str], stop: threading.Event) -> None:
    """Start the informers of the jobs and of the objects made for them, on a client of their
    own (their watches hold a connection each; the reconciles' calls keep the other pool)."""
    from kubernetes import client

    configuration = client.Configuration.get_default_copy()
    # A connection per watch, or the pool drops and reopens them.
    configuration.connection_pool_maxsize = len(store.kinds) * max(len(scopes(namespaces)), 1)
    watching = client.ApiClient(configuration)
    start_informers(
        store,
        core=client.CoreV1Api(watching),
        rbac=client.RbacAuthorizationV1Api(watching),
        custom=client.CustomObjectsApi(watching),
        namespaces=namespaces,
        stopped=stop,
    )


def _exit_on_lost_lease() -> None:
    # Another replica may lead by now: stop acting at once; the pod restarts as a follower.
    logging.shutdown()
    os._exit(1)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    _configure_logging(args)
    _load_credentials()
    asyncio.run(_run(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
