"""The chart installed with the operator image built from the Dockerfile, run by a real kubelet:
the runtime enforces the chart's security defaults, and Prometheus scrapes /metrics through the
chart's Service (kube-proxy's rules for its cluster IP)."""

from __future__ import annotations

import json

import pytest

from tests.cluster.prometheus import PrometheusServer
from tests.cluster.realnode.configs import NODE_NAME

from .conftest import RealJobs

pytestmark = pytest.mark.e2e

# Run inside the operator's container: who it runs as, whether / is writable, and what the
# kernel says of the process (capabilities, no_new_privs, seccomp mode 2 = a filter).
PROBE = """
import json, os
try:
    open('/probe', 'w')
    root = 'writable'
except OSError as err:
    root = err.strerror
status = dict(line.split(':', 1) for line in open('/proc/self/status'))
print(json.dumps({
    'uid': os.getuid(), 'gid': os.getgid(), 'root': root, 'tmp': os.access('/tmp', os.W_OK),
    **{k: status[k].strip() for k in ('CapEff', 'CapPrm', 'NoNewPrivs', 'Seccomp')},
}))
"""


def test_operator_pod_runs_ready_with_the_charts_security_enforced(real_jobs: RealJobs) -> None:
    release = real_jobs.release
    pods = release.operator_pods()
    assert len(pods) == 1, [p["metadata"]["name"] for p in pods]
    pod = pods[0]
    assert pod["spec"]["nodeName"] == NODE_NAME
    ready = {c["type"]: c["status"] for c in pod["status"]["conditions"]}
    assert ready["Ready"] == "True"
    container = pod["status"]["containerStatuses"][0]
    assert container["imageID"], "the kubelet reports no image it ran"
    assert container["image"].endswith(real_jobs.release.values()["image.tag"])

    seen = json.loads(
        real_jobs.kubectl(
            "exec",
            "-n",
            release.namespace,
            pod["metadata"]["name"],
            "--",
            "python",
            "-c",
            PROBE,
        )
    )
    assert (seen["uid"], seen["gid"]) == (65532, 65532)
    assert seen["root"] == "Read-only file system"
    assert seen["tmp"] is True  # the chart's emptyDir
    # drop: [ALL], allowPrivilegeEscalation: false, seccompProfile RuntimeDefault.
    assert (seen["CapEff"], seen["CapPrm"]) == ("0" * 16, "0" * 16)
    assert seen["NoNewPrivs"] == "1"
    assert seen["Seccomp"] == "2"


def test_prometheus_scrapes_metrics_through_the_charts_service(
    real_jobs: RealJobs, tmp_path: object
) -> None:
    release = real_jobs.release
    service = json.loads(
        real_jobs.kubectl(
            "get", "service", f"{release.fullname}-metrics", "-n", release.namespace, "-o", "json"
        )
    )
    target = f"{service['spec']['clusterIP']}:{service['spec']['ports'][0]['port']}"
    with PrometheusServer([target], job="continuable-operator") as prom:
        samples = prom.wait_for_series('continuable_jobs{job="continuable-operator"}', timeout=60)
    assert {s.labels["instance"] for s in samples} == {target}
