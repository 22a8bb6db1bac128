"""Run the real operator (`skaha-operator run`) as a subprocess against the local control plane,
with the simulator serving Skaha in this test process. Shared by the lifecycle tests."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from kubernetes import client

from skaha_operator import GROUP, VERSION
from skaha_operator.controlplane.kit import (  # noqa: F401 (shared with bench/)
    TOKEN,
    create,
    operator_process,
    platform_objects,
)
from skaha_operator.domain.kinds import plural_of
from skaha_operator.simulator import Simulator


def wait_for(what: str, probe: Callable[[], Any], timeout: float = 60.0, every: float = 0.2) -> Any:
    """Poll `probe` until it returns something truthy; fail with `what` after `timeout`."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = probe()
        if last:
            return last
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}; last={last!r}")


def get(api: client.ApiClient, namespace: str, kind: str, name: str) -> dict[str, Any] | None:
    """One of our objects, or None."""
    try:
        obj: dict[str, Any] = client.CustomObjectsApi(api).get_namespaced_custom_object(
            GROUP, VERSION, namespace, plural_of(kind), name
        )
    except client.ApiException as exc:
        if exc.status == 404:
            return None
        raise
    return obj


def phase(api: client.ApiClient, namespace: str, kind: str, name: str) -> str | None:
    """status.phase of one object."""
    obj = get(api, namespace, kind, name)
    return ((obj or {}).get("status") or {}).get("phase")


def status(api: client.ApiClient, namespace: str, kind: str, name: str) -> dict[str, Any]:
    """The status of one of our objects ({} when it has none or is gone)."""
    return ((get(api, namespace, kind, name) or {}).get("status")) or {}


def condition(st: dict[str, Any], type_: str) -> dict[str, Any]:
    """One condition of a status ({} when absent)."""
    return next((c for c in st.get("conditions") or [] if c.get("type") == type_), {})


def delete(api: client.ApiClient, namespace: str, kind: str, name: str) -> None:
    """Delete one of our objects (its finalizer then releases what it holds)."""
    client.CustomObjectsApi(api).delete_namespaced_custom_object(
        GROUP, VERSION, namespace, plural_of(kind), name
    )


class Watcher:
    """Records every session the simulator ever shows, to count launches per name."""

    def __init__(self, sim: Simulator) -> None:
        self.sim = sim
        self.seen: dict[str, set[str]] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(0.05):
            for s in self.sim.sessions():
                self.seen.setdefault(s["name"], set()).add(s["id"])

    def __enter__(self) -> Watcher:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
