"""The launcher: clean teardown, no orphans when its parent dies, optional garbage collection."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from kubernetes import client

from skaha_operator.controlplane import ControlPlane

pytestmark = pytest.mark.integration


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie still answers kill(0); it has exited all the same.
    stat = Path(f"/proc/{pid}/stat")
    return stat.exists() and stat.read_text().split()[2] != "Z"


def _wait_gone(pids: list[int], timeout: float = 20) -> list[int]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        left = [p for p in pids if _alive(p)]
        if not left:
            return []
        time.sleep(0.1)
    return [p for p in pids if _alive(p)]


def _api(cp: ControlPlane) -> client.ApiClient:
    config = client.Configuration()
    config.host = cp.server
    config.ssl_ca_cert = str(cp.ca_file)
    config.api_key = {"authorization": f"Bearer {cp.token}"}
    return client.ApiClient(config)


def test_stop_ends_every_process_and_removes_the_data() -> None:
    with ControlPlane() as cp:
        pids = [c.proc.pid for c in cp.children if c.proc]
        workdir = cp.workdir
        assert len(pids) == 2
        assert cp.kubeconfig.exists()
    assert _wait_gone(pids) == []
    assert not workdir.exists()


def test_children_die_with_a_killed_parent(tmp_path: Path) -> None:
    script = (
        "import sys, time\n"
        "from skaha_operator.controlplane import ControlPlane\n"
        "cp = ControlPlane(); cp.start()\n"
        "print(cp.workdir, *(c.proc.pid for c in cp.children), flush=True)\n"
        "time.sleep(600)\n"
    )
    with subprocess.Popen(
        [sys.executable, "-c", script], stdout=subprocess.PIPE, text=True, cwd=tmp_path
    ) as parent:
        try:
            assert parent.stdout is not None
            workdir, *pids = parent.stdout.readline().split()
            assert len(pids) == 2, pids
            parent.send_signal(signal.SIGKILL)
            parent.wait(timeout=10)
            assert _wait_gone([int(p) for p in pids]) == []
            assert Path(workdir).exists()
            # The next launcher sweeps the data dir its SIGKILLed predecessor left.
            with ControlPlane():
                assert not Path(workdir).exists()
        finally:
            if parent.poll() is None:
                parent.kill()
                parent.wait(timeout=10)


def test_controller_manager_collects_garbage() -> None:
    with ControlPlane(controller_manager=True) as cp, _api(cp) as api:
        core = client.CoreV1Api(api)
        owner = core.create_namespaced_config_map("default", {"metadata": {"name": "owner"}})
        ref = {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "name": "owner",
            "uid": owner.metadata.uid,
        }
        core.create_namespaced_config_map(
            "default", {"metadata": {"name": "dependent", "ownerReferences": [ref]}}
        )
        core.delete_namespaced_config_map("owner", "default")
        deadline = time.monotonic() + 60
        names = {"dependent"}
        while time.monotonic() < deadline:
            names = {c.metadata.name for c in core.list_namespaced_config_map("default").items}
            if "dependent" not in names:
                break
            time.sleep(0.25)
        assert "dependent" not in names
