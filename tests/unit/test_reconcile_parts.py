"""reconcile/parts.py, table-driven: the steps the part kinds share, and their exact words."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from skaha_operator.domain.common import Phase
from skaha_operator.domain.data import DataStatus
from skaha_operator.domain.launch import Launch
from skaha_operator.reconcile.compute import BLOCKED_WORDS as COMPUTE_WORDS
from skaha_operator.reconcile.data import BLOCKED_WORDS as DATA_WORDS
from skaha_operator.reconcile.jobs import JobOutcome, JobStep
from skaha_operator.reconcile.parts import (
    BlockedWording,
    Move,
    StorageView,
    advance,
    in_use,
    job_move,
    release_blocked,
    wait_for_platform,
    wait_for_storage,
)
from skaha_operator.reconcile.storage import BLOCKED_WORDS as STORAGE_WORDS
from skaha_operator.reconcile.timing import Timing

NOW = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)
T = Timing()
HINT = "restore it, or annotate this object skaha.broker.dev/abandon=true to leave"


@pytest.mark.parametrize(
    ("left", "words", "blocked", "abandoned"),
    [
        (
            "download job j1",
            DATA_WORDS,
            f"cannot release download job j1: SkahaPlatform p or its credentials are unusable; "
            f"{HINT} them behind",
            "abandoned download job j1: SkahaPlatform p is unusable and the "
            "skaha.broker.dev/abandon annotation is set; left behind at the platform",
        ),
        (
            "notebook setup job j1",
            BlockedWording(),
            f"cannot release notebook setup job j1: SkahaPlatform p or its token is unusable; "
            f"{HINT} them behind",
            "abandoned notebook setup job j1: SkahaPlatform p is unusable and the "
            "skaha.broker.dev/abandon annotation is set; left behind at the platform",
        ),
        (
            "Skaha session s1",
            COMPUTE_WORDS,
            f"cannot release Skaha session s1: SkahaPlatform p or its token is unusable; "
            f"{HINT} the session behind",
            "abandoned Skaha session s1: SkahaPlatform p is unusable and the abandon annotation "
            "is set; the session may still run at the platform",
        ),
        (
            "Cavern directories home/a, home/a/b",
            STORAGE_WORDS,
            "cannot delete Cavern directories home/a, home/a/b: SkahaPlatform p or its token is "
            f"unusable; {HINT} them behind",
            "abandoned Cavern directories home/a, home/a/b",
        ),
    ],
)
def test_each_kind_keeps_its_words_for_a_blocked_release(
    left: str, words: BlockedWording, blocked: str, abandoned: str
) -> None:
    b = release_blocked(left, "p", abandon=False, wording=words)
    assert (b.released, b.message, b.warning, b.requeue) == (False, blocked, blocked, 30.0)
    assert (b.hold.phase, b.hold.reason, b.hold.stalled) == (
        Phase.RELEASING,
        "ReleaseBlocked",
        True,
    )
    a = release_blocked(left, "p", abandon=True, reason="ReleaseBlocked", wording=words)
    assert (a.released, a.warning, a.requeue) == (True, abandoned, None)


@pytest.mark.parametrize(
    ("reason", "terminal", "warns"),
    [
        (None, False, True),  # newly blocked
        ("InUse", False, True),
        ("ReleaseBlocked", False, False),  # the written status already says so
        ("ReleaseBlocked", True, True),  # a terminal status is kept: nothing records it
    ],
)
def test_a_blocked_release_warns_once(reason: str | None, terminal: bool, warns: bool) -> None:
    b = release_blocked("x", "p", abandon=False, reason=reason, terminal=terminal)
    assert (b.warning is not None) == warns


@pytest.mark.parametrize(
    ("outcome", "phase", "requeue", "stalled"),
    [
        (JobOutcome.LAUNCH, Phase.PREPARING, T.poll_base, False),
        (JobOutcome.WAIT, Phase.PREPARING, 7.0, False),
        (JobOutcome.STALLED, Phase.PREPARING, 7.0, True),
        (JobOutcome.DONE, Phase.AVAILABLE, None, False),
        (JobOutcome.FAILED, Phase.FAILED, None, False),
    ],
)
def test_job_move(outcome: JobOutcome, phase: Phase, requeue: float | None, stalled: bool) -> None:
    name = "skop-dl-1" if outcome == JobOutcome.LAUNCH else None
    step = JobStep(outcome, "R", "m", Launch(), 7.0, name)
    m = job_move(step, T, done=("Done", "done it"))
    words = ("Done", "done it") if outcome == JobOutcome.DONE else ("R", "m")
    assert m == Move(phase, *words, requeue=requeue, stalled=stalled, launch=name)


@pytest.mark.parametrize(
    ("storage", "reason", "message"),
    [
        (None, "WaitingForStorage", "waiting for Storage w (not found)"),
        (StorageView("w", None, None), "WaitingForStorage", "waiting for Storage w (new)"),
        (StorageView("w", Phase.AVAILABLE, None), "WaitingForStorage", "waiting for Storage w "
         "(Available)"),
        (StorageView("w", Phase.FAILED, None, "CavernRejected"), "StorageFailed",
         "Storage w is Failed (CavernRejected)"),
        (StorageView("w", Phase.AVAILABLE, "/arc/home/a/w"), None, None),
    ],
)  # fmt: skip
def test_wait_for_storage(
    storage: StorageView | None, reason: str | None, message: str | None
) -> None:
    m = wait_for_storage(storage, "w", T)
    assert (m and m.reason, m and m.message) == (reason, message)


def test_waits_for_the_platform_and_for_users() -> None:
    assert wait_for_platform("p", "Unauthorized", T) == Move(
        Phase.PREPARING,
        "WaitingForPlatform",
        "waiting for SkahaPlatform p (Unauthorized)",
        requeue=T.dependency_recheck,
    )
    assert in_use(()) is None
    assert in_use(("c1", "c2")) == Move(
        Phase.RELEASING, "InUse", "still used by Compute c1, c2", requeue=10.0
    )


def test_advance_warns_when_a_move_newly_stalls() -> None:
    stall = Move(Phase.PREPARING, "AmbiguousLaunch", "two of them", stalled=True)
    new, events, warning = advance(DataStatus(), stall, NOW, 1)
    assert (new.phase, events, warning) == (
        Phase.PREPARING,
        ("Initializing->Preparing: AmbiguousLaunch",),
        "two of them",
    )
    assert advance(new, stall, NOW, 1)[2] is None  # the same reason again: already told
    assert advance(DataStatus(), stall, NOW, 1, warning="mine")[2] == "mine"
