"""The one launch protocol: launch, adopt by name, re-send, wait, sweep late commits, release.

Every kind that creates something outside Kubernetes (a Compute's Skaha session, a Data's
download job or Rucio rule, a JupyterNotebook's setup job) keeps a `Launch` in its status and asks
this module what to do next (docs/design.md §4.3):

- no marker: launch (the caller writes the marker with a guarded write before the request);
- a marker but no id: adopt the one thing listed under our name, wait while a launch may still be
  committing (the grace period), send again under the policy's name when it never appeared,
  stall when the listing is ambiguous or the attempts are used up;
- an id: track it, and once the grace period of the last attempt has passed, remove anything
  else carrying our names (an earlier attempt that committed late);
- release: remove everything live carrying our names, and wait until nothing is live and no
  launch can still commit (a request in flight, or a late commit) before saying released.

The differences between kinds (one name across attempts or one per attempt, how many attempts,
whether a lost launch fails or stalls) are a `LaunchPolicy`, not code. Pure: no I/O imports.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum

from skaha_operator.domain.launch import Launch

# Reasons a person acts on; the only place they are spelled.
AMBIGUOUS_LAUNCH = "AmbiguousLaunch"
LAUNCH_LOST = "LaunchLost"
REFUSED = "Refused"  # the `observed` of a launch the platform answered 4xx: nothing was created


@dataclass(frozen=True)
class LaunchPolicy:
    """How one kind launches: names, attempts, grace, and what a lost launch means."""

    what: str  # "Skaha session", "download job", "Rucio rule": for messages
    base: str  # the name every attempt's name starts with (from the object's UID)
    per_attempt_names: bool = False  # jobs: `<base>-<n>`; sessions: `<base>` every time
    max_attempts: int = 6
    grace: float = 90.0  # seconds a launch may take to show up after its request was sent
    lost_fails: bool = False  # after the last attempt: Failed (True) or Stalled (False)

    def name(self, attempt: int) -> str:
        """The name attempt `attempt` is sent under."""
        return f"{self.base}-{attempt}" if self.per_attempt_names else self.base


@dataclass(frozen=True)
class Seen:
    """One external thing carrying one of our names."""

    id: str
    name: str
    state: str | None = None
    live: bool = True  # it still holds something (Pending, Running, Terminating, a rule)
    deletable: bool = True  # a delete request would do something (not already Terminating)


@dataclass(frozen=True)
class LaunchView:
    """What was observed: things listed under our names, and the recorded id looked up."""

    listed: tuple[Seen, ...] | None = None  # None: not listed (not needed, or unreachable)
    by_id: Seen | None = None  # the recorded id; None: not looked up or gone
    gone: bool = False  # the recorded id answered 'not found'


class Next(StrEnum):
    """What the protocol says to do."""

    LAUNCH = "Launch"  # send the request (the marker in `launch` first)
    WAIT = "Wait"  # look again after `requeue`
    TRACK = "Track"  # the id is known: the kind decides from what was seen of it
    STALLED = "Stalled"  # a person must look (ambiguous listing, attempts used up)
    LOST = "Lost"  # attempts used up and the policy says that fails the object
    RELEASED = "Released"  # nothing of ours is live and nothing can still commit


@dataclass(frozen=True)
class LaunchStep:
    """The protocol's answer: what next, why, the new `Launch`, and what to delete."""

    next: Next
    reason: str
    message: str
    launch: Launch
    requeue: float | None = None
    delete: tuple[str, ...] = field(default=())


def marker(state: Launch | None) -> Launch:
    """The recorded launch, or an empty one."""
    return state if state is not None else Launch()


def sent(state: Launch | None) -> bool:
    """Whether a request may have created something (a refused first request did not)."""
    s = marker(state)
    if s.pending_since is None:
        return False
    return bool(s.id) or s.observed != REFUSED or (s.attempts or 1) > 1


def launch_new(
    state: Launch | None, now: datetime, policy: LaunchPolicy, why: str = ""
) -> LaunchStep:
    """Send the next attempt: the marker (name, time, count) is stored before the request."""
    attempt = (marker(state).attempts or 0) + 1
    name = policy.name(attempt)
    text = f"launching {policy.what} {name}"
    if attempt > 1:
        text += f" (attempt {attempt}" + (f"; {why})" if why else ")")
    new = Launch(
        name=name,
        pending_since=now,
        attempts=attempt,
        swept_at=marker(state).swept_at,
    )
    return LaunchStep(Next.LAUNCH, "Launching", text, new, requeue=0.0)


def needs_listing(state: Launch | None, now: datetime, policy: LaunchPolicy) -> bool:
    """Whether the next step must list what carries our names (adoption or a due sweep)."""
    s = marker(state)
    if s.pending_since is None:
        return False
    return not s.id or _sweep_due(s, now, policy)


def step_launch(
    state: Launch | None, view: LaunchView, now: datetime, policy: LaunchPolicy
) -> LaunchStep:
    """The next step while the object lives."""
    s = marker(state)
    if s.pending_since is None:
        return launch_new(state, now, policy)
    if not s.id:
        return _adopt(s, view, now, policy)
    observed = view.by_id.state if view.by_id is not None else s.observed
    new = s.model_copy(update={"observed": observed})
    extra: tuple[str, ...] = ()
    if view.listed is not None and _sweep_due(s, now, policy):
        extra = tuple(x.id for x in view.listed if x.id != s.id and x.live and x.deletable)
        new = new.model_copy(update={"swept_at": now})
    text = f"{policy.what} {s.name} is {s.id}"
    if extra:
        text += f"; removing {', '.join(extra)} (a late launch under our name)"
    return LaunchStep(Next.TRACK, "Tracking", text, new, delete=extra)


def release_launch(
    state: Launch | None, view: LaunchView, now: datetime, policy: LaunchPolicy
) -> LaunchStep:
    """The next step of a release: delete what is live, wait until nothing can still appear."""
    s = marker(state)
    if s.pending_since is None:
        return LaunchStep(Next.RELEASED, "Released", f"no {policy.what} was launched", s)
    seen = {x.id: x for x in view.listed or ()}
    if view.by_id is not None:
        seen[view.by_id.id] = view.by_id
    live = [x for x in seen.values() if x.live]
    if live:
        delete = tuple(x.id for x in live if x.deletable)
        ids = ", ".join(x.id for x in live)
        text = f"deleting {policy.what} {ids}" if delete else f"waiting for {ids} to go"
        return LaunchStep(Next.WAIT, "Releasing", text, s, requeue=2.0, delete=delete)
    if view.listed is None:
        return LaunchStep(
            Next.WAIT, "Releasing", f"looking for {policy.what} {s.name}", s, requeue=2.0
        )
    # Nothing live is listed. A launch whose id we hold and that was the only request sent
    # cannot have left anything else; otherwise a request may still commit until its grace ends.
    settle = s.pending_since + timedelta(seconds=policy.grace)
    if (not s.id or (s.attempts or 1) > 1) and now < settle:
        wait = (settle - now).total_seconds()
        return LaunchStep(
            Next.WAIT,
            "WaitingForLaunch",
            f"the launch of {policy.what} {s.name} may still commit; looking again until "
            f"{settle.isoformat()}",
            s,
            requeue=min(wait, 5.0),
        )
    return LaunchStep(Next.RELEASED, "Released", f"{policy.what} {s.name} released", s)


def _sweep_due(s: Launch, now: datetime, policy: LaunchPolicy) -> bool:
    # Only a re-sent launch can leave another thing under our names (one request: one thing).
    if not s.id or (s.attempts or 1) <= 1 or s.pending_since is None:
        return False
    due = s.pending_since + timedelta(seconds=policy.grace)
    return now >= due and (s.swept_at is None or s.swept_at < due)


def _adopt(s: Launch, view: LaunchView, now: datetime, policy: LaunchPolicy) -> LaunchStep:
    assert s.pending_since is not None
    name = s.name or policy.name(s.attempts or 1)
    found = None if view.listed is None else [x for x in view.listed if x.name == name]
    waited = max(0.0, (now - s.pending_since).total_seconds())
    if found is not None and len(found) == 1:
        new = s.model_copy(update={"id": found[0].id, "observed": found[0].state})
        return LaunchStep(
            Next.TRACK, "Adopted", f"adopted {policy.what} {found[0].id} found by name", new
        )
    if found is not None and len(found) > 1:
        ids = ", ".join(x.id for x in found)
        return LaunchStep(
            Next.STALLED,
            AMBIGUOUS_LAUNCH,
            f"{len(found)} of {policy.what} named {name}: {ids}; delete all but one by hand",
            s,
            requeue=60.0,
        )
    if found is None or waited < policy.grace:
        # Not listed, or listed before the launch could have committed: keep looking.
        return LaunchStep(
            Next.WAIT,
            "LaunchPending",
            f"looking for {policy.what} {name}",
            s,
            requeue=min(30.0, max(1.0, waited / 2)),
        )
    attempts = s.attempts or 1
    if attempts < policy.max_attempts:
        return launch_new(s, now, policy, why=f"{name} never appeared")
    text = (
        f"{attempts} launches of {policy.what} {name} left nothing (the last {int(waited)}s "
        "ago); not launching again"
    )
    if policy.lost_fails:
        return LaunchStep(Next.LOST, LAUNCH_LOST, text, s)
    return LaunchStep(
        Next.STALLED,
        LAUNCH_LOST,
        text + ": inspect the platform and delete this object",
        s,
        requeue=60.0,
    )


__all__ = [
    "AMBIGUOUS_LAUNCH",
    "LAUNCH_LOST",
    "REFUSED",
    "LaunchPolicy",
    "LaunchStep",
    "LaunchView",
    "Next",
    "Seen",
    "launch_new",
    "marker",
    "needs_listing",
    "release_launch",
    "sent",
    "step_launch",
]
