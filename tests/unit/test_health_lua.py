"""The Argo CD health check (manifests/gitops/argocd/health.lua) executed in Lua 5.1, the
language of Argo CD's gopher-lua, against statuses the operator's own logic produces."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from lupa import lua51

from tests.unit.gitops_status import every_phase, sample

ROOT = Path(__file__).resolve().parents[2]
ARGO = ROOT / "manifests" / "gitops" / "argocd"
LUA = (ARGO / "health.lua").read_text()

EXPECTED = {
    "Initializing": "Progressing",
    "Preparing": "Progressing",
    "Releasing": "Progressing",
    "Waiting": "Suspended",
    "Cancelled": "Suspended",
    "Available": "Healthy",
    "Running": "Healthy",
    "Completed": "Healthy",
    "Failed": "Degraded",
    "Expired": "Degraded",
}


def health(obj: dict[str, Any]) -> dict[str, str]:
    """Run the check the way Argo CD does: a global `obj`, the chunk returns `hs`."""
    lua = lua51.LuaRuntime(unpack_returned_tuples=True)
    lua.globals().obj = lua.table_from(obj, recursive=True)
    result = lua.execute(LUA)
    return {"status": str(result["status"]), "message": str(result["message"])}


@pytest.mark.parametrize(("kind", "phase"), every_phase())
def test_every_phase_of_every_kind_maps_to_an_argo_status(kind: str, phase: str) -> None:
    got = health(sample(kind, phase, reason="PhaseReason", message="what happened"))
    assert got["status"] == EXPECTED[phase]
    assert got["message"] == "PhaseReason: what happened"


def test_every_phase_has_an_expectation() -> None:
    assert {phase for _, phase in every_phase()} == set(EXPECTED)
    assert len(every_phase()) == 6 * 9 + 10


def test_no_status_yet_is_progressing() -> None:
    obj = sample("Session", "Preparing")
    del obj["status"]
    assert health(obj) == {"status": "Progressing", "message": "Waiting for the operator"}


def test_a_stalled_object_is_degraded_whatever_its_phase() -> None:
    got = health(sample("Compute", "Preparing", reason="LaunchLost", stalled=True))
    assert got == {"status": "Degraded", "message": "LaunchLost: some message"}


def test_an_unobserved_generation_is_progressing_even_when_ready() -> None:
    got = health(sample("Session", "Available", generation=4, observed=3))
    assert got == {"status": "Progressing", "message": "The operator has not yet seen generation 4"}


def test_the_message_falls_back_to_the_phase() -> None:
    got = health(sample("Storage", "Available", reason="DirectoryReady", message=None))
    assert got == {"status": "Healthy", "message": "DirectoryReady: Available"}


def test_argocd_configmap_installs_the_same_script_for_every_kind() -> None:
    cm = yaml.safe_load((ARGO / "argocd-cm-health.yaml").read_text())
    kinds = sorted(
        yaml.safe_load(p.read_text())["spec"]["names"]["kind"]
        for p in (ROOT / "crds").glob("*.yaml")
    )
    prefix = "resource.customizations.health.skaha.broker.dev_"
    assert sorted(cm["data"]) == [prefix + k for k in kinds]
    assert all(body == LUA for body in cm["data"].values()), "run `make gitops`"
