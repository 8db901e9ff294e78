"""What a judge returns: whether its invariant held, the evidence of each violation, figures.

A judge is a pure function of the run's `Records` (and its own parameters); it never reads the
operator's counters or conditions as the truth, only as the thing being checked.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Verdict:
    name: str
    held: bool
    # One line per violation, naming the job, the uid, the attempt and the records involved.
    evidence: list[str] = field(default_factory=list)
    figures: dict[str, float] = field(default_factory=dict)


def verdict(name: str, violations: list[str], figures: dict[str, float]) -> Verdict:
    return Verdict(name, not violations, violations, figures)


def short(uid: str | None) -> str:
    """A uid short enough for a line of evidence, long enough to tell two apart."""
    return (uid or "?")[:8]
