"""kstatus (Flux, kpt, cli-utils) reads our objects as documented in docs/gitops.md.

`kstatus` below is the generic rule set of cli-utils `pkg/kstatus/status/generic.go` as the
docs/kubernetes-notes.md §7 describes it: Terminating on deletion; InProgress while
observedGeneration lags; Reconciling=True is InProgress and Stalled=True is Failed; then Ready
True is Current and Ready False InProgress; no conditions at all is Current.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.unit.gitops_status import every_phase, sample

# What docs/gitops.md promises, per phase.
EXPECTED = {
    "Initializing": "InProgress",
    "Preparing": "InProgress",
    "Releasing": "InProgress",
    "Waiting": "InProgress",
    "Available": "Current",
    "Running": "Current",
    "Failed": "Failed",
    "Expired": "Failed",
    # Settled but not Ready: generic kstatus keeps these InProgress (Flux needs the
    # healthCheckExprs of docs/gitops.md to count them as done).
    "Completed": "InProgress",
    "Cancelled": "InProgress",
}


def kstatus(obj: dict[str, Any]) -> str:
    """The generic kstatus result of one object."""
    meta, status = obj["metadata"], obj.get("status") or {}
    if meta.get("deletionTimestamp"):
        return "Terminating"
    observed = status.get("observedGeneration")
    if observed is not None and observed != meta.get("generation"):
        return "InProgress"
    conditions = {c["type"]: c["status"] for c in status.get("conditions") or []}
    if conditions.get("Reconciling") == "True":
        return "InProgress"
    if conditions.get("Stalled") == "True":
        return "Failed"
    if "Ready" in conditions:
        return "Current" if conditions["Ready"] == "True" else "InProgress"
    return "Current"


@pytest.mark.parametrize(("kind", "phase"), every_phase())
def test_every_phase_reads_as_documented(kind: str, phase: str) -> None:
    assert kstatus(sample(kind, phase)) == EXPECTED[phase]


@pytest.mark.parametrize(("kind", "phase"), every_phase())
def test_reconciling_and_stalled_are_never_both_true(kind: str, phase: str) -> None:
    # Ready is always there; Reconciling and Stalled only while True (absent reads as False).
    for stalled in (False, True):
        conditions = {
            c["type"]: c["status"]
            for c in sample(kind, phase, stalled=stalled)["status"]["conditions"]
        }
        assert "Ready" in conditions
        assert set(conditions) <= {"Ready", "Reconciling", "Stalled"}
        assert conditions.get("Reconciling", "True") == "True"
        assert conditions.get("Stalled", "True") == "True"
        assert not ("Reconciling" in conditions and "Stalled" in conditions)
        assert ("Stalled" in conditions) == (stalled or phase in {"Failed", "Expired"})


def test_stalled_is_failed_in_any_phase() -> None:
    assert kstatus(sample("Compute", "Preparing", stalled=True)) == "Failed"


def test_a_lagging_observed_generation_is_in_progress() -> None:
    assert kstatus(sample("Session", "Available", generation=5, observed=4)) == "InProgress"


def test_every_condition_carries_the_observed_generation() -> None:
    obj = sample("Session", "Available", generation=7, observed=7)
    assert {c["observedGeneration"] for c in obj["status"]["conditions"]} == {7}
