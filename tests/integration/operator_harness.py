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
    ALLOW_LOOPBACK,
    MARKED,
    TOKEN,
    create,
    operator_process,
    platform_objects,
)
from skaha_operator.domain.kinds import KINDS, plural_of
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


def drain_namespace(api: client.ApiClient, namespace: str, release_s: float = 15.0) -> None:
    """Delete our objects in `namespace`, give the operator `release_s` to release them, then
    delete the namespace.

    The suite's API server runs no namespace controller (docs/kubernetes-notes.md §5, §9): a
    deleted namespace stays Terminating with its objects in it, never deleted, and every later
    test module's operator would find them, retry their dead simulators and refuse creates there.
    What is still held after `release_s` (a release a test left blocked on purpose) loses its
    finalizers here: the test that made it has ended."""
    custom = client.CustomObjectsApi(api)
    plurals = [kind.crd.plural for kind in KINDS]

    def ours() -> list[tuple[str, str]]:
        found = []
        for plural in plurals:
            try:
                items = custom.list_namespaced_custom_object(GROUP, VERSION, namespace, plural)
            except client.ApiException as exc:
                if exc.status == 404:
                    continue  # the CRDs are not installed (a test that needs none)
                raise
            found += [(plural, str(o["metadata"]["name"])) for o in items["items"]]
        return found

    def each(left: list[tuple[str, str]], act: Callable[[str, str], Any]) -> None:
        for plural, name in left:
            try:
                act(plural, name)
            except client.ApiException as exc:
                if exc.status != 404:
                    raise

    each(ours(), lambda p, n: custom.delete_namespaced_custom_object(
        GROUP, VERSION, namespace, p, n, propagation_policy="Background"
    ))  # fmt: skip
    deadline = time.monotonic() + release_s
    left = ours()
    while left and time.monotonic() < deadline:
        time.sleep(0.3)
        left = ours()
    each(left, lambda p, n: custom.patch_namespaced_custom_object(
        GROUP, VERSION, namespace, p, n, {"metadata": {"finalizers": None}}
    ))  # fmt: skip
    client.CoreV1Api(api).delete_namespace(namespace)
