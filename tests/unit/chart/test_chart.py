"""The Helm chart, rendered with the pinned helm (no cluster): lint, the objects it renders with
default and non-default values, its RBAC (exactly the verbs the operator uses), the strictness of
its values schema, and its CRD being the generated one, byte for byte."""

from __future__ import annotations

import json
import re
import tomllib
from typing import Any

import pytest
import yaml

from continuable_operator.permissions import build_role

from .conftest import Render
from .helm import (
    CHART,
    CHART_CRD,
    PYPROJECT,
    TOP_LEVEL_CRD,
    Helm,
    HelmError,
    Manifest,
    find,
    grants,
    kind_name,
    one,
    set_flags,
)

FULLNAME = "rel-continuable-operator"

Grant = tuple[str, str, str]


def spelled(group: str, resource: str, *verbs: str) -> set[Grant]:
    return {(group, resource, verb) for verb in verbs}


# Every right of the operator, all on namespaced resources: in the ClusterRole cluster-wide, in
# the Role of each watched namespace otherwise.
OPERATOR = (
    spelled("continuable.dev", "continuablejobs", "get", "list", "watch", "patch", "delete")
    | spelled("continuable.dev", "continuablejobs/status", "get", "patch")
    | spelled("continuable.dev", "continuablejobs/finalizers", "update")
    | spelled("", "events", "create", "patch")
    | spelled("", "pods", "get", "list", "watch", "create", "delete", "patch")
    | spelled("", "pods/status", "patch")
    | spelled("", "configmaps", "get", "list", "watch", "create", "patch", "delete")
    | spelled("", "serviceaccounts", "get", "list", "watch", "create", "patch")
    | spelled(
        "rbac.authorization.k8s.io",
        "roles",
        *("get", "list", "watch", "create", "patch", "update", "delete"),
    )
    | spelled(
        "rbac.authorization.k8s.io",
        "rolebindings",
        *("get", "list", "watch", "create", "patch", "update", "delete"),
    )
)
LEASES = spelled("coordination.k8s.io", "leases", "get", "create", "update")

REQUIRED_LABELS = (
    "app.kubernetes.io/name",
    "app.kubernetes.io/instance",
    "app.kubernetes.io/version",
    "app.kubernetes.io/managed-by",
    "helm.sh/chart",
)

NON_DEFAULT: dict[str, Any] = {
    "replicaCount": 2,
    "watchNamespaces": ["batch", "reports"],
    "metrics.serviceMonitor.enabled": True,
    "metrics.serviceMonitor.labels": {"release": "prometheus"},
    "operator.logFormat": "json",
    "operator.verbose": True,
    "image.tag": "dev",
}


def deployment(objects: list[Manifest]) -> Manifest:
    return one(objects, "Deployment", FULLNAME)


def container(objects: list[Manifest]) -> dict[str, Any]:
    containers = deployment(objects)["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1
    found: dict[str, Any] = containers[0]
    return found


def rules_of(objects: list[Manifest], kind: str, name: str, namespace: str | None = None) -> Any:
    matches = [o for o in find(objects, kind, name) if o["metadata"].get("namespace") == namespace]
    assert len(matches) == 1, f"{kind} {namespace}/{name}: {len(matches)} found"
    return matches[0]["rules"]


# -- lint and metadata ---------------------------------------------------------------------------


@pytest.mark.parametrize("values", [{}, NON_DEFAULT], ids=["defaults", "non-default"])
def test_helm_lint_passes_strict(helm: Helm, values: dict[str, Any]) -> None:
    result = helm.run("lint", "--strict", str(CHART), *set_flags(values))
    assert "1 chart(s) linted, 0 chart(s) failed" in result.stdout, result.stdout


def test_app_version_is_the_package_version() -> None:
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    package = tomllib.loads(PYPROJECT.read_text())["project"]["version"]
    assert chart["appVersion"] == package
    assert chart["kubeVersion"].startswith(">=1.")


def test_the_chart_crd_is_the_generated_crd_byte_for_byte() -> None:
    assert CHART_CRD.read_bytes() == TOP_LEVEL_CRD.read_bytes(), (
        f"{CHART_CRD.relative_to(CHART.parents[1])} differs from "
        f"{TOP_LEVEL_CRD.relative_to(CHART.parents[1])}: copy it after `make crds`"
    )


def test_the_chart_crds_are_exactly_the_top_level_crd() -> None:
    assert sorted(p.name for p in (CHART / "crds").iterdir()) == [TOP_LEVEL_CRD.name]
    docs = [doc for doc in yaml.safe_load_all(CHART_CRD.read_text()) if doc]
    assert [doc["metadata"]["name"] for doc in docs] == ["continuablejobs.continuable.dev"]


# The API server's limit on the total size of an object's annotations (TotalAnnotationSizeLimitB).
ANNOTATIONS_LIMIT_BYTES = 256 * 1024


def test_the_readme_gives_the_true_reason_for_server_side_apply() -> None:
    """Client-side `kubectl apply` copies the whole CRD into its last-applied annotation, which
    fits: the README must not claim that it does not."""
    crd = yaml.safe_load(TOP_LEVEL_CRD.read_text())
    assert len(json.dumps(crd, separators=(",", ":"))) < ANNOTATIONS_LIMIT_BYTES
    readme = " ".join((CHART / "README.md").read_text().split())
    assert "too large" not in readme
    assert "**Helm does not upgrade CRDs.**" in readme
    # Helm installed the CRD as field manager `helm`: the apply must take its fields over
    # (tests/e2e/helm/test_helm_crds.py runs this command on a CRD Helm installed).
    assert "kubectl apply --server-side --force-conflicts -f continuable-operator/crds/" in readme


def test_image_tag_defaults_to_app_version(render: Render) -> None:
    assert container(render())["image"] == "continuable-operator:0.1.0"
    custom = render({"image.repository": "registry.example.com/op", "image.tag": "dev"})
    assert container(custom)["image"] == "registry.example.com/op:dev"


# -- values.yaml and values.schema.json ----------------------------------------------------------


def _key_lines(text: str) -> list[tuple[int, str, int, bool, bool]]:
    """(line number, key, indent, commented directly above, value is a nested mapping)."""
    lines = text.splitlines()
    found = []
    for number, line in enumerate(lines):
        match = re.match(r"^( *)([A-Za-z][\w.-]*):(.*)$", line)
        if not match:
            continue
        above = lines[number - 1].strip() if number else ""
        nested = match.group(3).strip() == "" and number + 1 < len(lines)
        if nested:
            following = lines[number + 1]
            nested = not following.lstrip().startswith("- ")
        found.append(
            (number + 1, match.group(2), len(match.group(1)), above.startswith("#"), nested)
        )
    return found


def test_every_value_has_a_comment() -> None:
    """Each leaf value is commented directly above it, or sits under a commented section."""
    text = (CHART / "values.yaml").read_text()
    stack: list[tuple[int, bool]] = []  # (indent, commented) of the enclosing keys
    missing = []
    for number, key, indent, commented, nested in _key_lines(text):
        while stack and stack[-1][0] >= indent:
            stack.pop()
        covered = commented or any(c for _, c in stack)
        if not nested and not covered:
            missing.append(f"line {number}: {key}")
        stack.append((indent, commented))
    assert not missing, f"values without a comment: {missing}"


def _schema_nodes(node: Any, path: str = "") -> list[tuple[str, dict[str, Any]]]:
    nodes = []
    if isinstance(node, dict):
        nodes.append((path, node))
        for key, value in node.get("properties", {}).items():
            nodes += _schema_nodes(value, f"{path}.{key}")
        for keyword in ("items", "additionalProperties"):
            if isinstance(node.get(keyword), dict):
                nodes += _schema_nodes(node[keyword], f"{path}[{keyword}]")
        for keyword in ("anyOf", "oneOf", "allOf"):
            for i, option in enumerate(node.get(keyword, [])):
                nodes += _schema_nodes(option, f"{path}[{keyword}{i}]")
    return nodes


def test_the_schema_is_strict_and_covers_every_value() -> None:
    schema = json.loads((CHART / "values.schema.json").read_text())
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    for path, node in _schema_nodes(schema):
        assert "type" in node or "anyOf" in node, f"{path or 'root'} has no type"
        if "properties" in node:
            assert node.get("additionalProperties") is False, f"{path or 'root'} is not closed"

    def walk(value: Any, node: dict[str, Any], path: str) -> None:
        if isinstance(value, dict) and "properties" in node:
            for key, child in value.items():
                assert key in node["properties"], f"{path}.{key} is not in the schema"
                walk(child, node["properties"][key], f"{path}.{key}")

    walk(values, schema, "")


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"replicaCoun": 2}, "additional properties 'replicaCoun' not allowed"),
        ({"metrics.serviceMonitor.enabeld": True}, "additional properties 'enabeld' not allowed"),
        ({"image.tagg": "dev"}, "additional properties 'tagg' not allowed"),
        ({"replicaCount": "two"}, "at '/replicaCount': got string, want integer"),
        ({"watchNamespaces": "batch"}, "at '/watchNamespaces': got string, want array"),
        ({"operator.logFormat": "yaml"}, "at '/operator/logFormat'"),
        ({"metrics.port": 70000}, "at '/metrics/port'"),
        ({"watchNamespaces": ["Batch_1"]}, "at '/watchNamespaces/0'"),
    ],
    ids=["typo", "nested-typo", "image-typo", "type", "array", "enum", "port", "namespace"],
)
def test_the_schema_refuses_bad_values(helm: Helm, values: dict[str, Any], message: str) -> None:
    with pytest.raises(HelmError) as failed:
        helm.template(values)
    assert "values don't meet the specifications of the schema" in failed.value.stderr
    assert message in failed.value.stderr


def test_a_typo_in_plain_set_fails_too(helm: Helm) -> None:
    result = helm.run("template", "rel", str(CHART), "--set", "replicaCont=2", check=False)
    assert result.returncode != 0
    assert "additional properties 'replicaCont' not allowed" in result.stderr


# -- rendered objects: defaults ------------------------------------------------------------------


def test_defaults_render_the_operator_and_nothing_optional(render: Render) -> None:
    objects = render()
    assert sorted((o["kind"], o["metadata"]["name"]) for o in objects) == [
        ("ClusterRole", FULLNAME),
        ("ClusterRoleBinding", FULLNAME),
        ("Deployment", FULLNAME),
        ("Service", f"{FULLNAME}-metrics"),
        ("ServiceAccount", FULLNAME),
    ]


@pytest.mark.parametrize("values", [{}, NON_DEFAULT], ids=["defaults", "non-default"])
def test_every_object_has_the_recommended_labels(render: Render, values: dict[str, Any]) -> None:
    for obj in render(values):
        labels = obj["metadata"].get("labels", {})
        for label in REQUIRED_LABELS:
            assert label in labels, f"{obj['kind']} {obj['metadata']['name']} lacks {label}"
        assert labels["app.kubernetes.io/name"] == "continuable-operator"
        assert labels["app.kubernetes.io/instance"] == "rel"
        assert labels["app.kubernetes.io/version"] == "0.1.0"
        assert labels["app.kubernetes.io/managed-by"] == "Helm"


def test_the_deployment_runs_the_console_script_with_the_values(render: Render) -> None:
    objects = render()
    spec = deployment(objects)["spec"]
    assert spec["replicas"] == 1
    assert spec["strategy"] == {"type": "Recreate"}
    pod = spec["template"]
    assert spec["selector"]["matchLabels"].items() <= pod["metadata"]["labels"].items()
    assert pod["spec"]["serviceAccountName"] == FULLNAME
    c = container(objects)
    assert c["command"] == ["continuable-operator"]
    assert c["args"] == [
        "--metrics-port=8080",
        "--health-port=8081",
        "--qps=50",
        "--burst=100",
        "--log-format=text",
    ]
    ports = {p["name"]: p["containerPort"] for p in c["ports"]}
    assert ports == {"metrics": 8080, "health": 8081}
    env = {e["name"]: e for e in c["env"]}
    assert env["POD_NAMESPACE"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.namespace"
    assert c["resources"]["requests"] == {"cpu": "100m", "memory": "128Mi"}
    assert c["resources"]["limits"] == {"memory": "512Mi"}


def test_probes_hit_the_health_endpoints(render: Render) -> None:
    c = container(render())
    assert c["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "health"}
    assert c["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "health"}
    assert c["livenessProbe"]["failureThreshold"] == 6
    c = container(render({"health.port": 9001, "livenessProbe.periodSeconds": 3}))
    assert {"name": "health", "containerPort": 9001, "protocol": "TCP"} in c["ports"]
    assert "--health-port=9001" in c["args"]
    assert c["livenessProbe"]["periodSeconds"] == 3


def test_the_security_context_is_locked_down(render: Render) -> None:
    objects = render()
    pod = deployment(objects)["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert isinstance(pod["securityContext"]["runAsUser"], int)
    assert pod["securityContext"]["runAsUser"] != 0
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    c = container(objects)
    assert c["securityContext"] == {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "capabilities": {"drop": ["ALL"]},
    }
    assert c["volumeMounts"] == [{"name": "tmp", "mountPath": "/tmp"}]
    assert pod["volumes"] == [{"name": "tmp", "emptyDir": {"sizeLimit": "64Mi"}}]


def test_the_metrics_service_targets_the_operator(render: Render) -> None:
    objects = render()
    service = one(objects, "Service")
    pod_labels = deployment(objects)["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= pod_labels.items()
    assert service["spec"]["ports"] == [
        {"name": "metrics", "port": 8080, "targetPort": "metrics", "protocol": "TCP"}
    ]
    assert not find(render({"metrics.service.enabled": False}), "Service")


def test_cluster_wide_rbac_is_exactly_what_the_operator_uses(render: Render) -> None:
    objects = render()
    rules = rules_of(objects, "ClusterRole", FULLNAME)
    assert grants(rules) == OPERATOR
    binding = one(objects, "ClusterRoleBinding")
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "ClusterRole",
        "name": FULLNAME,
    }
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": FULLNAME, "namespace": "ops"}]
    assert not find(objects, "Role")
    assert not find(objects, "RoleBinding")


def _job_rules(objects: list[Manifest], namespaced: bool) -> Any:
    if namespaced:
        return rules_of(objects, "Role", FULLNAME, "batch")
    return rules_of(objects, "ClusterRole", FULLNAME)


@pytest.mark.parametrize("namespaced", [False, True], ids=["cluster-wide", "namespaced"])
def test_the_operator_may_block_owner_deletion(render: Render, namespaced: bool) -> None:
    """Every object the operator creates for a job is owned by it with blockOwnerDeletion, which
    the OwnerReferencesPermissionEnforcement admission plugin (OpenShift) allows only to whoever
    may update the owner's finalizers."""
    objects = render({"watchNamespaces": ["batch"]} if namespaced else {})
    held = grants(_job_rules(objects, namespaced))
    assert ("continuable.dev", "continuablejobs/finalizers", "update") in held


@pytest.mark.parametrize("namespaced", [False, True], ids=["cluster-wide", "namespaced"])
def test_the_operator_may_post_and_aggregate_its_events(render: Render, namespaced: bool) -> None:
    """It posts core/v1 Events; a repeated one (a pod creation refused every retry) raises the
    count of the Event it remembers posting, with a patch: it never reads Events, and does not
    use the events.k8s.io API."""
    objects = render({"watchNamespaces": ["batch"]} if namespaced else {})
    held = grants(_job_rules(objects, namespaced))
    assert {g for g in held if g[1] == "events"} == spelled("", "events", "create", "patch")


@pytest.mark.parametrize("namespaced", [False, True], ids=["cluster-wide", "namespaced"])
def test_the_operator_may_patch_and_delete_its_jobs(render: Render, namespaced: bool) -> None:
    """It removes a handled restart request's annotations with a JSON patch, and deletes a
    finished job after its spec.ttlSecondsAfterFinished."""
    objects = render({"watchNamespaces": ["batch"]} if namespaced else {})
    held = grants(_job_rules(objects, namespaced))
    assert spelled("continuable.dev", "continuablejobs", "patch", "delete") <= held


@pytest.mark.parametrize("values", [{}, NON_DEFAULT], ids=["defaults", "non-default"])
def test_no_rights_on_crds_or_namespaces(render: Render, values: dict[str, Any]) -> None:
    """The operator watches ContinuableJobs itself: it reads no CustomResourceDefinition and never
    lists or watches namespaces (given names, it watches each one), and uses only these groups."""
    for obj in render(values):
        for group, resource, verb in grants(obj.get("rules", [])):
            assert resource not in ("customresourcedefinitions", "namespaces"), obj["kind"]
            assert group in (
                "",
                "continuable.dev",
                "rbac.authorization.k8s.io",
                "coordination.k8s.io",
            ), (obj["kind"], group, resource, verb)


@pytest.mark.parametrize("values", [{}, NON_DEFAULT], ids=["defaults", "non-default"])
def test_no_rule_escalates_binds_or_uses_wildcards(render: Render, values: dict[str, Any]) -> None:
    for obj in render(values):
        for rule in obj.get("rules", []):
            assert not {"escalate", "bind", "impersonate", "*"} & set(rule["verbs"]), rule
            assert "*" not in rule["resources"], rule
            assert "*" not in rule["apiGroups"], rule


def test_the_operator_holds_every_right_of_the_per_job_role(render: Render) -> None:
    """So the API server lets it create the Role and RoleBinding without escalate or bind."""
    job = {"metadata": {"name": "report", "namespace": "batch", "uid": "u-1"}, "spec": {}}
    # resourceNames narrow the per-job rules; the operator holds them without that limit.
    per_job = grants(build_role(job, 3)["rules"])
    assert per_job <= grants(rules_of(render(), "ClusterRole", FULLNAME))
    namespaced = render({"watchNamespaces": ["batch"]})
    assert per_job <= grants(rules_of(namespaced, "Role", FULLNAME, "batch"))


def test_every_rbac_rule_says_why(helm: Helm) -> None:
    """Every rendered rule has a comment directly above it (the operator's reason for it)."""
    for values in ({}, NON_DEFAULT):
        text = helm.run("template", "rel", str(CHART), "-n", "ops", *set_flags(values)).stdout
        lines = text.splitlines()
        rule_starts = [i for i, line in enumerate(lines) if line.strip().startswith("- apiGroups:")]
        assert rule_starts
        for i in rule_starts:
            assert re.match(r"^\s*# \S", lines[i - 1]), (
                f"rule at rendered line {i + 1} has no comment:\n"
                + "\n".join(lines[max(0, i - 3) : i + 3])
            )
        assert "framework" not in text.lower()
        assert "kopf" not in text.lower()


# -- rendered objects: non-default values --------------------------------------------------------


def test_watch_namespaces_gives_a_role_per_namespace_and_nothing_cluster_scoped(
    render: Render,
) -> None:
    objects = render({"watchNamespaces": ["batch", "reports"]})
    # Given namespaces, the operator watches each one by name: no cluster-scoped right at all.
    assert not find(objects, "ClusterRole")
    assert not find(objects, "ClusterRoleBinding")
    assert [r["metadata"]["namespace"] for r in find(objects, "Role", FULLNAME)] == [
        "batch",
        "reports",
    ]
    for namespace in ("batch", "reports"):
        assert grants(rules_of(objects, "Role", FULLNAME, namespace)) == OPERATOR
        binding = [
            b for b in find(objects, "RoleBinding") if b["metadata"]["namespace"] == namespace
        ]
        assert len(binding) == 1
        assert binding[0]["roleRef"]["name"] == FULLNAME
        assert binding[0]["subjects"] == [
            {"kind": "ServiceAccount", "name": FULLNAME, "namespace": "ops"}
        ]
    args = container(objects)["args"]
    assert args[-2:] == ["--namespace=batch", "--namespace=reports"]
    assert sorted(kind_name(o) for o in objects) == sorted(
        [
            f"Deployment/ops/{FULLNAME}",
            f"Service/ops/{FULLNAME}-metrics",
            f"ServiceAccount/ops/{FULLNAME}",
            f"Role/batch/{FULLNAME}",
            f"RoleBinding/batch/{FULLNAME}",
            f"Role/reports/{FULLNAME}",
            f"RoleBinding/reports/{FULLNAME}",
        ]
    )


def test_one_replica_recreates_and_takes_no_lease(render: Render) -> None:
    objects = render()
    assert deployment(objects)["spec"]["strategy"] == {"type": "Recreate"}
    args = container(objects)["args"]
    assert not any(a.startswith(("--leader-elect", "--lease-", "--peering")) for a in args)
    assert not find(objects, "Role", f"{FULLNAME}-leader-election")
    assert not find(objects, "RoleBinding", f"{FULLNAME}-leader-election")
    for obj in objects:
        assert not any(g in LEASES for g in grants(obj.get("rules", []))), obj["kind"]
    # Zero replicas (the operator stopped) takes none either.
    assert not find(render({"replicaCount": 0}), "Role")


def test_the_pod_namespace_is_always_in_the_environment(render: Render) -> None:
    """The default --lease-namespace; harmless with one replica."""
    for values in ({}, {"replicaCount": 2}):
        env = {e["name"]: e for e in container(render(values))["env"]}
        assert env["POD_NAMESPACE"] == {
            "name": "POD_NAMESPACE",
            "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}},
        }
        assert "POD_ID" not in env, "a peering identity: replicas elect a leader instead"


def test_two_replicas_elect_a_leader_through_a_lease(render: Render) -> None:
    objects = render({"replicaCount": 2})
    spec = deployment(objects)["spec"]
    assert spec["replicas"] == 2
    assert spec["strategy"]["type"] == "RollingUpdate"
    assert spec["strategy"]["rollingUpdate"] == {"maxSurge": 1, "maxUnavailable": 0}
    args = container(objects)["args"]
    assert "--leader-elect" in args
    assert f"--lease-name={FULLNAME}" in args
    # The Lease lives in the pod's namespace (POD_NAMESPACE), where the Role below is.
    assert not any(a.startswith("--lease-namespace") for a in args)
    assert not any(a.startswith("--peering") for a in args)
    assert grants(rules_of(objects, "ClusterRole", FULLNAME)) == OPERATOR
    lease = f"{FULLNAME}-leader-election"
    rules = rules_of(objects, "Role", lease, "ops")
    assert grants(rules) == LEASES
    # get and update on the release's Lease only; create cannot be limited by name.
    for rule in rules:
        if set(rule["verbs"]) & {"get", "update"}:
            assert rule["resourceNames"] == [FULLNAME], rule
    binding = one(objects, "RoleBinding", lease)
    assert binding["metadata"]["namespace"] == "ops"
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "Role",
        "name": lease,
    }
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": FULLNAME, "namespace": "ops"}]
    # Only the Lease Role was added.
    assert sorted(kind_name(o) for o in objects) == sorted(
        [kind_name(o) for o in render()] + [f"Role/ops/{lease}", f"RoleBinding/ops/{lease}"]
    )


def test_two_replicas_in_namespaces_keep_the_lease_in_the_release_namespace(
    render: Render,
) -> None:
    objects = render(NON_DEFAULT)
    for namespace in ("batch", "reports"):
        assert grants(rules_of(objects, "Role", FULLNAME, namespace)) == OPERATOR
    assert not find(objects, "ClusterRole")
    assert not find(objects, "ClusterRoleBinding")
    lease = f"{FULLNAME}-leader-election"
    assert [r["metadata"]["namespace"] for r in find(objects, "Role", lease)] == ["ops"]
    assert grants(rules_of(objects, "Role", lease, "ops")) == LEASES
    args = container(objects)["args"]
    assert args == [
        "--metrics-port=8080",
        "--health-port=8081",
        "--qps=50",
        "--burst=100",
        "--log-format=json",
        "--namespace=batch",
        "--namespace=reports",
        "--leader-elect",
        f"--lease-name={FULLNAME}",
        "--verbose",
    ]
    named = render({"replicaCount": 3, "fullnameOverride": "jobs-operator"})
    pod = one(named, "Deployment", "jobs-operator")["spec"]["template"]["spec"]
    assert "--lease-name=jobs-operator" in pod["containers"][0]["args"]
    assert one(named, "Role", "jobs-operator-leader-election")["rules"][0]["resourceNames"] == [
        "jobs-operator"
    ]


def test_the_schema_has_no_peering_values(helm: Helm) -> None:
    with pytest.raises(HelmError) as failed:
        helm.template({"peering.name": "x"})
    assert "additional properties 'peering' not allowed" in failed.value.stderr


def test_the_service_monitor_is_off_by_default_and_scrapes_the_service(render: Render) -> None:
    assert not find(render(), "ServiceMonitor")
    objects = render(NON_DEFAULT)
    monitor = one(objects, "ServiceMonitor")
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    assert monitor["metadata"]["namespace"] == "ops"
    assert monitor["metadata"]["labels"]["release"] == "prometheus"
    service = one(objects, "Service")
    assert monitor["spec"]["selector"]["matchLabels"].items() <= (
        service["metadata"]["labels"].items()
    )
    assert monitor["spec"]["namespaceSelector"] == {"matchNames": ["ops"]}
    assert monitor["spec"]["endpoints"] == [
        {"port": "metrics", "path": "/metrics", "interval": "30s"}
    ]
    elsewhere = render(
        {"metrics.serviceMonitor.enabled": True, "metrics.serviceMonitor.namespace": "monitoring"}
    )
    assert one(elsewhere, "ServiceMonitor")["metadata"]["namespace"] == "monitoring"


def test_a_service_monitor_without_the_service_is_refused(helm: Helm) -> None:
    with pytest.raises(HelmError) as failed:
        helm.template({"metrics.serviceMonitor.enabled": True, "metrics.service.enabled": False})
    assert "metrics.serviceMonitor.enabled needs metrics.service.enabled" in failed.value.stderr


def test_existing_service_account_and_no_rbac(render: Render) -> None:
    objects = render(
        {"serviceAccount.create": False, "serviceAccount.name": "ops-sa", "rbac.create": False}
    )
    assert not find(objects, "ServiceAccount")
    for kind in ("ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding"):
        assert not find(objects, kind)
    assert deployment(objects)["spec"]["template"]["spec"]["serviceAccountName"] == "ops-sa"
    bound = render({"serviceAccount.create": False, "serviceAccount.name": "ops-sa"})
    assert one(bound, "ClusterRoleBinding")["subjects"][0]["name"] == "ops-sa"


def test_names_follow_the_overrides(render: Render) -> None:
    objects = render({"fullnameOverride": "cjob-operator"})
    assert one(objects, "Deployment")["metadata"]["name"] == "cjob-operator"
    assert one(objects, "ClusterRole")["metadata"]["name"] == "cjob-operator"
    named = render(release="continuable-operator")
    assert one(named, "Deployment")["metadata"]["name"] == "continuable-operator"


def test_scheduling_and_extras_pass_through(render: Render) -> None:
    objects = render(
        {
            "nodeSelector": {"kubernetes.io/os": "linux"},
            "tolerations": [{"key": "batch", "operator": "Exists", "effect": "NoSchedule"}],
            "priorityClassName": "system-cluster-critical",
            "podAnnotations": {"team": "platform"},
            "operator.extraArgs": ["--bind-address=127.0.0.1"],
            "operator.extraEnv": [{"name": "X", "value": "1"}],
            "imagePullSecrets": [{"name": "regcred"}],
        }
    )
    pod = deployment(objects)["spec"]["template"]
    assert pod["spec"]["nodeSelector"] == {"kubernetes.io/os": "linux"}
    assert pod["spec"]["tolerations"][0]["key"] == "batch"
    assert pod["spec"]["priorityClassName"] == "system-cluster-critical"
    assert pod["spec"]["imagePullSecrets"] == [{"name": "regcred"}]
    assert pod["metadata"]["annotations"]["team"] == "platform"
    c = container(objects)
    assert c["args"][-1] == "--bind-address=127.0.0.1"
    assert {"name": "X", "value": "1"} in c["env"]


def test_notes_say_how_to_run_a_first_job(helm: Helm) -> None:
    out = helm.run(
        "install", "rel", str(CHART), "-n", "ops", "--dry-run=client", *set_flags({})
    ).stdout
    notes = out.split("NOTES:", 1)[1]
    assert "ContinuableJob" in notes
    assert "kind: ContinuableJob" in notes
    assert "kubectl get cjob hello --watch" in notes
    assert "kubectl apply --server-side --force-conflicts -f crds/" in notes
    scoped = helm.run(
        "install",
        "rel",
        str(CHART),
        "-n",
        "ops",
        "--dry-run=client",
        *set_flags({"watchNamespaces": ["batch"]}),
    ).stdout
    assert "kubectl apply -n batch -f -" in scoped.split("NOTES:", 1)[1]


def test_notes_name_the_lease_with_several_replicas(helm: Helm) -> None:
    def notes(values: dict[str, Any]) -> str:
        out = helm.run(
            "install", "rel", str(CHART), "-n", "ops", "--dry-run=client", *set_flags(values)
        ).stdout
        return out.split("NOTES:", 1)[1]

    assert "Lease" not in notes({})
    several = notes({"replicaCount": 2})
    assert f"Lease ops/{FULLNAME}" in several
    assert f"kubectl get lease {FULLNAME} -n ops" in several
    assert "peering" not in several.lower()


KUEUE_NAMESPACED = spelled(
    "kueue.x-k8s.io", "workloads", "get", "list", "watch", "create", "patch", "delete"
) | spelled("kueue.x-k8s.io", "workloads/status", "patch")
KUEUE_CLUSTER = (
    spelled("kueue.x-k8s.io", "resourceflavors", "get")
    | spelled("kueue.x-k8s.io", "workloadpriorityclasses", "get")
    | spelled("scheduling.k8s.io", "priorityclasses", "get")
)


@pytest.mark.parametrize("namespaced", [False, True], ids=["cluster-wide", "namespaced"])
def test_kueue_rights_come_only_with_kueue_enabled(render: Render, namespaced: bool) -> None:
    """Workloads in the operator's own rules; Kueue's cluster-scoped objects it reads in a
    ClusterRole of their own, rendered also when only some namespaces are watched."""
    scope: dict[str, Any] = {"watchNamespaces": ["batch"]} if namespaced else {}
    objects = render({**scope, "kueue.enabled": True})
    assert grants(_job_rules(objects, namespaced)) == OPERATOR | KUEUE_NAMESPACED
    assert grants(rules_of(objects, "ClusterRole", f"{FULLNAME}-kueue")) == KUEUE_CLUSTER
    (deployment,) = find(objects, "Deployment")
    assert "--kueue" in deployment["spec"]["template"]["spec"]["containers"][0]["args"]
    without = render(scope)
    assert grants(_job_rules(without, namespaced)) == OPERATOR
    assert not [o for o in find(without, "ClusterRole") if o["metadata"]["name"].endswith("-kueue")]


def test_the_priority_boost_flag_comes_only_with_kueue(render: Render) -> None:
    def args(values: dict[str, Any]) -> list[str]:
        (deployment,) = find(render(values), "Deployment")
        return list(deployment["spec"]["template"]["spec"]["containers"][0]["args"])

    assert "--kueue-priority-boost" in args({"kueue.enabled": True, "kueue.priorityBoost": True})
    assert "--kueue-priority-boost" not in args({"kueue.priorityBoost": True})
