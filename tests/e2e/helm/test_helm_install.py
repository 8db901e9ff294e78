"""The chart on a real API server: its objects pass server-side validation, and an operator
installed with `helm install` (running on the process node with the chart's ServiceAccount and
RBAC) completes and resumes jobs, keeps jobs apart, survives `helm upgrade` without touching a
running job, and `helm uninstall` leaves the CRD (issue: Helm chart and container image)."""

from __future__ import annotations

import json
import sys
import tempfile
from typing import Any

import pytest
import yaml

from tests.cluster.session import Cluster, temporary_namespace
from tests.cluster.waiting import wait_for
from tests.unit.chart.helm import CHART, Helm, grants, kind_name

from .conftest import PEEK, THREE_STEPS, Jobs, Release, released

pytestmark = pytest.mark.e2e

PYTHON = [sys.executable]
CRD = "continuablejobs.continuable.dev"
CRD_FILE = "continuable.dev_continuablejobs.yaml"


def conditions(status: dict[str, Any]) -> dict[str, str]:
    return {c["type"]: c["status"] for c in status.get("conditions", [])}


# -- the rendered objects against the real API server --------------------------------------------


@pytest.mark.parametrize(
    "values",
    [
        {},
        {"watchNamespaces": ["{ns}"]},
        {"replicaCount": 2},
        {"replicaCount": 2, "watchNamespaces": ["{ns}"], "operator.logFormat": "json"},
        {"serviceAccount.create": False, "serviceAccount.name": "default", "replicaCount": 0},
    ],
    ids=[
        "defaults",
        "watch-namespaces",
        "leader-election-cluster",
        "leader-election-namespaced",
        "existing-sa",
    ],
)
def test_the_api_server_accepts_every_rendered_object(
    crds: Cluster, namespace: str, values: dict[str, Any]
) -> None:
    """A server-side dry run: schemas, strict field validation and admission, nothing stored."""
    helm = Helm.pinned(crds.kubeconfig)
    # The chart's crds/: the generated CRD alone (the session applied it; this is a dry run).
    assert [path.name for path in (CHART / "crds").iterdir()] == [CRD_FILE]
    crds.kubectl.retrying(
        "apply",
        "--server-side",
        "--dry-run=server",
        "--field-manager=helm",
        "-f",
        str(CHART / "crds" / CRD_FILE),
    )
    resolved = json.loads(json.dumps(values).replace("{ns}", namespace))
    objects = helm.template(resolved, release="dryrun", namespace=namespace)
    assert objects
    with tempfile.NamedTemporaryFile("w", suffix=".yaml") as manifest:
        yaml.safe_dump_all(objects, manifest)
        manifest.flush()
        out = crds.kubectl.retrying(
            "apply",
            "--server-side",
            "--dry-run=server",
            "--field-manager=helm",
            "--validate=strict",
            "-f",
            manifest.name,
        )
    accepted = [line for line in out.splitlines() if "(server dry run)" in line]
    assert len(accepted) == len(objects), f"{out}\nexpected {[kind_name(o) for o in objects]}"
    if values.get("replicaCount", 1) > 1:
        # The Lease Role, for leader election.
        kinds = [kind_name(o) for o in objects]
        assert f"Role/{namespace}/dryrun-continuable-operator-leader-election" in kinds
    # Nothing was stored.
    assert (
        crds.kubectl.run(
            "get", "deployment", "dryrun-continuable-operator", "-n", namespace, check=False
        ).returncode
        != 0
    )


def test_the_service_monitor_is_the_only_object_left_out_of_the_dry_run(crds: Cluster) -> None:
    """No Prometheus Operator CRDs on the local control plane; the unit tests check it instead."""
    helm = Helm.pinned(crds.kubeconfig)
    with_monitor = helm.template({"metrics.serviceMonitor.enabled": True})
    without = helm.template({})
    extra = [kind_name(o) for o in with_monitor if kind_name(o) not in map(kind_name, without)]
    assert extra == ["ServiceMonitor/ops/rel-continuable-operator"]


# -- jobs through an installed operator ----------------------------------------------------------


def test_the_operator_serves_health_and_metrics(shared_release: tuple[Release, Jobs]) -> None:
    release, _ = shared_release
    pod = release.running_operator()
    assert pod is not None
    assert pod["spec"]["serviceAccountName"] == release.fullname
    container = pod["spec"]["containers"][0]
    assert container["command"] == ["continuable-operator"]
    assert release.get_health("/healthz")[0] == 200
    assert release.get_health("/readyz")[0] == 200

    def metrics() -> str | None:
        code, body = release.get_health("/metrics", release.metrics_port)
        return body if code == 200 else None

    body = wait_for(
        metrics,
        timeout=30,
        what=f"/metrics on 127.0.0.1:{release.metrics_port}",
        detail=release.operator_log,
    )
    assert "# TYPE" in body


def test_a_job_completes(shared_release: tuple[Release, Jobs]) -> None:
    _, jobs = shared_release
    jobs.create("plain", [*PYTHON, THREE_STEPS], ITEM_SECONDS="0.001")
    status = jobs.wait_phase("plain", "Succeeded", "Failed")
    assert status["phase"] == "Succeeded", jobs.describe("plain")
    assert jobs.items("plain") == list(range(2000))
    counts = jobs.counts("plain")
    assert counts["fetch"] == 1
    assert counts["notify"] == 1
    assert status["attempt"] == 1
    assert conditions(status).get("Complete") == "True"
    assert status["checkpoint"]["stopReason"] == "Completed"


def test_a_deleted_pod_resumes_with_every_item_once(shared_release: tuple[Release, Jobs]) -> None:
    _, jobs = shared_release
    jobs.create("resumed", [*PYTHON, THREE_STEPS], ITEM_SECONDS="0.004")
    jobs.wait_items("resumed", 500)
    jobs.kubectl("delete", "pod", "resumed-1", "-n", jobs.namespace, "--wait=false")
    status = jobs.wait_phase("resumed", "Succeeded", "Failed")
    assert status["phase"] == "Succeeded", jobs.describe("resumed")
    assert jobs.items("resumed") == list(range(2000)), "every item exactly once"
    counts = jobs.counts("resumed")
    assert counts["fetch"] == 1, "the finished step was skipped in attempt 2"
    assert counts["notify"] == 1
    assert sum(1 for line in jobs.lines("resumed") if line.startswith("attempt ")) == 2
    assert status["attempt"] == 2
    assert status["interruptions"] == 1
    assert status["failures"] == 0
    assert status["resumptions"] == 1


def test_a_pod_cannot_reach_another_job(shared_release: tuple[Release, Jobs]) -> None:
    _, jobs = shared_release
    jobs.create("other", ["true"])
    jobs.create("peek", [*PYTHON, PEEK], OTHER_JOB="other")
    status = jobs.wait_phase("peek", "Succeeded", "Failed")
    assert status["phase"] == "Succeeded", jobs.describe("peek")
    verdicts = json.loads(jobs.events("peek").read_text())
    assert verdicts == {
        "get own job": 200,
        "get other job": 403,
        "patch other status": 403,
        "get other results": 403,
        "list jobs": 403,
    }


def test_the_chart_rbac_was_enough_for_every_call(shared_release: tuple[Release, Jobs]) -> None:
    """After the jobs above: the operator was never refused anything (it retries and logs a 403
    instead of failing, so a missing rule would otherwise only slow it down)."""
    release, _ = shared_release
    assert release.running_operator() is not None
    assert not release.forbidden(), "\n".join(release.forbidden()[:5])


# -- the release's life cycle --------------------------------------------------------------------


def test_upgrade_rolls_the_operator_and_leaves_a_running_job_alone(helm_cluster: Cluster) -> None:
    with released(helm_cluster, "helm-upgrade") as (release, jobs):
        before = release.running_operator()
        assert before is not None
        jobs.create("long", [*PYTHON, THREE_STEPS], ITEM_SECONDS="0.02")
        jobs.wait_items("long", 200)
        pod = jobs.pod("long", 1)
        assert pod is not None

        release.upgrade(**{"operator.logFormat": "json", "podAnnotations": {"rolled": "yes"}})
        after = release.wait_ready()
        done_at_roll = len(jobs.items("long"))
        assert after["metadata"]["uid"] != before["metadata"]["uid"], "the operator was rolled"
        assert "--log-format=json" in after["spec"]["containers"][0]["args"]
        deployment = json.loads(
            jobs.kubectl(
                "get", "deployment", release.fullname, "-n", release.namespace, "-o", "json"
            )
        )
        assert deployment["spec"]["strategy"]["type"] == "Recreate"
        assert done_at_roll < 2000, "the job was still running when the new operator took over"

        status = jobs.wait_phase("long", "Succeeded", "Failed")
        assert status["phase"] == "Succeeded", jobs.describe("long")
        still = jobs.pod("long", 1)
        assert still is not None
        assert still["metadata"]["uid"] == pod["metadata"]["uid"], "the same pod ran to the end"
        assert jobs.pod("long", 2) is None
        assert status["attempt"] == 1
        assert status["interruptions"] == 0
        assert jobs.items("long") == list(range(2000))
        assert sum(1 for line in jobs.lines("long") if line.startswith("attempt ")) == 1
        assert not release.forbidden(), "\n".join(release.forbidden()[:5])


def test_uninstall_removes_the_release_and_leaves_the_crd(helm_cluster: Cluster) -> None:
    with released(helm_cluster, "helm-uninstall") as (release, jobs):
        kubectl = helm_cluster.kubectl
        label = f"app.kubernetes.io/instance={release.name}"
        namespaced = "deployment,serviceaccount,service,role,rolebinding,pod"
        cluster_wide = "clusterrole,clusterrolebinding"

        def names(kinds: str, *scope: str) -> list[str]:
            out = kubectl("get", kinds, *scope, "-l", label, "-o", "name")
            return sorted(out.split())

        in_release = names(namespaced, "-n", release.namespace)
        in_watched = names("role,rolebinding", "-n", jobs.namespace)
        cluster_scoped = names(cluster_wide)
        assert f"deployment.apps/{release.fullname}" in in_release
        assert f"serviceaccount/{release.fullname}" in in_release
        assert f"service/{release.fullname}-metrics" in in_release
        assert in_watched == [
            f"role.rbac.authorization.k8s.io/{release.fullname}",
            f"rolebinding.rbac.authorization.k8s.io/{release.fullname}",
        ]
        # Given the namespaces it watches, the operator holds no cluster-scoped right.
        assert cluster_scoped == []

        release.uninstall()

        wait_for(
            lambda: not names(namespaced, "-n", release.namespace),
            timeout=120,
            what=f"release {release.name}'s objects and pods to be gone",
            detail=lambda: " ".join(names(namespaced, "-n", release.namespace)),
        )
        assert not names("role,rolebinding", "-n", jobs.namespace)
        assert not names(cluster_wide)
        listed = release.helm.run("list", "-n", release.namespace, "-q").stdout.split()
        assert release.name not in listed
        assert kubectl("get", "crd", CRD, "-o", "name").strip() == (
            f"customresourcedefinition.apiextensions.k8s.io/{CRD}"
        )
        # The kind still serves: jobs (none here) would have outlived the operator.
        kubectl("get", "cjob", "-n", jobs.namespace)


def test_cluster_wide_rbac_binds_exactly_the_chart_rules(helm_cluster: Cluster) -> None:
    """Installed for every namespace with no replica (so no second operator meets the others):
    the ServiceAccount may do what the ClusterRole lists, in any namespace, and no more."""
    kubectl = helm_cluster.kubectl
    with released(helm_cluster, "helm-rbac", install=False) as (release, jobs):
        release.watch = []
        release.install(replicaCount=0)
        role = json.loads(kubectl("get", "clusterrole", release.fullname, "-o", "json"))
        allowed = grants(role["rules"])
        assert not any(resource == "namespaces" for _, resource, _ in allowed)
        user = f"system:serviceaccount:{release.namespace}:{release.fullname}"

        def can(verb: str, resource: str, namespace: str) -> bool:
            base, _, sub = resource.partition("/")
            extra = [f"--subresource={sub}"] if sub else []
            result = kubectl.run(
                "auth", "can-i", verb, base, *extra, "-n", namespace, f"--as={user}", check=False
            )
            return result.stdout.strip() == "yes"

        for group, resource, verb in sorted(allowed):
            base, _, sub = resource.partition("/")
            target = (f"{base}.{group}" if group else base) + (f"/{sub}" if sub else "")
            assert can(verb, target, jobs.namespace), f"{user} cannot {verb} {target}"
        for verb, target in [
            ("escalate", "roles.rbac.authorization.k8s.io"),
            ("bind", "roles.rbac.authorization.k8s.io"),
            ("get", "secrets"),
            ("update", "pods"),
            ("create", "clusterroles.rbac.authorization.k8s.io"),
            ("delete", "namespaces"),
            ("update", "continuablejobs.continuable.dev"),
            ("list", "leases.coordination.k8s.io"),
        ]:
            assert not can(verb, target, jobs.namespace), f"{user} may {verb} {target}"


def test_set_with_a_typo_fails_the_install(helm_cluster: Cluster) -> None:
    with temporary_namespace(helm_cluster.kubectl, "helm-typo") as namespace:
        helm = Helm.pinned(helm_cluster.kubeconfig)
        result = helm.run(
            "install", "typo", str(CHART), "-n", namespace, "--set", "replicaCont=2", check=False
        )
        assert result.returncode != 0
        assert "additional properties 'replicaCont' not allowed" in result.stderr
        assert "typo" not in helm.run("list", "-n", namespace, "-q").stdout.split()
