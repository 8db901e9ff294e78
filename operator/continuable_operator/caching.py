"""What the operator knows of the objects it reconciles, kept in memory so that a reconcile reads
no job, no pod and no owned object from the API server.

Two sources keep it: the watches (`informing.py`: the jobs, their pods and the other objects
made for them) and the answers to the operator's own writes (read-your-
writes: a reconcile right after a write sees it, even before its watch event arrives).

- An object is replaced only by a newer version of itself: a watch event that lags behind a
  write's answer, or a relist's copy older than both, is dropped. Versions are compared as the
  integers the API server's etcd revisions are; one that is not an integer always counts as news.
- A deleted object leaves a tombstone (its UID and version), so a write's answer that arrives
  after its deletion event cannot bring it back.
- A kind is `synced` once its first full list is in; until then a reader must not take a
  missing object for an absent one (at start-up a pod not yet listed is not a lost pod; a
  ConfigMap not yet listed is read from the API server).

Staleness can only cost a retry, never a wrong write: every write is fenced (status writes on
the attempt, owned objects on their controller's UID, pods on their UID), and a refused fenced
write makes the writer read the object from the API server again.

Every change the store takes, from either source, is told to `on_change(kind, event, old, new)`
(event ADDED, MODIFIED, DELETED, or LISTED for one a list found new or changed; `old` None for a
new object), once: a watch event that repeats a write's answer changes nothing and tells nothing,
and a write's answer that comes first tells what its watch event would have (the reconcile that
a pod's release or deletion calls for comes either way).

Objects are kept without `managedFields`, and a results ConfigMap without its results' values
(only their keys and the attempt fence are ever read): a thousand jobs' results stay out of the
operator's memory.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from continuable.names import JOB_LABEL, KIND, RESULTS_ATTEMPT_KEY

from . import queueing

Object = dict[str, Any]
Key = tuple[str, str]  # (namespace, name)
OnChange = Callable[[str, str, "Object | None", "Object"], None]
# Tombstones kept per kind, oldest dropped first: enough for every write in flight.
TOMBSTONES = 4096
# The kinds of the objects the operator makes for a job, all labelled with the job's name.
OWNED_KINDS = ("Pod", "ConfigMap", "ServiceAccount", "Role", "RoleBinding")
# Every kind the operator watches: the jobs, then what it makes for them.
WATCHED_KINDS = (KIND, *OWNED_KINDS)
# With the Kueue integration on (--kueue), the jobs' Workloads too.
WORKLOAD = queueing.KIND


def watched_kinds(kueue: bool) -> tuple[str, ...]:
    return (*WATCHED_KINDS, WORKLOAD) if kueue else WATCHED_KINDS


def version(obj: Mapping[str, Any]) -> int | None:
    """The object's resourceVersion as an integer (None when it is not one)."""
    text = (obj.get("metadata") or {}).get("resourceVersion")
    try:
        return int(text) if text is not None else None
    except (TypeError, ValueError):
        return None


def _newer(incoming: Mapping[str, Any], current: Mapping[str, Any] | None) -> bool:
    if current is None:
        return True
    new, old = version(incoming), version(current)
    return new is None or old is None or new > old


def trimmed(kind: str, obj: Mapping[str, Any]) -> Object:
    """The object as the store keeps it: without managedFields; a ConfigMap's values dropped
    but for the attempt fence."""
    metadata = {k: v for k, v in (obj.get("metadata") or {}).items() if k != "managedFields"}
    kept: Object = {**obj, "metadata": metadata}
    if kind == "ConfigMap" and kept.get("data"):
        kept["data"] = {
            key: (value if key == RESULTS_ATTEMPT_KEY else "")
            for key, value in kept["data"].items()
        }
    return kept


class _Shelf:
    """One kind's objects by (namespace, name), the names of each job's (a reconcile reads its
    job's pods without a scan of every pod), and the kind's tombstones."""

    def __init__(self) -> None:
        self.objects: dict[Key, Object] = {}
        self.by_job: dict[Key, set[str]] = {}  # (namespace, job) -> names of its objects
        self.tombstones: OrderedDict[str, int | None] = OrderedDict()  # uid -> version
        self.listed: set[str | None] = set()  # the namespaces listed (None: all of them)

    def put(self, key: Key, obj: Object) -> None:
        self.drop(key)
        self.objects[key] = obj
        job = job_of(obj)
        if job is not None:
            self.by_job.setdefault((key[0], job), set()).add(key[1])

    def drop(self, key: Key) -> None:
        gone = self.objects.pop(key, None)
        job = job_of(gone) if gone is not None else None
        if job is not None:
            names = self.by_job[(key[0], job)]
            names.discard(key[1])
            if not names:
                del self.by_job[(key[0], job)]

    def of_job(self, namespace: str, job: str) -> list[Object]:
        names = self.by_job.get((namespace, job), ())
        return [self.objects[(namespace, name)] for name in names]

    def buried(self, obj: Mapping[str, Any]) -> bool:
        uid = str((obj.get("metadata") or {}).get("uid"))
        if uid not in self.tombstones:
            return False
        died, seen = self.tombstones[uid], version(obj)
        return died is None or seen is None or seen <= died

    def bury(self, obj: Mapping[str, Any]) -> None:
        uid = (obj.get("metadata") or {}).get("uid")
        if uid:
            self.tombstones[uid] = version(obj)
            self.tombstones.move_to_end(uid)
            while len(self.tombstones) > TOMBSTONES:
                self.tombstones.popitem(last=False)


def job_of(obj: Mapping[str, Any]) -> str | None:
    """The name of the job an object was made for (its label)."""
    return ((obj.get("metadata") or {}).get("labels") or {}).get(JOB_LABEL)


def _key(obj: Mapping[str, Any]) -> Key:
    metadata = obj["metadata"]
    return str(metadata.get("namespace") or ""), str(metadata["name"])


class Store:
    """The operator's in-memory view, safe to use from any thread. Readers get the stored
    dicts themselves: they must not change them."""

    def __init__(
        self,
        namespaces: Iterable[str] = (),
        on_change: OnChange | None = None,
        *,
        kinds: tuple[str, ...] = WATCHED_KINDS,
    ) -> None:
        """`namespaces`: those the operator serves (none: all), each listed before a kind is
        synced. `kinds`: those watched (`watched_kinds`)."""
        self.on_change = on_change
        self.kinds = kinds
        self._lock = threading.Lock()
        self._shelves = {kind: _Shelf() for kind in kinds}
        self._synced = threading.Condition(self._lock)
        self._scopes: set[str | None] = set(namespaces) or {None}

    # Writing.

    def apply(self, kind: str, event: str | None, obj: Mapping[str, Any]) -> bool:
        """Take a watch event or a write's answer (`event` None, ADDED or MODIFIED: the object
        is; DELETED: it is gone); whether the store changed (False: the event was stale)."""
        change = self._take(kind, event, obj)
        if change is not None:
            self._tell(kind, [change])
        return change is not None

    def _take(
        self, kind: str, event: str | None, obj: Mapping[str, Any]
    ) -> tuple[str, Object | None, Object] | None:
        shelf = self._shelves[kind]
        key = _key(obj)
        with self._lock:
            current = shelf.objects.get(key)
            if event == "DELETED":
                if current is not None and not _newer(obj, current):
                    # A newer object of that name (created again) outlived this deletion.
                    same = current["metadata"].get("uid") == obj["metadata"].get("uid")
                    if not same:
                        shelf.bury(obj)
                        return None
                shelf.bury(obj)
                shelf.drop(key)
                gone = current if current is not None else dict(obj)
                return "DELETED", gone, gone
            if shelf.buried(obj) or not _newer(obj, current):
                return None
            shelf.put(key, trimmed(kind, obj))
            return ("ADDED" if current is None else "MODIFIED"), current, shelf.objects[key]

    def _tell(self, kind: str, changes: list[tuple[str, Object | None, Object]]) -> None:
        if self.on_change is not None:
            for event, old, new in changes:
                self.on_change(kind, event, old, new)

    def replace(
        self,
        kind: str,
        objects: Iterable[Mapping[str, Any]],
        listed: int | None,
        *,
        namespace: str | None = None,
    ) -> None:
        """A full list of the kind in a namespace (None: in all of them), at a start or a relist
        after the watch fell behind: what it lacks was deleted meanwhile, unless the store's
        copy is newer than the list."""
        shelf = self._shelves[kind]
        fresh = {_key(o): o for o in objects}
        changes: list[tuple[str, Object | None, Object]] = []
        with self._lock:
            for key, stored_object in list(shelf.objects.items()):
                if key in fresh or (namespace is not None and key[0] != namespace):
                    continue
                stored = version(stored_object)
                if listed is None or stored is None or stored <= listed:
                    shelf.bury(stored_object)
                    shelf.drop(key)
                    changes.append(("DELETED", stored_object, stored_object))
            for key, obj in fresh.items():
                current = shelf.objects.get(key)
                if not shelf.buried(obj) and _newer(obj, current):
                    shelf.put(key, trimmed(kind, obj))
                    changes.append(("LISTED", current, shelf.objects[key]))
            shelf.listed.add(namespace)
            self._synced.notify_all()
        self._tell(kind, changes)

    # Reading.

    def _listed(self, kind: str) -> bool:
        return self._scopes <= self._shelves[kind].listed

    def synced(self, kind: str) -> bool:
        """Whether the kind's first lists are in: until then an object missing here may exist."""
        with self._lock:
            return self._listed(kind)

    def wait_synced(self, kinds: Iterable[str], timeout: float) -> bool:
        """Wait until each of these kinds is synced (or the timeout passes)."""
        wanted = tuple(kinds)
        with self._synced:
            return self._synced.wait_for(lambda: all(self._listed(k) for k in wanted), timeout)

    def get(self, kind: str, namespace: str, name: str) -> Object | None:
        with self._lock:
            return self._shelves[kind].objects.get((namespace, name))

    def job_objects(self, kind: str, namespace: str, job: str) -> list[Object]:
        """The objects of the kind labelled with this job's name (its pods, say)."""
        with self._lock:
            return self._shelves[kind].of_job(namespace, job)
