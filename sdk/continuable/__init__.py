"""ContinuableJob's SDK: long batch jobs split into steps that resume where they stopped.

    import continuable

    with continuable.Job() as job:
        @job.step
        def fetch_orders(step):
            return [o.id for o in fetch()]

        @job.step
        def process_orders(step):
            for i in step.range(len(fetch_orders)):
                process(fetch_orders[i])

Importing this package loads neither the Kubernetes client nor pydantic: a local job starts fast.
"""

from continuable.ending import Outcome
from continuable.errors import (
    BackendError,
    BudgetExceeded,
    CheckpointTooLarge,
    ContinuableError,
    CursorError,
    FencedOut,
    Interrupted,
    InvalidStepError,
    ItemFailed,
    ResultError,
    ResultTooLarge,
    StepNotReplayable,
)
from continuable.jobs import Job
from continuable.mapping import Retry
from continuable.steps import AsyncStep, Step

__version__ = "0.1.0"

__all__ = [
    "AsyncStep",
    "BackendError",
    "BudgetExceeded",
    "CheckpointTooLarge",
    "ContinuableError",
    "CursorError",
    "FencedOut",
    "Interrupted",
    "InvalidStepError",
    "ItemFailed",
    "Job",
    "Outcome",
    "ResultError",
    "ResultTooLarge",
    "Retry",
    "Step",
    "StepNotReplayable",
    "__version__",
]
