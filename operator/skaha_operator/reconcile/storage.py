"""The Storage decision, and where a storage lives in Cavern and inside sessions.

Cavern nodes of the generic layout are `home/<user>/...` and `projects/<project>/...`; sessions see
the same tree under `/arc/` (`/arc/home/<user>`, `/arc/projects/<project>`),
docs/platform-api.md §7.
Cavern has no mkdir -p: the handler creates the directory level by level (a 409 on an existing
level is success) and records the levels it created, so a Delete release removes only those.
Pure: imports neither kopf, kubernetes nor httpx.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from skaha_operator.domain.common import TERMINAL_PHASES, Phase, ReleasePolicy
from skaha_operator.domain.storage import CavernArea, Storage, StorageStatus, StorageTemplate
from skaha_operator.reconcile.jobs import with_phase
from skaha_operator.reconcile.parts import BlockedWording, release_blocked, wait_for_platform
from skaha_operator.reconcile.timing import Timing

MOUNT_ROOT = "/arc"
# A Storage deletes directories, and its abandoned Warning names only what is left.
BLOCKED_WORDS = BlockedWording(verb="delete", fate=None)


@dataclass(frozen=True)
class CavernLayout:
    """The platform's Cavern user and top-level directories (SkahaPlatform spec.cavern)."""

    user: str
    home_directory: str = "home"
    projects_directory: str = "projects"
    authority: str = "cadc.nrc.ca~arc"


def area_root(spec: StorageTemplate, layout: CavernLayout) -> str:
    """The node of the area: `home/<user>` or `projects/<project>`."""
    if spec.area == CavernArea.PROJECT:
        return f"{layout.projects_directory}/{spec.project}"
    return f"{layout.home_directory}/{layout.user}"


def storage_node_path(spec: StorageTemplate, layout: CavernLayout) -> str:
    """The Cavern node path of a storage, e.g. `home/alice/sessions/run-1`."""
    return f"{area_root(spec, layout)}/{spec.path.strip('/')}"


def mount_path(node: str) -> str:
    """Where a Cavern node appears in a session (`/arc/home/<u>/...`, docs/platform-api.md §7)."""
    return f"{MOUNT_ROOT}/{node.strip('/')}"


def node_of_mount(path: str) -> str:
    """The Cavern node path of a path inside sessions (the inverse of `mount_path`)."""
    return path.removeprefix(MOUNT_ROOT).strip("/")


def levels(spec: StorageTemplate, layout: CavernLayout) -> list[str]:
    """The directories below the area root, shallowest first: one PUT each (no mkdir -p)."""
    root = area_root(spec, layout)
    parts = [p for p in spec.path.split("/") if p]
    return [f"{root}/{'/'.join(parts[: i + 1])}" for i in range(len(parts))]


class StorageAct(StrEnum):
    """The one external action of a Storage decision."""

    NONE = "None"
    MAKE_DIRS = "MakeDirs"


@dataclass(frozen=True)
class StorageObservation:
    """The platform's layout (None: platform not usable) and whether the directory exists."""

    now: datetime
    layout: CavernLayout | None
    platform_reason: str | None = None
    exists: bool | None = None  # None: not looked


@dataclass(frozen=True)
class StorageDecision:
    """The next status, the one action, and when to look again."""

    status: StorageStatus
    action: StorageAct = StorageAct.NONE
    requeue_after: float | None = None
    events: tuple[str, ...] = ()


def decide_storage(storage: Storage, obs: StorageObservation, timing: Timing) -> StorageDecision:
    """Wait for the platform, create the directory, then Available with its mount path."""
    status = storage.status or StorageStatus()
    gen = storage.metadata.get("generation")
    phase = status.phase or Phase.INITIALIZING
    if phase in TERMINAL_PHASES or phase == Phase.RELEASING:
        return StorageDecision(status)
    if phase == Phase.AVAILABLE and status.observed_generation == gen:
        return StorageDecision(status)  # made for this spec; nothing to poll

    def result(
        phase: Phase,
        reason: str,
        message: str,
        action: StorageAct = StorageAct.NONE,
        requeue: float | None = None,
        changes: dict[str, object] | None = None,
    ) -> StorageDecision:
        new, events = with_phase(status, phase, reason, message, obs.now, gen, changes=changes)
        return StorageDecision(new, action, requeue, events)

    layout = obs.layout
    if layout is None:
        if phase == Phase.AVAILABLE:
            return StorageDecision(status, requeue_after=timing.dependency_recheck)
        wait = wait_for_platform(storage.spec.platform_ref, obs.platform_reason, timing)
        return result(wait.phase, wait.reason, wait.message, requeue=wait.requeue)
    node = storage_node_path(storage.spec, layout)
    if obs.exists:
        return result(
            Phase.AVAILABLE,
            "DirectoryReady",
            f"Cavern directory {node} is mounted at {mount_path(node)}",
            changes={"uri": f"vos://{layout.authority}/{node}", "mount_path": mount_path(node)},
        )
    if phase == Phase.AVAILABLE:
        # It was there for the old spec and is gone now: make it again rather than step back.
        return StorageDecision(status, StorageAct.MAKE_DIRS, 0.0)
    return result(
        Phase.PREPARING,
        "CreatingDirectory",
        f"creating Cavern directory {node} level by level",
        StorageAct.MAKE_DIRS,
        requeue=0.0,
    )


def storage_failed(storage: Storage, reason: str, message: str, now: datetime) -> StorageStatus:
    """The status of a Storage whose directory Cavern refused to create."""
    status = storage.status or StorageStatus()
    new, _ = with_phase(
        status, Phase.FAILED, reason, message, now, storage.metadata.get("generation")
    )
    return new


@dataclass(frozen=True)
class StorageRelease:
    """What releasing a Storage does: the tree to empty, the levels to remove, or why it waits."""

    released: bool
    requeue_after: float | None = None
    delete_tree: str | None = None  # a leaf this Storage created: its contents go with it
    delete_levels: tuple[str, ...] = ()  # created levels, deepest first (kept once not empty)
    message: str | None = None
    warning: str | None = None


def decide_storage_release(
    storage: Storage, users: list[str], reachable: bool, abandon: bool, shared_with: list[str]
) -> StorageRelease:
    """Release per policy, touching only what this Storage created (docs/design.md §4.6).

    A directory that existed before (not in `createdPaths`) is never deleted, nor anything in
    it, whatever the policy; levels it created are removed deepest first, and a level that is not
    empty (someone else's files) stops the removal there. A location another Storage (in any
    namespace the operator watches) also resolves to is kept whole: it is theirs too.
    """
    if users:
        return StorageRelease(False, 10.0, message=f"still used by {', '.join(users)}")
    status = storage.status
    created = list((status.created_paths if status else None) or [])
    if storage.spec.release_policy != ReleasePolicy.DELETE or not created:
        return StorageRelease(True)  # Retain, or nothing of ours was made
    if shared_with:
        return StorageRelease(True, message=f"kept: also used by {', '.join(shared_with)}")
    if not reachable:
        # A Storage's release writes no status, so each look warns again.
        blocked = release_blocked(
            f"Cavern directories {', '.join(created)}",
            storage.spec.platform_ref,
            abandon=abandon,
            wording=BLOCKED_WORDS,
        )
        return StorageRelease(blocked.released, blocked.requeue, warning=blocked.warning)
    leaf = node_of_mount(status.mount_path) if status and status.mount_path else None
    tree = leaf if leaf in created else None
    levels_ = tuple(p for p in reversed(created) if p != tree)
    return StorageRelease(True, delete_tree=tree, delete_levels=levels_)


__all__ = [
    "CavernLayout",
    "StorageAct",
    "StorageDecision",
    "StorageObservation",
    "StorageRelease",
    "area_root",
    "decide_storage",
    "decide_storage_release",
    "levels",
    "mount_path",
    "node_of_mount",
    "storage_failed",
    "storage_node_path",
]
