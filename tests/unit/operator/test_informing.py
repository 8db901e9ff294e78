"""The informer against scripted list and watch answers: pages, bookmarks, a watch resumed from
the last version, a relist after 410 Gone, and the callback for each change the store took."""

from __future__ import annotations

import json
import threading
from typing import Any

import pytest

from continuable_operator.caching import Store
from continuable_operator.informing import Gone, Informer, parse_event


class Answer:
    """A urllib3 response as the informer reads it: `data` for a list, `stream` for a watch."""

    def __init__(self, body: Any = None, lines: list[Any] | None = None) -> None:
        self.data = json.dumps(body).encode() if body is not None else b""
        self._lines = lines or []
        self.released = False

    def stream(self, amt: Any = None, decode_content: bool = False) -> Any:
        text = "".join(json.dumps(line) + "\n" for line in self._lines).encode()
        # Split mid-line, as chunks of a chunked response are.
        yield from (text[i : i + 7] for i in range(0, len(text), 7))

    def release_conn(self) -> None:
        self.released = True


def _pod(name: str, version: int, phase: str = "Running") -> dict[str, Any]:
    return {
        "metadata": {
            "name": name,
            "namespace": "batch",
            "uid": f"uid-{name}",
            "resourceVersion": str(version),
            "labels": {"continuable.dev/job": "report"},
        },
        "status": {"phase": phase},
    }


class Script:
    """The list call: answers in order, each call recorded with its arguments."""

    def __init__(self, *answers: Answer) -> None:
        self.answers = list(answers)
        self.calls: list[dict[str, Any]] = []

    def __call__(self, *args: Any, **kwargs: Any) -> Answer:
        self.calls.append(kwargs)
        return self.answers.pop(0)


def _informer(
    script: Script, kind: str = "Pod"
) -> tuple[Informer, Store, list[tuple[str, str, str]]]:
    seen: list[tuple[str, str, str]] = []

    def on_change(kind: str, event: str, old: Any, new: Any) -> None:
        seen.append((event, new["metadata"]["name"], new["status"]["phase"]))

    store = Store(on_change=on_change)
    informer = Informer(store, kind, namespace=None, list_call=script, stopped=threading.Event())
    return informer, store, seen


def test_a_list_reads_every_page_and_watches_from_its_version() -> None:
    script = Script(
        Answer(
            {"metadata": {"resourceVersion": "10", "continue": "next"}, "items": [_pod("a", 4)]}
        ),
        Answer({"metadata": {"resourceVersion": "10"}, "items": [_pod("b", 6)]}),
        Answer(
            lines=[
                {"type": "BOOKMARK", "object": {"metadata": {"resourceVersion": "11"}}},
                {"type": "MODIFIED", "object": _pod("a", 12, "Failed")},
                {"type": "MODIFIED", "object": _pod("b", 5, "Stale")},
                {"type": "DELETED", "object": _pod("b", 13)},
            ]
        ),
    )
    informer, store, seen = _informer(script)
    since = informer.list()
    assert since == "10"
    assert script.calls[1]["_continue"] == "next"
    assert store.wait_synced(["Pod"], 0)
    assert informer.watch(since) == "13"
    assert script.calls[2]["resource_version"] == "10"
    assert script.calls[2]["allow_watch_bookmarks"] is True
    assert all(call["label_selector"] == "continuable.dev/job" for call in script.calls)
    assert seen == [
        ("LISTED", "a", "Running"),
        ("LISTED", "b", "Running"),
        ("MODIFIED", "a", "Failed"),
        ("DELETED", "b", "Running"),
    ]
    assert store.get("Pod", "batch", "b") is None
    assert store.get("Pod", "batch", "a")["kind"] == "Pod"  # type: ignore[index]


def test_an_expired_watch_is_gone_and_a_relist_drops_what_vanished_meanwhile() -> None:
    expired = {"type": "ERROR", "object": {"kind": "Status", "code": 410, "reason": "Expired"}}
    script = Script(
        Answer({"metadata": {"resourceVersion": "10"}, "items": [_pod("a", 4), _pod("b", 5)]}),
        Answer(lines=[expired]),
        Answer({"metadata": {"resourceVersion": "30"}, "items": [_pod("a", 21, "Failed")]}),
    )
    informer, _, seen = _informer(script)
    informer.list()
    with pytest.raises(Gone):
        informer.watch("10")
    informer.list()
    assert seen[2:] == [("DELETED", "b", "Running"), ("LISTED", "a", "Failed")]


def test_an_error_event_other_than_gone_is_an_error() -> None:
    line = json.dumps({"type": "ERROR", "object": {"code": 500, "message": "etcd"}})
    with pytest.raises(RuntimeError, match="etcd"):
        parse_event(line)


def test_the_jobs_are_listed_and_watched_without_a_label_selector() -> None:
    """Every ContinuableJob is the operator's; of the other kinds only what it made for one."""

    def job(version: int, phase: str) -> dict[str, Any]:
        found = _pod("report", version, phase)
        return {**found, "metadata": {**found["metadata"], "labels": {}}}

    script = Script(
        Answer({"metadata": {"resourceVersion": "10"}, "items": [job(4, "Running")]}),
        Answer(lines=[{"type": "MODIFIED", "object": job(12, "Failed")}]),
    )
    informer, store, seen = _informer(script, kind="ContinuableJob")
    informer.watch(informer.list())
    assert all("label_selector" not in call for call in script.calls)
    assert store.wait_synced(["ContinuableJob"], 0)
    assert seen == [("LISTED", "report", "Running"), ("MODIFIED", "report", "Failed")]
    assert store.get("ContinuableJob", "batch", "report")["kind"] == "ContinuableJob"  # type: ignore[index]
