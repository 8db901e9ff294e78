"""List-then-watch of the ContinuableJobs and of the objects the operator makes for them (pods,
results ConfigMaps, ServiceAccounts, Roles, RoleBindings: all labelled with their job's name),
into the `Store`.

One thread per kind (and per namespace, when the operator is given namespaces by name; given a
pattern such as `team-*` (`namespaces.py`), one watch of all namespaces keeps those the pattern
matches), as client-go's reflector does: a paginated list (a consistent snapshot at one
resourceVersion), then a watch from that version with bookmarks, so a quiet kind does not fall
behind the API server's window.
A watch that ends is resumed from the last version seen; one the API server no longer can
resume (410 Gone, or an ERROR event) is replaced by a new list. Failures are retried with a
backoff capped at `RETRY_MAX_SECONDS`; the thread ends only when stopped.

The store tells its listener of each change it takes (`caching.py`): the handlers turn a job's
or a pod's into a reconcile of the job (`handlers.py`).
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from kubernetes.watch.watch import iter_resp_lines

from continuable.names import GROUP, JOB_LABEL, KIND, PLURAL, VERSION

from . import queueing
from .caching import WORKLOAD, Store
from .namespaces import scopes, serves

log = logging.getLogger(__name__)
Object = dict[str, Any]
# Objects per page of a list: a few MB at most, as client-go's reflector pages.
PAGE = 500
# A watch is ended by the API server after this long and resumed; short enough that a
# connection dropped without a FIN is noticed (the read timeout is a little longer).
WATCH_SECONDS = 240
READ_TIMEOUT = WATCH_SECONDS + 30.0
RETRY_SECONDS = 1.0
RETRY_MAX_SECONDS = 30.0


class Gone(Exception):
    """The watch's resourceVersion is too old to resume from: list again."""


def _listers(
    core: Any, rbac: Any, custom: Any
) -> dict[str, tuple[Callable[..., Any], Callable[..., Any]]]:
    """Per kind: its namespaced list call (the namespace first) and its all-namespaces one."""

    def of_custom(
        group: str, version: str, plural: str
    ) -> tuple[Callable[..., Any], Callable[..., Any]]:
        def listed_in(namespace: str, **kwargs: Any) -> Any:
            return custom.list_namespaced_custom_object(group, version, namespace, plural, **kwargs)

        def listed_everywhere(**kwargs: Any) -> Any:
            return custom.list_cluster_custom_object(group, version, plural, **kwargs)

        return listed_in, listed_everywhere

    return {
        KIND: of_custom(GROUP, VERSION, PLURAL),
        WORKLOAD: of_custom(queueing.GROUP, queueing.VERSION, queueing.PLURAL),
        "Pod": (core.list_namespaced_pod, core.list_pod_for_all_namespaces),
        "ConfigMap": (core.list_namespaced_config_map, core.list_config_map_for_all_namespaces),
        "ServiceAccount": (
            core.list_namespaced_service_account,
            core.list_service_account_for_all_namespaces,
        ),
        "Role": (rbac.list_namespaced_role, rbac.list_role_for_all_namespaces),
        "RoleBinding": (
            rbac.list_namespaced_role_binding,
            rbac.list_role_binding_for_all_namespaces,
        ),
    }


def parse_event(line: str | bytes) -> tuple[str, Object]:
    """A watch line: its type and object; raises `Gone` for the API server's 410."""
    event = json.loads(line)
    kind, obj = str(event.get("type")), event.get("object") or {}
    if kind == "ERROR":
        code = obj.get("code")
        if code == 410 or obj.get("reason") in ("Expired", "Gone"):
            raise Gone(obj.get("message"))
        raise RuntimeError(f"watch error {code}: {obj.get('message')}")
    return kind, obj


class Informer:
    def __init__(
        self,
        store: Store,
        kind: str,
        *,
        namespace: str | None,
        list_call: Callable[..., Any],
        stopped: threading.Event,
        wanted: Callable[[str], bool] = lambda _: True,
    ) -> None:
        """`wanted(namespace)`: whether an object of that namespace is served (a watch of all
        namespaces for a pattern drops the others)."""
        self.store = store
        self._wanted = wanted
        self.kind = kind
        self.namespace = namespace
        self._list_call = list_call
        self._stopped = stopped

    def _call(self, **kwargs: Any) -> Any:
        args = (self.namespace,) if self.namespace is not None else ()
        # Every job; of the other kinds only the objects made for a job (its label).
        selector = {} if self.kind == KIND else {"label_selector": JOB_LABEL}
        return self._list_call(
            *args,
            **selector,
            _preload_content=False,
            _request_timeout=(5.0, READ_TIMEOUT),
            **kwargs,
        )

    def list(self) -> str:
        """List every page into the store; the list's resourceVersion."""
        began = time.monotonic()
        items: list[Object] = []
        token: str | None = None
        listed = ""
        # Pages, consistent (no resourceVersion): at version 0 the watch cache ignores the
        # limit and answers all of it at once, which after a restart among 6,000 jobs took the
        # API server 18 s for the jobs (against 8 s in pages) and held up everything else.
        while True:
            response = self._call(limit=PAGE, **({"_continue": token} if token else {}))
            page = json.loads(response.data)
            metadata = page.get("metadata") or {}
            listed = listed or str(metadata.get("resourceVersion") or "")
            items += [i for i in page.get("items") or [] if self._wanted(_namespace(i))]
            token = metadata.get("continue")
            if not token:
                break
        for item in items:
            item.setdefault("kind", self.kind)
        version = int(listed) if listed.isdigit() else None
        self.store.replace(self.kind, items, version, namespace=self.namespace)
        log.info(
            "listed %d %s in %.1f s (version %s)",
            len(items),
            self.kind,
            time.monotonic() - began,
            listed,
        )
        return listed

    def watch(self, since: str) -> str:
        """Watch from `since` until the API server ends the watch; the last version seen."""
        response = self._call(
            watch=True,
            resource_version=since,
            allow_watch_bookmarks=True,
            timeout_seconds=WATCH_SECONDS,
        )
        try:
            for line in iter_resp_lines(response):
                if self._stopped.is_set():
                    break
                if not line.strip():
                    continue
                kind, obj = parse_event(line)
                since = str((obj.get("metadata") or {}).get("resourceVersion") or since)
                if kind == "BOOKMARK" or not self._wanted(_namespace(obj)):
                    continue
                obj.setdefault("kind", self.kind)
                self.store.apply(self.kind, kind, obj)
        finally:
            response.release_conn()
        return since

    def run(self) -> None:
        failures = 0
        since: str | None = None
        while not self._stopped.is_set():
            try:
                if since is None:
                    since = self.list()
                since = self.watch(since)
                failures = 0
            except Gone:
                since = None
            except Exception as err:  # the API server away or refusing: retry, never die
                failures += 1
                delay = min(RETRY_SECONDS * 2 ** min(failures - 1, 8), RETRY_MAX_SECONDS)
                log.warning("watching %s failed: %s; again in %.0fs", self.kind, err, delay)
                since = None if failures > 1 else since
                self._stopped.wait(delay)


def _namespace(obj: Object) -> str:
    return str((obj.get("metadata") or {}).get("namespace") or "")


def start_informers(
    store: Store,
    *,
    core: Any,
    rbac: Any,
    custom: Any,
    namespaces: list[str],
    stopped: threading.Event,
) -> list[Informer]:
    """One informer thread per watched kind and namespace served (`namespaces` as given to
    --namespace: names or patterns; none: all namespaces). The store must have been made with
    `scopes(namespaces)`."""
    listers = _listers(core, rbac, custom)
    informers = []
    watched: list[str | None] = [*scopes(namespaces)] or [None]
    for kind in store.kinds:
        namespaced, everywhere = listers[kind]
        for namespace in watched:
            call = namespaced if namespace is not None else everywhere
            informer = Informer(
                store,
                kind,
                namespace=namespace,
                list_call=call,
                stopped=stopped,
                wanted=lambda ns: serves(namespaces, ns),
            )
            threading.Thread(
                target=informer.run, name=f"informer-{kind}-{namespace or 'all'}", daemon=True
            ).start()
            informers.append(informer)
    return informers
