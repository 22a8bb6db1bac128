"""What the part kinds' decisions share, written once.

- A `Move`: the next phase, reason and message of a preparing kind (Data, JupyterNotebook),
  before the kind adds its own actions: waiting for the platform (Storage too) and the Storage,
  a job step's outcome as a phase (`job_move`), and the waits of a release; `advance` applies
  it to the status (and warns once when it newly stalls).
- A release blocked by an unusable platform (`release_blocked`), for every kind that leaves
  something at the platform (Compute, Storage, Data, JupyterNotebook): it waits, Stalled with a
  message naming the abandon annotation and a Warning once, until the platform is restored or a
  person sets the annotation; then it is released with a Warning naming what was left behind.

Pure: imports neither kopf, kubernetes nor httpx.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TypeVar

from skaha_operator.domain.common import TERMINAL_PHASES, Phase
from skaha_operator.domain.status import PhasedStatus
from skaha_operator.reconcile.jobs import JobOutcome, JobStep, with_phase
from skaha_operator.reconcile.launch import LaunchStep
from skaha_operator.reconcile.timing import Timing

ABANDON_ANNOTATION = "skaha.broker.dev/abandon"
RELEASE_BLOCKED = "ReleaseBlocked"
BLOCKED_RECHECK = 30.0  # seconds between looks while a release is blocked
IN_USE_RECHECK = 10.0  # seconds between looks while live Computes still use the object

S = TypeVar("S", bound=PhasedStatus)


@dataclass(frozen=True)
class Move:
    """A preparing kind's next phase, reason and message; the kind adds its actions."""

    phase: Phase
    reason: str
    message: str
    requeue: float | None = None
    stalled: bool = False
    launch: str | None = None  # a job to launch under this Skaha name (`job_move`, LAUNCH)


def advance(
    status: S,
    move: Move,
    now: datetime,
    generation: int | None,
    *,
    changes: dict[str, object] | None = None,
    warning: str | None = None,
) -> tuple[S, tuple[str, ...], str | None]:
    """`status` moved as `move` says (`with_phase`), its events, and the Warning to post:
    `warning`, else the message when the move newly stalls (the status had another reason)."""
    new, events = with_phase(
        status,
        move.phase,
        move.reason,
        move.message,
        now,
        generation,
        stalled=move.stalled,
        changes=changes,
    )
    if move.stalled and warning is None and status.reason != move.reason:
        warning = move.message
    return new, events, warning


@dataclass(frozen=True)
class StorageView:
    """The Storage the part goes into, as observed (None in the observation: not found)."""

    name: str
    phase: str | None
    mount_path: str | None
    reason: str | None = None


def wait_for_platform(ref: str, reason: str | None, timing: Timing) -> Move:
    """Preparing while SkahaPlatform `ref` is not ready (`reason`: why, when known)."""
    why = f" ({reason})" if reason else ""
    return Move(
        Phase.PREPARING,
        "WaitingForPlatform",
        f"waiting for SkahaPlatform {ref}{why}",
        requeue=timing.dependency_recheck,
    )


def wait_for_storage(storage: StorageView | None, ref: str, timing: Timing) -> Move | None:
    """Preparing until Storage `ref` is Available with a mount path; Failed when it ended
    (None: usable)."""
    if storage is not None and storage.phase == Phase.AVAILABLE and storage.mount_path:
        return None
    if storage is not None and storage.phase in TERMINAL_PHASES:
        return Move(
            Phase.FAILED,
            "StorageFailed",
            f"Storage {storage.name} is {storage.phase}"
            + (f" ({storage.reason})" if storage.reason else ""),
        )
    state = "not found" if storage is None else (storage.phase or "new")
    return Move(
        Phase.PREPARING,
        "WaitingForStorage",
        f"waiting for Storage {ref} ({state})",
        requeue=timing.dependency_recheck,
    )


def job_move(step: JobStep, timing: Timing, *, done: tuple[str, str]) -> Move:
    """A preparation job's step as a phase: Preparing while it launches (with the name to launch
    under) or runs (Stalled when a person must look), Available with `done` (reason, message)
    once it completed, Failed with the step's reason."""
    match step.outcome:
        case JobOutcome.LAUNCH:
            assert step.name is not None
            return Move(
                Phase.PREPARING,
                step.reason,
                step.message,
                requeue=timing.poll_base,
                launch=step.name,
            )
        case JobOutcome.WAIT | JobOutcome.STALLED:
            return Move(
                Phase.PREPARING,
                step.reason,
                step.message,
                requeue=step.requeue,
                stalled=step.outcome == JobOutcome.STALLED,
            )
        case JobOutcome.DONE:
            return Move(Phase.AVAILABLE, *done)
        case JobOutcome.FAILED:
            return Move(Phase.FAILED, step.reason, step.message)
    raise AssertionError(f"unhandled job outcome {step.outcome}")


def in_use(users: Sequence[str]) -> Move | None:
    """A release waits while live Computes use the object (None: no user)."""
    if not users:
        return None
    return Move(
        Phase.RELEASING,
        "InUse",
        f"still used by Compute {', '.join(users)}",
        requeue=IN_USE_RECHECK,
    )


def releasing(step: LaunchStep) -> Move:
    """A release waiting on the launch protocol (deleting, or until nothing can still appear)."""
    return Move(Phase.RELEASING, step.reason, step.message, requeue=step.requeue)


@dataclass(frozen=True)
class BlockedWording:
    """How a kind words its blocked release; each kind keeps the words it has always used."""

    verb: str = "release"  # "cannot <verb> <left>: ..."
    unusable: str = "its token is"  # "SkahaPlatform <ref> or <unusable> unusable"
    them: str = "them"  # "... to leave <them> behind"
    annotation: str = ABANDON_ANNOTATION  # "the <annotation> annotation is set" (abandoned)
    fate: str | None = "left behind at the platform"  # None: "abandoned <left>", no more


@dataclass(frozen=True)
class BlockedRelease:
    """A release the platform blocks: released (abandoned) or not, the message, the Warning."""

    released: bool  # abandoned: nothing more is done, the finalizer may go
    message: str  # while blocked: the status message (the hold); abandoned: what was left
    warning: str | None  # a Warning Event: once per block (each step while not written), abandoned
    requeue: float | None  # when to look again (None: released)

    @property
    def hold(self) -> Move:
        """The Releasing status of a blocked release: Stalled, a person must act."""
        return Move(
            Phase.RELEASING, RELEASE_BLOCKED, self.message, requeue=self.requeue, stalled=True
        )


def release_blocked(
    left: str,
    platform: str,
    *,
    abandon: bool,
    reason: str | None = None,
    terminal: bool = False,
    wording: BlockedWording = BlockedWording(),
) -> BlockedRelease:
    """A release of `left` (what would be left behind, as text) that SkahaPlatform `platform`,
    unusable, blocks: released with a Warning when `abandon` (the annotation is set); otherwise
    blocked, with a Warning unless the status already says so (`reason` is ReleaseBlocked) and is
    written (not `terminal`: a terminal status is kept, so nothing records the first Warning)."""
    if abandon:
        text = f"abandoned {left}"
        if wording.fate is not None:
            text += (
                f": SkahaPlatform {platform} is unusable and the {wording.annotation} annotation "
                f"is set; {wording.fate}"
            )
        return BlockedRelease(True, text, text, None)
    message = (
        f"cannot {wording.verb} {left}: SkahaPlatform {platform} or {wording.unusable} unusable; "
        f"restore it, or annotate this object {ABANDON_ANNOTATION}=true to leave {wording.them} "
        "behind"
    )
    warned = reason == RELEASE_BLOCKED and not terminal
    return BlockedRelease(False, message, None if warned else message, BLOCKED_RECHECK)


__all__ = [
    "ABANDON_ANNOTATION",
    "BLOCKED_RECHECK",
    "IN_USE_RECHECK",
    "RELEASE_BLOCKED",
    "BlockedRelease",
    "BlockedWording",
    "Move",
    "StorageView",
    "advance",
    "in_use",
    "job_move",
    "release_blocked",
    "releasing",
    "wait_for_platform",
    "wait_for_storage",
]
