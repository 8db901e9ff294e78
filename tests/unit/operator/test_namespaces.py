"""The --namespace options: names watched one by one, patterns matched as kopf matched them
(the syntax existing deployments use)."""

from __future__ import annotations

import pytest

from continuable_operator.namespaces import matches, scopes, serves


@pytest.mark.parametrize(
    ("namespaces", "watched", "served", "not_served"),
    [
        ([], [], "anything", None),
        (["batch", "etl"], ["batch", "etl"], "etl", "other"),
        # A pattern makes one watch of all namespaces, filtered.
        (["op-*"], [], "op-12", "other"),
        (["batch", "team-*,!team-x"], [], "team-a", "team-x"),
        (["batch", "team-?"], [], "team-a", "team-ab"),
    ],
)
def test_namespaces_are_watched_by_name_or_through_a_pattern(
    namespaces: list[str], watched: list[str], served: str, not_served: str | None
) -> None:
    assert scopes(namespaces) == watched
    assert serves(namespaces, served)
    if not_served is not None:
        assert not serves(namespaces, not_served)


@pytest.mark.parametrize(
    ("pattern", "namespace", "matched"),
    [
        # The first inclusive glob makes the match; a later one only matches again what an
        # exclusion took from it.
        ("myapp-*, !*-pr-*, *pr-123", "myapp-test", True),
        ("myapp-*, !*-pr-*, *pr-123", "myapp-pr-123", True),
        ("myapp-*, !*-pr-*, *pr-123", "myapp-pr-456", False),
        ("myapp-*, !*-pr-*, *pr-123", "otherapp-pr-123", False),
        # Starting with an exclusion: everything else first.
        ("!*-pr-*, *pr-123", "anyapp-anything", True),
        ("!*-pr-*, *pr-123", "otherapp-pr-123", True),
        ("!*-pr-*, *pr-123", "myapp-pr-456", False),
        # Case matters, as in namespace names.
        ("Team-*", "team-a", False),
    ],
)
def test_a_pattern_matches_as_kopf_documented_it(
    pattern: str, namespace: str, matched: bool
) -> None:
    assert matches(namespace, pattern) == matched
