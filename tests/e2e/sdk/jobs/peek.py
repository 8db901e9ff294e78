"""Run in a job's pod: try what its RBAC should allow and refuse; print the HTTP verdicts."""

from __future__ import annotations

import json
import os

from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

config.load_incluster_config()
custom = client.CustomObjectsApi()
core = client.CoreV1Api()
namespace = os.environ["CONTINUABLE_NAMESPACE"]
own = os.environ["CONTINUABLE_JOB"]
other = os.environ["OTHER_JOB"]
group = ("continuable.dev", "v1alpha1", namespace, "continuablejobs")


def verdict(call: object) -> int:
    try:
        call()  # type: ignore[operator]
    except ApiException as err:
        return int(err.status)
    return 200


verdicts = {
    "get own job": verdict(lambda: custom.get_namespaced_custom_object(*group, own)),
    "get other job": verdict(lambda: custom.get_namespaced_custom_object(*group, other)),
    "patch other status": verdict(
        lambda: custom.patch_namespaced_custom_object_status(
            *group,
            other,
            {"status": {"attempt": 99}},
            _content_type="application/merge-patch+json",
        )
    ),
    "get other results": verdict(
        lambda: core.read_namespaced_config_map(f"{other}-results", namespace)
    ),
    "list jobs": verdict(lambda: custom.list_namespaced_custom_object(*group)),
}
with open(os.environ["EVENTS"], "w", encoding="utf-8") as out:
    json.dump(verdicts, out)
