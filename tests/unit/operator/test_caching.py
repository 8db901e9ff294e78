"""The store: newer versions only, tombstones against resurrection, lists that replace what they
cover, and `synced` only once every namespace served has been listed."""

from __future__ import annotations

from typing import Any

from continuable_operator.caching import Store, trimmed


def _pod(name: str, version: int, *, namespace: str = "batch", uid: str | None = None) -> Any:
    return {
        "kind": "Pod",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "uid": uid or f"uid-{name}",
            "resourceVersion": str(version),
            "labels": {"continuable.dev/job": "report"},
        },
        "status": {"phase": f"v{version}"},
    }


def _phase(store: Store, name: str, namespace: str = "batch") -> str | None:
    found = store.get("Pod", namespace, name)
    return None if found is None else found["status"]["phase"]


def _told(store: Store) -> list[tuple[str, str | None, str]]:
    """What the store tells its listener: (event, old phase, new phase)."""
    told: list[tuple[str, str | None, str]] = []

    def listen(kind: str, event: str, old: Any, new: Any) -> None:
        told.append((event, old and old["status"]["phase"], new["status"]["phase"]))

    store.on_change = listen
    return told


def test_a_watch_event_older_than_a_writes_answer_is_dropped_and_told_nothing() -> None:
    store = Store()
    told = _told(store)
    assert store.apply("Pod", None, _pod("a", 7))  # our write's answer
    assert not store.apply("Pod", "MODIFIED", _pod("a", 5))  # the watch, lagging
    assert not store.apply("Pod", "MODIFIED", _pod("a", 7))  # the watch, repeating it
    assert _phase(store, "a") == "v7"
    assert store.apply("Pod", "MODIFIED", _pod("a", 9))
    assert _phase(store, "a") == "v9"
    # Each change told once, whichever source brought it first.
    assert told == [("ADDED", None, "v7"), ("MODIFIED", "v7", "v9")]


def test_a_writes_answer_after_the_deletion_cannot_bring_the_object_back() -> None:
    store = Store()
    store.apply("Pod", "ADDED", _pod("a", 3))
    store.apply("Pod", "DELETED", _pod("a", 8))
    assert not store.apply("Pod", None, _pod("a", 6))
    assert store.get("Pod", "batch", "a") is None
    # Another object of that name (another UID) is news.
    assert store.apply("Pod", "ADDED", _pod("a", 9, uid="second"))
    assert _phase(store, "a") == "v9"


def test_the_deletion_of_an_older_object_of_the_same_name_keeps_the_newer_one() -> None:
    store = Store()
    store.apply("Pod", "ADDED", _pod("a", 9, uid="second"))
    store.apply("Pod", "DELETED", _pod("a", 4, uid="first"))
    assert _phase(store, "a") == "v9"


def test_a_list_replaces_what_it_covers_but_keeps_what_is_newer_than_it() -> None:
    store = Store(["batch", "other"])
    store.apply("Pod", "ADDED", _pod("gone", 3))
    store.apply("Pod", "ADDED", _pod("created-after-the-list", 12))
    store.apply("Pod", "ADDED", _pod("elsewhere", 2, namespace="other"))
    told = _told(store)
    store.replace("Pod", [_pod("kept", 5)], 10, namespace="batch")
    assert store.get("Pod", "batch", "gone") is None
    assert _phase(store, "created-after-the-list") == "v12"
    assert _phase(store, "kept") == "v5"
    assert _phase(store, "elsewhere", "other") == "v2"
    assert sorted(told) == [("DELETED", "v3", "v3"), ("LISTED", None, "v5")]
    assert not store.wait_synced(["Pod"], 0)  # "other" not listed yet
    store.replace("Pod", [], 10, namespace="other")
    assert store.wait_synced(["Pod"], 0)
    assert store.get("Pod", "other", "elsewhere") is None


def test_objects_of_a_job_are_found_by_its_label() -> None:
    store = Store()
    mine, theirs = _pod("report-1", 1), _pod("other-1", 1)
    theirs["metadata"]["labels"] = {"continuable.dev/job": "other"}
    store.replace("Pod", [mine, theirs], 1)
    assert [p["metadata"]["name"] for p in store.job_objects("Pod", "batch", "report")] == [
        "report-1"
    ]
    assert store.wait_synced(["Pod"], 0.01)
    assert not store.wait_synced(["Pod", "Role"], 0.01)


def test_the_store_keeps_no_managed_fields_and_no_result_values() -> None:
    config_map = {
        "kind": "ConfigMap",
        "metadata": {"name": "report-results", "managedFields": [{"manager": "x"}]},
        "data": {"attempt": "3", "step.load": '{"rows": 100000}'},
    }
    kept = trimmed("ConfigMap", config_map)
    assert "managedFields" not in kept["metadata"]
    assert kept["data"] == {"attempt": "3", "step.load": ""}
    assert config_map["data"]["step.load"]  # the given object is left as it was


def test_a_jobs_objects_follow_their_label_through_changes_deletions_and_relists() -> None:
    store = Store()

    def names(job: str, namespace: str = "batch") -> list[str]:
        return sorted(p["metadata"]["name"] for p in store.job_objects("Pod", namespace, job))

    store.replace("Pod", [_pod("report-1", 1), _pod("report-1", 1, namespace="etl")], 1)
    store.apply("Pod", "ADDED", _pod("report-2", 2))
    assert names("report") == ["report-1", "report-2"]
    assert names("report", "etl") == ["report-1"]
    moved = _pod("report-2", 3)
    moved["metadata"]["labels"] = {"continuable.dev/job": "other"}
    store.apply("Pod", "MODIFIED", moved)
    assert (names("report"), names("other")) == (["report-1"], ["report-2"])
    store.apply("Pod", "DELETED", _pod("report-1", 4))
    assert names("report") == []
    store.replace("Pod", [], 5)  # the relist found none left anywhere
    assert (names("other"), names("report", "etl")) == ([], [])
