"""Names of the ContinuableJob API, defined once.

The operator, the SDK, the CRD generator and the tests all spell these the same way; a rename
happens here and nowhere else.
"""

from __future__ import annotations

from typing import Final

GROUP: Final = "continuable.dev"
VERSION: Final = "v1alpha1"
API_VERSION: Final = f"{GROUP}/{VERSION}"
KIND: Final = "ContinuableJob"
LIST_KIND: Final = "ContinuableJobList"
PLURAL: Final = "continuablejobs"
SINGULAR: Final = "continuablejob"
# `cj` is CronJob's short name.
SHORT_NAME: Final = "cjob"
CRD_NAME: Final = f"{PLURAL}.{GROUP}"

JOB_LABEL: Final = f"{GROUP}/job"
ATTEMPT_LABEL: Final = f"{GROUP}/attempt"
TEMPLATE_HASH_ANNOTATION: Final = f"{GROUP}/template-hash"
RESTART_FROM_STEP_ANNOTATION: Final = f"{GROUP}/restart-from-step"
# Makes a repeated request for the same step a new request.
RESTART_NONCE_ANNOTATION: Final = f"{GROUP}/restart-nonce"
# The value of restart-from-step that means: from the first step.
RESTART_FROM_FIRST_STEP: Final = "*"
# The pod condition (the one the Eviction API and the scheduler use) stamped before a pod is
# stopped on purpose, so every termination has a recorded reason.
DISRUPTION_TARGET: Final = "DisruptionTarget"

ENV_JOB: Final = "CONTINUABLE_JOB"
ENV_NAMESPACE: Final = "CONTINUABLE_NAMESPACE"
ENV_ATTEMPT: Final = "CONTINUABLE_ATTEMPT"
# The job's UID: its writes test it, so a pod of a deleted job can never write into a new job
# of the same name.
ENV_JOB_UID: Final = "CONTINUABLE_JOB_UID"
ENV_CHECKPOINT_INTERVAL: Final = "CONTINUABLE_CHECKPOINT_INTERVAL"

# A job name is a label value on every pod, so it must be a DNS-1123 label.
JOB_NAME_PATTERN: Final = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
JOB_NAME_MAX_LENGTH: Final = 63

# A step's result is stored under its name as a ConfigMap key, so names use that alphabet.
STEP_NAME_PATTERN: Final = r"^[A-Za-z0-9_][A-Za-z0-9._-]*$"
STEP_NAME_MAX_LENGTH: Final = 128
MAX_STEPS: Final = 100

# Exit code of an attempt that stopped cleanly with its cursor flushed (sysexits' EX_TEMPFAIL).
EXIT_INTERRUPTED: Final = 75

KIB: Final = 1024
MIB: Final = 1024 * KIB
DEFAULT_CHECKPOINT_MAX_BYTES: Final = 16 * KIB
# A ConfigMap holds at most 1 MiB; half of it leaves room for keys and metadata.
DEFAULT_RESULTS_MAX_BYTES: Final = 512 * KIB
MIN_BUDGET_BYTES: Final = 1 * KIB
MAX_BUDGET_BYTES: Final = 1 * MIB
DEFAULT_CHECKPOINT_INTERVAL_SECONDS: Final = 10
# A pod's terminationGracePeriodSeconds when its template sets none (Kubernetes' default).
DEFAULT_GRACE_SECONDS: Final = 30
ATTEMPT_HISTORY_LENGTH: Final = 20

TRACKING_FINALIZER: Final = f"{GROUP}/tracking"
RESULTS_ATTEMPT_KEY: Final = "attempt"


def pod_name(job: str, attempt: int) -> str:
    """Deterministic, so creating an attempt's pod is idempotent across operator restarts."""
    return f"{job}-{attempt}"


def results_config_map(job: str) -> str:
    return f"{job}-results"


def checkpoint_service_account(job: str) -> str:
    """The ServiceAccount the operator creates when the template names none."""
    return f"{job}-checkpoint"
