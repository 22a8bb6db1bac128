"""Two operator processes on the same objects: still one Skaha session per Compute, and no status
ever moves backwards (every status write is recorded through a watch and checked)."""

from __future__ import annotations

import itertools
import threading
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client, watch

from skaha_operator import GROUP, VERSION
from skaha_operator.controlplane import ControlPlane
from skaha_operator.reconcile.transitions import COMPUTE_TRANSITIONS
from skaha_operator.simulator import Simulator
from tests.integration.operator_harness import Watcher, create, operator_process, phase, wait_for
from tests.integration.test_session_lifecycle import NOTEBOOK_IMAGE, session, with_platform

pytestmark = pytest.mark.integration

SESSION_RANK = {
    "Initializing": 0,
    "Waiting": 1,
    "Preparing": 2,
    "Available": 3,
    "Running": 3,
    "Releasing": 4,
    "Completed": 5,
    "Failed": 5,
    "Cancelled": 5,
    "Expired": 5,
}


class PhaseRecorder:
    """Every phase each object of one plural showed, in watch order."""

    def __init__(self, api: client.ApiClient, namespace: str, plural: str) -> None:
        self.api, self.namespace, self.plural = api, namespace, plural
        self.phases: dict[str, list[str]] = {}
        self._watch = watch.Watch()
        self._stopping = threading.Event()
        self.error: Exception | None = None
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        try:
            self._record()
        except Exception as exc:  # a broken watch fails the test, unless we were stopping it
            if not self._stopping.is_set():
                self.error = exc

    def _record(self) -> None:
        custom = client.CustomObjectsApi(self.api)
        for event in self._watch.stream(
            custom.list_namespaced_custom_object,
            GROUP,
            VERSION,
            self.namespace,
            self.plural,
            timeout_seconds=300,
        ):
            obj: dict[str, Any] = event["object"]
            current = (obj.get("status") or {}).get("phase")
            seq = self.phases.setdefault(obj["metadata"]["name"], [])
            if current and (not seq or seq[-1] != current):
                seq.append(current)

    def __enter__(self) -> PhaseRecorder:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stopping.set()
        self._watch.stop()
        self._thread.join(timeout=10)
        assert self.error is None, f"the {self.plural} watch broke: {self.error!r}"


def test_two_operators_launch_once_and_never_regress(
    api_client: client.ApiClient,
    namespace: str,
    sim: Simulator,
    operator: Path,
    controlplane: ControlPlane,
    tmp_path: Path,
) -> None:
    with_platform(api_client, namespace, sim)
    # Four notebooks (the simulator's interactive cap is five) and two long headless jobs.
    kinds = {f"s{i}": "notebook" for i in range(4)} | {"h0": "headless", "h1": "headless"}
    names = list(kinds)
    usable = {"notebook": "Available", "headless": "Running"}
    with (
        # Election off for the second: it steps every object, as the first one (holding every
        # shard) does, so the two really race and the guarded writes keep them apart.
        operator_process(controlplane, tmp_path / "second.log", "--no-election") as second,
        Watcher(sim) as skaha,
        PhaseRecorder(api_client, namespace, "computes") as computes,
        PhaseRecorder(api_client, namespace, "sessions") as sessions,
    ):
        for name, kind in kinds.items():
            compute: dict[str, Any] = {"type": kind}
            if kind == "headless":
                compute |= {"command": "sleep", "env": {"SIM_RUN_SECONDS": "600"}}
            create(api_client, namespace, session(name, NOTEBOOK_IMAGE, compute))
        wait_for(
            "all Sessions usable",
            lambda: all(
                phase(api_client, namespace, "Session", n) == usable[k] for n, k in kinds.items()
            ),
            120,
        )
        assert second.poll() is None
    launched = {n: ids for n, ids in skaha.seen.items() if n.startswith("skop-")}
    for n in names:
        status = client.CustomObjectsApi(api_client).get_namespaced_custom_object(
            GROUP, VERSION, namespace, "computes", f"{n}-compute"
        )["status"]
        assert launched[status["launch"]["name"]] == {status["launch"]["id"]}
    for name, seq in computes.phases.items():
        for old, new in itertools.pairwise(seq):
            assert new in COMPUTE_TRANSITIONS[old], f"Compute {name}: {seq}"
    for name, seq in sessions.phases.items():
        ranks = [SESSION_RANK[p] for p in seq]
        assert ranks == sorted(ranks), f"Session {name}: {seq}"
    assert set(computes.phases) == {f"{n}-compute" for n in names}
