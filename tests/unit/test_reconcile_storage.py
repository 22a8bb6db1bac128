"""decide_storage and Cavern paths, table-driven: home and project areas, platform, existence."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from skaha_operator.domain.common import Phase
from skaha_operator.domain.storage import Storage
from skaha_operator.reconcile.storage import (
    CavernLayout,
    StorageAct,
    StorageObservation,
    decide_storage,
    levels,
    mount_path,
    node_of_mount,
    storage_failed,
    storage_node_path,
)
from skaha_operator.reconcile.timing import Timing

NOW = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)
T = Timing()
LAYOUT = CavernLayout(user="alice")


def make(status: dict[str, Any] | None = None, **spec: Any) -> Storage:
    return Storage.model_validate(
        {
            "metadata": {"name": "s", "namespace": "ns", "uid": "u", "generation": 2},
            "spec": {"platformRef": "local", "area": "home", "path": "a/b/c", **spec},
            "status": status,
        }
    )


@pytest.mark.parametrize(
    ("spec", "node", "mount"),
    [
        ({}, "home/alice/a/b/c", "/arc/home/alice/a/b/c"),
        (
            {"area": "project", "project": "survey", "path": "x"},
            "projects/survey/x",
            "/arc/projects/survey/x",
        ),
    ],
)
def test_node_and_mount_paths(spec: dict[str, Any], node: str, mount: str) -> None:
    storage = make(**spec)
    assert storage_node_path(storage.spec, LAYOUT) == node
    assert mount_path(node) == mount
    assert node_of_mount(mount) == node


def test_levels_are_created_shallowest_first_below_the_area_root() -> None:
    assert levels(make().spec, LAYOUT) == ["home/alice/a", "home/alice/a/b", "home/alice/a/b/c"]
    custom = CavernLayout(user="bob", home_directory="users")
    assert storage_node_path(make(path="x").spec, custom) == "users/bob/x"


@pytest.mark.parametrize(
    ("layout", "exists", "phase", "reason", "action"),
    [
        (None, None, Phase.PREPARING, "WaitingForPlatform", StorageAct.NONE),
        (LAYOUT, False, Phase.PREPARING, "CreatingDirectory", StorageAct.MAKE_DIRS),
        (LAYOUT, True, Phase.AVAILABLE, "DirectoryReady", StorageAct.NONE),
    ],
)
def test_decide_storage(
    layout: CavernLayout | None,
    exists: bool | None,
    phase: Phase,
    reason: str,
    action: StorageAct,
) -> None:
    d = decide_storage(make(), StorageObservation(NOW, layout, "NotYetProbed", exists), T)
    assert (d.status.phase, d.status.reason, d.action) == (phase, reason, action)
    if phase == Phase.AVAILABLE:
        assert d.status.mount_path == "/arc/home/alice/a/b/c"
        assert d.status.uri == "vos://cadc.nrc.ca~arc/home/alice/a/b/c"
        assert d.requeue_after is None
    else:
        assert d.requeue_after is not None


def test_an_available_storage_of_this_generation_is_left_alone() -> None:
    status = {"phase": "Available", "observedGeneration": 2, "mountPath": "/arc/home/alice/a/b/c"}
    d = decide_storage(make(status), StorageObservation(NOW, None), T)
    assert d.status == make(status).status
    assert d.action == StorageAct.NONE


def test_a_terminal_storage_never_changes() -> None:
    d = decide_storage(make({"phase": "Failed"}), StorageObservation(NOW, LAYOUT, exists=False), T)
    assert (d.status.phase, d.action) == (Phase.FAILED, StorageAct.NONE)


def test_storage_failed_names_the_cause() -> None:
    st = storage_failed(make(), "CavernRejected", "Cavern refused: PermissionDenied", NOW)
    assert (st.phase, st.reason, st.message) == (
        Phase.FAILED,
        "CavernRejected",
        "Cavern refused: PermissionDenied",
    )
