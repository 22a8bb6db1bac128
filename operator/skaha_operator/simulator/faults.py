"""Fault injection: rules matched by route pattern and method, drawn from a seeded RNG.

Knobs (`docs/platform-api.md` §9.10): `latency_ms` (+ `jitter_ms`),
`p_500`, `p_503` and `p_429` (with `Retry-After: retry_after_s`; 429 is synthetic, real Skaha
never sends it), `hang_s` (with probability `p_hang`), `p_reset` (connection dropped mid-response,
after the handler ran), `fail_after_commit` (handler runs, then 500: a ghost session or rule),
and the semantic knobs `stuck_pending`, `stats_unavailable`, `home_alloc_fail`, `max_sessions`.

Timing windows of a real platform (docs/simulator.md "Timing windows"):
`answer_delay_s` — the handler runs and commits at once, the answer leaves `answer_delay_s` later
(wall clock; a client that gives up has still launched). `commit_delay_s` — a launch
(`POST /skaha/v1/session`) or rule creation (`POST /rucio/rules/`) is validated at once but becomes
visible (GET, listings, cap) only `commit_delay_s` later on the simulator clock; the answer waits
for the commit, unless `p_500`/`p_503`/`p_429` or `p_reset` fire, which then answer at once while
the commit still happens. `list_lag_s` — on a listing route (`GET /skaha/v1/session`,
`GET /rucio/rules/`, `GET /rucio/dids/{scope}/{name}/rules`) sessions and rules committed less than
`list_lag_s` ago are left out; GET by id is unaffected.
Every matching rule applies, in order; `count` limits a rule to its next N matches; the largest
delay of the matching rules wins.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from fnmatch import fnmatchcase

from skaha_operator.simulator.config import FaultRule


@dataclass
class FaultPlan:
    """What the faults decided for one request."""

    delay_s: float = 0.0
    hang_s: float = 0.0
    error_status: int | None = None
    retry_after_s: int = 1
    reset: bool = False
    fail_after_commit: bool = False
    answer_delay_s: float = 0.0
    commit_delay_s: float = 0.0
    list_lag_s: float = 0.0
    stuck_pending: float = 0.0
    stats_unavailable: bool = False
    home_alloc_fail: bool = False
    max_sessions: int | None = None


class FaultBook:
    """The live rule set and its seeded RNG."""

    def __init__(self, rules: list[FaultRule], seed: int) -> None:
        self._rng = random.Random(f"{seed}-faults")
        self._rules: list[FaultRule] = [rule.model_copy() for rule in rules]

    @property
    def rules(self) -> list[FaultRule]:
        """The current rules (with remaining counts)."""
        return list(self._rules)

    def replace(self, rules: list[FaultRule]) -> None:
        """Install a new rule set."""
        self._rules = [rule.model_copy() for rule in rules]

    def extend(self, rules: list[FaultRule]) -> None:
        """Add rules after the existing ones."""
        self._rules.extend(rule.model_copy() for rule in rules)

    def clear(self) -> None:
        """Remove every rule."""
        self._rules = []

    def plan(self, method: str, path: str) -> FaultPlan:
        """Draw the faults for one request; O(number of rules)."""
        plan = FaultPlan()
        for rule in self._rules:
            if not _matches(rule, method, path):
                continue
            if rule.count is not None:
                if rule.count <= 0:
                    continue
                rule.count -= 1
            self._apply(rule, plan)
        return plan

    def _apply(self, rule: FaultRule, plan: FaultPlan) -> None:
        rng = self._rng
        plan.delay_s += max(rule.latency_ms + rng.uniform(0.0, rule.jitter_ms), 0.0) / 1000.0
        for status, probability in ((500, rule.p_500), (503, rule.p_503), (429, rule.p_429)):
            if probability > 0 and plan.error_status is None and rng.random() < probability:
                plan.error_status = status
                plan.retry_after_s = rule.retry_after_s
        if rule.hang_s > 0 and (rule.p_hang >= 1 or rng.random() < rule.p_hang):
            plan.hang_s = max(plan.hang_s, rule.hang_s)
        if rule.p_reset > 0 and rng.random() < rule.p_reset:
            plan.reset = True
        if rule.fail_after_commit > 0 and rng.random() < rule.fail_after_commit:
            plan.fail_after_commit = True
        plan.answer_delay_s = max(plan.answer_delay_s, rule.answer_delay_s)
        plan.commit_delay_s = max(plan.commit_delay_s, rule.commit_delay_s)
        plan.list_lag_s = max(plan.list_lag_s, rule.list_lag_s)
        plan.stuck_pending = max(plan.stuck_pending, rule.stuck_pending)
        plan.stats_unavailable = plan.stats_unavailable or rule.stats_unavailable
        plan.home_alloc_fail = plan.home_alloc_fail or rule.home_alloc_fail
        if rule.max_sessions is not None:
            plan.max_sessions = rule.max_sessions


def _matches(rule: FaultRule, method: str, path: str) -> bool:
    return (rule.method == "*" or rule.method.upper() == method.upper()) and fnmatchcase(
        path, rule.route
    )
