"""What can go wrong in a `continuable` command, as messages a person can act on.

    CliError          a message for the user; the command prints it and exits 1
     └── ApiError     the API server refused a call (its HTTP status and message kept)

The cluster seam (`cluster.py`) raises `ApiError` for every refused call, wrapping the
Kubernetes client's exception with `raise ... from err`; the functions here turn the common
ones (a missing job, a missing CRD) into sentences that say what to do next.
"""

from __future__ import annotations

from continuable.names import CRD_NAME


class CliError(Exception):
    """A failure the command reports as `error: <message>` on stderr, with exit code 1."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class ApiError(CliError):
    """The API server answered a call with an error status (0: it could not be reached)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def job_lookup_error(err: ApiError, *, name: str, namespace: str) -> CliError:
    """The error to show when reading ContinuableJob `name` failed."""
    if err.status == 404:
        if "could not find the requested resource" in err.message:
            return CliError(
                f"the ContinuableJob API ({CRD_NAME}) is not installed on this cluster; "
                "install it with `kubectl apply --server-side -f crds/` or the Helm chart"
            )
        return CliError(
            f'continuablejob "{name}" not found in namespace "{namespace}" '
            "(list them with `kubectl get cjob -A`)"
        )
    if err.status == 403:
        return CliError(f"not allowed to read continuablejob {namespace}/{name}: {err.message}")
    return err


def pod_gone_error(
    err: ApiError, *, pod: str, namespace: str, what: str, why: str | None = None
) -> CliError:
    """The error to show when a call about one of the job's pods failed (`what`: a verb)."""
    if err.status == 404:
        return CliError(
            f'cannot {what} pod "{pod}": it no longer exists in namespace "{namespace}"'
            + (f" ({why})" if why else "")
        )
    if err.status == 403:
        return CliError(f"not allowed to {what} pod {namespace}/{pod}: {err.message}")
    return CliError(f"cannot {what} pod {namespace}/{pod}: {err.message}")
