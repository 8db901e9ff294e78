"""`continuable interrupt` stamps the pod the way the operator and the Eviction API do."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

from continuable.cli.interrupting import disruption_patch, requested_by


def test_the_patch_adds_a_disruption_target_condition_naming_who_asked() -> None:
    moment = datetime(2026, 5, 4, 14, 0, 30, tzinfo=timezone(timedelta(hours=2)))

    assert disruption_patch(requester="ann@laptop", now=moment) == {
        "status": {
            "conditions": [
                {
                    "type": "DisruptionTarget",
                    "status": "True",
                    "reason": "ManualInterruption",
                    "message": "interrupted by `continuable interrupt` (ann@laptop) to relaunch "
                    "the job from its checkpoint",
                    "lastTransitionTime": "2026-05-04T12:00:30Z",
                }
            ]
        }
    }


def test_the_time_defaults_to_now_in_utc() -> None:
    before = datetime.now(UTC).replace(microsecond=0)
    stamped = disruption_patch(requester="x")["status"]["conditions"][0]["lastTransitionTime"]
    assert datetime.fromisoformat(stamped.replace("Z", "+00:00")) >= before


def test_the_requester_is_user_at_host() -> None:
    user, _, host = requested_by().partition("@")
    assert user
    assert host
