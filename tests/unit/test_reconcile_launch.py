"""The launch protocol, table-driven: launch, adopt, wait, re-send, lost, sweep, release."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from skaha_operator.domain.launch import Launch
from skaha_operator.reconcile.launch import (
    AMBIGUOUS_LAUNCH,
    LAUNCH_LOST,
    LaunchPolicy,
    LaunchView,
    Next,
    Seen,
    launch_new,
    needs_listing,
    release_launch,
    step_launch,
)

NOW = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)
ONE = LaunchPolicy(what="Skaha session", base="skop-abc", max_attempts=3, grace=90.0)
PER = LaunchPolicy(
    what="download job", base="skop-dl-abc", per_attempt_names=True, max_attempts=2, lost_fails=True
)


def ago(seconds: float) -> datetime:
    return NOW - timedelta(seconds=seconds)


def sent(policy: LaunchPolicy = ONE, *, waited: float = 10, attempts: int = 1, **kw: Any) -> Launch:
    return Launch(name=policy.name(attempts), pending_since=ago(waited), attempts=attempts, **kw)


def listed(*items: tuple[str, str], live: bool = True, deletable: bool = True) -> LaunchView:
    return LaunchView(listed=tuple(Seen(i, n, live=live, deletable=deletable) for i, n in items))


# -- launching -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("policy", "state", "name", "attempts"),
    [
        (ONE, None, "skop-abc", 1),
        (ONE, sent(waited=200), "skop-abc", 2),  # one name for every attempt
        (PER, None, "skop-dl-abc-1", 1),
        (PER, sent(PER, waited=200), "skop-dl-abc-2", 2),  # a name per attempt
    ],
)
def test_launch_writes_the_marker_under_the_policy_name(
    policy: LaunchPolicy, state: Launch | None, name: str, attempts: int
) -> None:
    step = launch_new(state, NOW, policy)
    assert step.next == Next.LAUNCH
    assert (step.launch.name, step.launch.attempts, step.launch.pending_since) == (
        name,
        attempts,
        NOW,
    )
    assert step.launch.id is None
    assert step_launch(None, LaunchView(), NOW, policy).launch.name == policy.name(1)


def test_a_re_send_says_why_and_keeps_the_sweep_time() -> None:
    state = sent(waited=200, swept_at=ago(500))
    step = launch_new(state, NOW, ONE, why="skop-abc never appeared")
    assert "attempt 2; skop-abc never appeared" in step.message
    assert step.launch.swept_at == ago(500)


# -- a marker without an id ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("policy", "state", "view", "nxt", "reason", "name"),
    [
        # not listed (unreachable, or not asked for): no evidence either way, keep looking
        (ONE, sent(waited=10), LaunchView(), Next.WAIT, "LaunchPending", None),
        (ONE, sent(waited=500), LaunchView(), Next.WAIT, "LaunchPending", None),
        # listed but empty inside the grace period: the launch may still be committing
        (ONE, sent(waited=10), listed(), Next.WAIT, "LaunchPending", None),
        # exactly one under our name: adopted
        (ONE, sent(), listed(("s1", "skop-abc")), Next.TRACK, "Adopted", None),
        # another attempt's name does not count
        (PER, sent(PER, attempts=2), listed(("j1", "skop-dl-abc-1")), Next.WAIT,
         "LaunchPending", None),
        (PER, sent(PER, attempts=2), listed(("j1", "skop-dl-abc-1"), ("j2", "skop-dl-abc-2")),
         Next.TRACK, "Adopted", None),
        # two under our name: a person decides
        (ONE, sent(), listed(("s1", "skop-abc"), ("s2", "skop-abc")), Next.STALLED,
         AMBIGUOUS_LAUNCH, None),
        # nothing after the grace period: sent again, under the policy's name
        (ONE, sent(waited=200), listed(), Next.LAUNCH, "Launching", "skop-abc"),
        (PER, sent(PER, waited=200), listed(), Next.LAUNCH, "Launching", "skop-dl-abc-2"),
        # attempts used up: the policy says Stalled or Failed
        (ONE, sent(waited=200, attempts=3), listed(), Next.STALLED, LAUNCH_LOST, None),
        (PER, sent(PER, waited=200, attempts=2), listed(), Next.LOST, LAUNCH_LOST, None),
    ],
)  # fmt: skip
def test_a_marker_without_an_id(
    policy: LaunchPolicy,
    state: Launch,
    view: LaunchView,
    nxt: Next,
    reason: str,
    name: str | None,
) -> None:
    step = step_launch(state, view, NOW, policy)
    assert (step.next, step.reason) == (nxt, reason)
    if nxt == Next.TRACK:
        assert step.launch.id in {"s1", "j2"}
    if nxt == Next.LAUNCH:
        assert step.launch.name == name
        assert step.launch.attempts == (state.attempts or 0) + 1
    if nxt in {Next.STALLED, Next.LOST, Next.WAIT}:
        assert step.launch == state  # nothing changes while waiting or stalled


def test_needs_listing_only_without_an_id_or_when_a_sweep_is_due() -> None:
    assert not needs_listing(None, NOW, ONE)
    assert needs_listing(sent(), NOW, ONE)
    assert not needs_listing(sent(id="s1"), NOW, ONE)
    assert needs_listing(sent(waited=200, attempts=2, id="s1"), NOW, ONE)


# -- tracking and the sweep ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("state", "view", "delete", "swept"),
    [
        # the only request sent cannot have left another: no sweep
        (sent(waited=200, id="s1"), listed(("s1", "skop-abc"), ("s9", "skop-abc")), (), False),
        # a re-sent launch inside its grace: the earlier one may still commit, not yet
        (sent(waited=10, attempts=2, id="s1"), listed(("s1", "skop-abc"), ("s9", "skop-abc")),
         (), False),
        # after the grace: the other one is a late commit, removed once
        (sent(waited=200, attempts=2, id="s1"), listed(("s1", "skop-abc"), ("s9", "skop-abc")),
         ("s9",), True),
        # already swept after the grace: not again
        (sent(waited=200, attempts=2, id="s1", swept_at=ago(50)),
         listed(("s1", "skop-abc"), ("s9", "skop-abc")), (), False),
        # a sweep before the grace ended does not count
        (sent(waited=200, attempts=2, id="s1", swept_at=ago(150)),
         listed(("s1", "skop-abc"), ("s9", "skop-abc")), ("s9",), True),
        # not listed: nothing to sweep yet
        (sent(waited=200, attempts=2, id="s1"), LaunchView(), (), False),
        # a thing already going is not deleted again
        (sent(waited=200, attempts=2, id="s1"),
         LaunchView(listed=(Seen("s9", "skop-abc", deletable=False),)), (), True),
    ],
)  # fmt: skip
def test_the_sweep_is_due_only_after_the_grace_of_a_re_sent_launch_and_once(
    state: Launch, view: LaunchView, delete: tuple[str, ...], swept: bool
) -> None:
    step = step_launch(state, view, NOW, ONE)
    assert step.next == Next.TRACK
    assert step.delete == delete
    assert (step.launch.swept_at == NOW) is swept
    if swept:
        again = step_launch(step.launch, view, NOW + timedelta(seconds=5), ONE)
        assert again.delete == ()


def test_tracking_records_what_was_observed_by_id() -> None:
    state = sent(id="s1", observed="Pending")
    seen = LaunchView(by_id=Seen("s1", "skop-abc", state="Running"))
    assert step_launch(state, seen, NOW, ONE).launch.observed == "Running"
    assert step_launch(state, LaunchView(), NOW, ONE).launch.observed == "Pending"


# -- release -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("state", "view", "nxt", "reason", "delete"),
    [
        (None, LaunchView(), Next.RELEASED, "Released", ()),
        # live ones are deleted, every attempt's name
        (sent(PER, attempts=2, id="j2"),
         listed(("j1", "skop-dl-abc-1"), ("j2", "skop-dl-abc-2")), Next.WAIT, "Releasing",
         ("j1", "j2")),
        (sent(id="s1"), LaunchView(by_id=Seen("s1", "skop-abc")), Next.WAIT, "Releasing",
         ("s1",)),
        # Terminating: waited for, not deleted again
        (sent(id="s1"), listed(("s1", "skop-abc"), deletable=False), Next.WAIT, "Releasing",
         ()),
        # not listed: look first
        (sent(id="s1", waited=500), LaunchView(), Next.WAIT, "Releasing", ()),
        # nothing live, id unknown, inside the grace: the launch may still commit
        (sent(waited=10), listed(), Next.WAIT, "WaitingForLaunch", ()),
        # nothing live, re-sent, inside the grace: an earlier attempt may still commit
        (sent(waited=10, attempts=2, id="s1"), listed(), Next.WAIT, "WaitingForLaunch", ()),
        # nothing live, one request whose id we hold: released at once
        (sent(waited=10, id="s1"), listed(), Next.RELEASED, "Released", ()),
        # nothing live after the grace: released
        (sent(waited=200), listed(), Next.RELEASED, "Released", ()),
        (sent(waited=200, attempts=2, id="s1"), listed(("s1", "skop-abc"), live=False),
         Next.RELEASED, "Released", ()),
    ],
)  # fmt: skip
def test_release(
    state: Launch | None, view: LaunchView, nxt: Next, reason: str, delete: tuple[str, ...]
) -> None:
    policy = PER if state is not None and state.name and state.name.startswith(PER.base) else ONE
    step = release_launch(state, view, NOW, policy)
    assert (step.next, step.reason, step.delete) == (nxt, reason, delete)
    if nxt == Next.WAIT:
        assert step.requeue is not None
        assert 0 < step.requeue <= 5.0
