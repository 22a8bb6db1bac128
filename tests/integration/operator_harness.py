"""Run the real operator (`skaha-operator run`) as a subprocess against the local control plane,
with the simulator serving Skaha in this test process. Shared by the lifecycle tests."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from kubernetes import client

from skaha_operator import GROUP, VERSION
from skaha_operator.controlplane import ControlPlane
from skaha_operator.simulator import Simulator

TOKEN = "tok-alice"
# The label that opts a Secret in for the operator (k8s/api.py CREDENTIALS_LABEL).
MARKED = {"skaha.broker.dev/credentials": "true"}
# The simulator and the tests' own servers listen on loopback, which the operator refuses
# unless it is listed (platform/hosts.py).
ALLOW_LOOPBACK = "--allowed-hosts=127.0.0.1"


@contextmanager
def operator_process(
    cp: ControlPlane, log: Path, *extra: str, kubeconfig: Path | None = None
) -> Iterator[subprocess.Popen[bytes]]:
    """The operator as a child process (as admin, or as `kubeconfig` says); SIGTERM then SIGKILL."""
    env = {**os.environ, "KUBECONFIG": str(kubeconfig or cp.kubeconfig)}
    argv = [
        sys.executable,
        "-m",
        "skaha_operator",
        "run",
        "--poll-base",
        "0.3",
        "--poll-cap",
        "2",
        "--resync",
        "15",
        "--http-timeout",
        "3",
        "--adopt-grace",
        "6",
        ALLOW_LOOPBACK,
        *extra,
    ]
    with log.open("ab") as out:
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, env=env)
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)


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


def platform_objects(namespace: str, skaha_base: str) -> list[dict[str, Any]]:
    """A token Secret (marked for the operator) and a SkahaPlatform pointing at the simulator."""
    return [
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "skaha-token", "labels": MARKED},
            "stringData": {"token": TOKEN},
        },
        {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": "SkahaPlatform",
            "metadata": {"name": "local"},
            "spec": {
                "skaha": {"url": f"{skaha_base}/skaha"},
                "cavern": {"url": f"{skaha_base}/arc", "user": "alice"},
                "tokenSecretRef": {"name": "skaha-token", "key": "token"},
            },
        },
    ]


PLURALS = {
    "SkahaPlatform": "skahaplatforms",
    "DockerContainer": "dockercontainers",
    "Compute": "computes",
    "Session": "sessions",
}


def create(api: client.ApiClient, namespace: str, obj: dict[str, Any]) -> None:
    """Create a Secret or one of our objects."""
    if obj["kind"] == "Secret":
        client.CoreV1Api(api).create_namespaced_secret(namespace, obj)
        return
    client.CustomObjectsApi(api).create_namespaced_custom_object(
        GROUP, VERSION, namespace, PLURALS[obj["kind"]], obj
    )


def get(api: client.ApiClient, namespace: str, kind: str, name: str) -> dict[str, Any] | None:
    """One of our objects, or None."""
    try:
        obj: dict[str, Any] = client.CustomObjectsApi(api).get_namespaced_custom_object(
            GROUP, VERSION, namespace, PLURALS[kind], name
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
