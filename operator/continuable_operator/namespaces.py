"""Which namespaces the operator serves, from its `--namespace` options: names or patterns.

A pattern is the syntax kopf gave these options before the operator had watches of its own, kept
so that existing deployments mean the same: comma-separated globs (`*`, `?`), spaces ignored;
a glob starting with `!` excludes; when the first glob excludes, a catch-all comes before it.
The first inclusive glob makes the initial match; an exclusion unmatches; a later inclusive
glob matches again only a namespace the first one matched (`team-*, !*-pr-*, *-pr-1` serves
team-a and team-pr-1, not team-pr-2 nor other-pr-1).
"""

from __future__ import annotations

from fnmatch import fnmatchcase

PATTERN_CHARACTERS = ("!", "*", "?", ",")


def is_pattern(option: str) -> bool:
    return any(character in option for character in PATTERN_CHARACTERS)


def scopes(options: list[str]) -> list[str]:
    """The namespaces to watch one by one; none (watch all namespaces) when any is a pattern."""
    return [] if any(is_pattern(o) for o in options) else list(options)


def matches(namespace: str, pattern: str) -> bool:
    globs = [glob.strip() for glob in pattern.split(",")]
    if globs[0].startswith("!"):
        globs.insert(0, "*")
    first = matched = fnmatchcase(namespace, globs[0])
    for glob in globs[1:]:
        if glob.startswith("!"):
            matched = matched and not fnmatchcase(namespace, glob[1:])
        else:
            matched = matched or (first and fnmatchcase(namespace, glob))
    return matched


def serves(options: list[str], namespace: str) -> bool:
    """Whether a namespace is served: every one when no option is given."""
    return not options or any(matches(namespace, o) for o in options)
