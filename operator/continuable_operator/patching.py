"""What the executor's writes send: JSON patches that hold only on the state they were planned
on. A status write is fenced on the attempt (a `test` op), an object the job controls is
patched behind `test` ops on its controller reference, so a write never lands on an object
that changed attempts or hands since it was read. Pure functions over plain objects.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from continuable.names import (
    RESTART_FROM_STEP_ANNOTATION,
    RESTART_NONCE_ANNOTATION,
    RESULTS_ATTEMPT_KEY,
)

from .actions import PatchStatus

Object = dict[str, Any]
# The fields of a manifest that are not content to bring an existing object to.
HEADER = ("apiVersion", "kind", "metadata")


def pointer(*parts: str | int) -> str:
    """A JSON pointer (RFC 6901): `~` and `/` within a part escaped."""
    return "".join("/" + str(p).replace("~", "~0").replace("/", "~1") for p in parts)


def status_patch(action: PatchStatus, current: Mapping[str, Any]) -> tuple[Any, bool]:
    """The body of a status write and whether it is a JSON patch: fenced on the attempt, or,
    for the first write (nothing to fence on yet), a merge patch. `current` is the status as
    read (and written since): a checkpoint reset to nothing removes the one it holds."""
    if action.expected_attempt is None:
        return {"status": dict(action.fields)}, False
    ops: list[Object] = [
        {"op": "test", "path": "/status/attempt", "value": action.expected_attempt}
    ]
    for key, value in action.fields.items():
        if key == "checkpoint" and value is None:
            if "checkpoint" in current:
                ops.append({"op": "remove", "path": "/status/checkpoint"})
            continue
        ops.append({"op": "add", "path": pointer("status", key), "value": value})
    return ops, True


def controller_guard(obj: Mapping[str, Any], uid: str) -> list[Object]:
    """`test` ops that hold while the job with this UID still controls the object (which it
    does when read): a patch that starts with them cannot land on an object that changed
    hands meanwhile."""
    references = (obj.get("metadata") or {}).get("ownerReferences") or []
    index = next(i for i, r in enumerate(references) if r.get("controller"))
    return [
        {"op": "test", "path": pointer("metadata", "ownerReferences", index, "uid"), "value": uid},
        {
            "op": "test",
            "path": pointer("metadata", "ownerReferences", index, "controller"),
            "value": True,
        },
    ]


def update_ops(found: Mapping[str, Any], manifest: Mapping[str, Any]) -> list[Object]:
    """The ops that bring an existing object to the manifest: its owner references (re-owned
    as the manifest has them), its labels (others' labels stay) and its content; of the results
    ConfigMap only the `attempt` key, so the results stay. Empty when nothing differs."""
    have = found.get("metadata") or {}
    want = manifest["metadata"]
    ops: list[Object] = []
    references = want.get("ownerReferences") or []
    if (have.get("ownerReferences") or []) != references:
        ops.append({"op": "add", "path": "/metadata/ownerReferences", "value": references})
    ops += _map_ops(("metadata", "labels"), have.get("labels"), want.get("labels") or {})
    for key, value in manifest.items():
        if key in HEADER:
            continue
        if manifest["kind"] == "ConfigMap" and key == "data":
            fencing = {RESULTS_ATTEMPT_KEY: value[RESULTS_ATTEMPT_KEY]}
            ops += _map_ops(("data",), found.get("data"), fencing)
        elif (found.get(key) or None) != (value or None):  # an empty list is stored as none
            ops.append({"op": "add", "path": pointer(key), "value": value})
    return ops


def _map_ops(
    path: tuple[str, ...], have: Mapping[str, Any] | None, want: Mapping[str, Any]
) -> list[Object]:
    """Set these keys of a map (the rest stays); the whole map when there is none yet."""
    if not want:
        return []
    if not have:
        return [{"op": "add", "path": pointer(*path), "value": dict(want)}]
    return [
        {"op": "add", "path": pointer(*path, key), "value": value}
        for key, value in want.items()
        if have.get(key) != value
    ]


def restart_request_removal(step: str | None, nonce: str | None) -> list[Object]:
    """The ops that remove a restart request's annotations only while the request is the one
    acted on: its nonce; without a nonce (set by hand), the step annotation's value."""
    nonce_path = pointer("metadata", "annotations", RESTART_NONCE_ANNOTATION)
    step_path = pointer("metadata", "annotations", RESTART_FROM_STEP_ANNOTATION)
    ops: list[Object] = []
    if nonce is not None:
        ops += [
            {"op": "test", "path": nonce_path, "value": nonce},
            {"op": "remove", "path": nonce_path},
        ]
        if step is not None:
            ops.append({"op": "remove", "path": step_path})
    elif step is not None:
        # JSON patch cannot test that the nonce is absent: the step's value stands in.
        ops += [
            {"op": "test", "path": step_path, "value": step},
            {"op": "remove", "path": step_path},
        ]
    return ops


def restart_request_naming(step: str, nonce: str) -> list[Object]:
    """The ops that give a restart request set by hand its nonce, only while its step is still
    the one planned on."""
    step_path = pointer("metadata", "annotations", RESTART_FROM_STEP_ANNOTATION)
    return [
        {"op": "test", "path": step_path, "value": step},
        {
            "op": "add",
            "path": pointer("metadata", "annotations", RESTART_NONCE_ANNOTATION),
            "value": nonce,
        },
    ]
