"""kstatus conditions: Ready always, Reconciling and Stalled only while True (docs/gitops.md)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from skaha_operator.domain.common import Condition, ConditionStatus, Phase
from skaha_operator.reconcile.conditions import summary_conditions

T0 = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)


def types(conditions: list[Condition]) -> dict[str, str]:
    return {c.type: c.status.value for c in conditions}


def test_a_status_written_by_an_earlier_version_loses_its_false_and_per_part_conditions() -> None:
    # Earlier versions wrote Reconciling=False and Stalled=False, and one condition per part or
    # dependency (ComputeReady, StorageReady.<name>, ...); the next step removes them and keeps
    # Ready's transition time.
    old = [
        Condition(type=t, status=ConditionStatus(s), reason="R", last_transition_time=T0)
        for t, s in (("Ready", "True"), ("Reconciling", "False"), ("Stalled", "False"))
    ] + [
        Condition(type=t, status=ConditionStatus.TRUE, reason="Up", last_transition_time=T0)
        for t in ("ComputeReady", "StorageReady.work", "DockerContainerReady")
    ]
    out = summary_conditions(old, Phase.RUNNING, "R", None, T0 + timedelta(hours=1), None)
    assert types(out) == {"Ready": "True"}
    assert out[0].last_transition_time == T0  # Ready did not change


def test_stalled_comes_and_goes_with_its_transition_time() -> None:
    t1, t2 = T0 + timedelta(minutes=1), T0 + timedelta(minutes=2)
    first = summary_conditions([], Phase.PREPARING, "LaunchPending", "m", T0, 1)
    assert types(first) == {"Ready": "False", "Reconciling": "True"}
    stalled = summary_conditions(first, Phase.PREPARING, "X", "m", t1, 1, stalled=True)
    assert types(stalled) == {"Ready": "False", "Stalled": "True"}
    assert [c.last_transition_time for c in stalled if c.type == "Stalled"] == [t1]
    again = summary_conditions(stalled, Phase.PREPARING, "LaunchPending", "m", t2, 1)
    assert types(again) == {"Ready": "False", "Reconciling": "True"}
    assert [c.last_transition_time for c in again if c.type == "Reconciling"] == [t2]
