"""API errors become sentences that say what to do next."""

from __future__ import annotations

import pytest

from continuable.cli.errors import ApiError, job_lookup_error, pod_gone_error


@pytest.mark.parametrize(
    ("error", "message"),
    [
        (
            ApiError(404, 'continuablejobs.continuable.dev "x" not found'),
            'continuablejob "x" not found in namespace "shop" (list them with '
            "`kubectl get cjob -A`)",
        ),
        (
            ApiError(404, "the server could not find the requested resource"),
            "the ContinuableJob API (continuablejobs.continuable.dev) is not installed on this "
            "cluster; install it with `kubectl apply --server-side -f crds/` or the Helm chart",
        ),
        (
            ApiError(403, 'User "ann" cannot get resource "continuablejobs"'),
            'not allowed to read continuablejob shop/x: User "ann" cannot get resource '
            '"continuablejobs"',
        ),
        (
            ApiError(0, "cannot reach the API server at https://127.0.0.1:6443: refused"),
            "cannot reach the API server at https://127.0.0.1:6443: refused",
        ),
    ],
)
def test_job_lookup_errors(error: ApiError, message: str) -> None:
    assert job_lookup_error(error, name="x", namespace="shop").message == message


def test_pod_errors() -> None:
    gone = pod_gone_error(ApiError(404, "not found"), pod="x-1", namespace="shop", what="delete")
    assert gone.message == 'cannot delete pod "x-1": it no longer exists in namespace "shop"'
    explained = pod_gone_error(
        ApiError(404, "not found"), pod="x-1", namespace="shop", what="read the log of", why="w"
    )
    assert explained.message == (
        'cannot read the log of pod "x-1": it no longer exists in namespace "shop" (w)'
    )
    denied = pod_gone_error(ApiError(403, "no"), pod="x-1", namespace="shop", what="delete")
    assert denied.message == "not allowed to delete pod shop/x-1: no"
    other = pod_gone_error(
        ApiError(500, "dial tcp: lookup node-1: no such host"),
        pod="x-1",
        namespace="shop",
        what="read the log of",
    )
    assert (
        other.message
        == "cannot read the log of pod shop/x-1: dial tcp: lookup node-1: no such host"
    )
