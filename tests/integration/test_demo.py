"""The one-command demo end to end: `skaha-operator demo` as a user runs it (docs/demo.md).

Each test runs the whole demo (its own control plane, simulator and operator) in a temporary
work dir, then checks that no process mentioning that dir is left.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from skaha_operator.controlplane import ControlPlane
from skaha_operator.controlplane.processes import free_port
from tests.integration.conftest import Kubectl

pytestmark = pytest.mark.integration

ROWS = (
    "SkahaPlatform/local", "Session/notebook-with-data", "Storage/tutorial-space",
    "JupyterNotebook/spectra-tutorial", "Session/spectra-tutorial", "DockerContainer/astroml",
    "Storage/survey-inputs", "Data/obs-123", "Session/analyse-obs-123", "Session/reduction",
)  # fmt: skip


def demo(workdir: Path, *flags: str) -> list[str]:
    return [
        sys.executable, "-m", "skaha_operator", "demo", "--workdir", str(workdir),
        "--sim-port", str(free_port()), "--timeout", "240", *flags,
    ]  # fmt: skip


def strays(workdir: Path) -> list[str]:
    """Processes whose command line or environment mentions the work dir."""
    needle = str(workdir).encode()
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit() or int(proc.name) == os.getpid():
            continue
        try:
            if (
                needle in (proc / "cmdline").read_bytes()
                or needle in (proc / "environ").read_bytes()
            ):
                found.append((proc / "cmdline").read_bytes().replace(b"\0", b" ").decode())
        except OSError:
            continue
    return found


def final_table(output: str) -> dict[str, list[str]]:
    """The last table printed before the summary line, as name -> cells."""
    before = re.split(r"^\d+/\d+ objects usable, ", output, flags=re.M)[0]
    block = before.rstrip().rsplit("KIND/NAME", 1)[1].splitlines()[1:]
    lines = [line.strip() for line in block if line.strip()]
    return {cells[0]: cells for cells in (re.split(r"\s{3,}", line) for line in lines)}


def test_once_reaches_all_usable_then_leaves_nothing(tmp_path: Path) -> None:
    workdir = tmp_path / "demo"
    done = subprocess.run(demo(workdir, "--once"), capture_output=True, text=True, timeout=400)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    assert "10/10 objects usable" in done.stdout
    table = final_table(done.stdout)
    assert tuple(table) == ROWS
    assert table["Session/notebook-with-data"][1:3] == ["Available", "True"]
    assert table["Data/obs-123"][1:3] == ["Available", "True"]
    assert table["Session/reduction"][1:3] == ["Running", "True"]
    assert "/spectra.ipynb?token=" in table["Session/spectra-tutorial"][-1]
    assert table["Session/analyse-obs-123"][-1].startswith("http://127.0.0.1:")
    assert "export KUBECONFIG=" in done.stdout
    assert "stopped: no process left behind" in done.stdout
    assert strays(workdir) == []
    assert not (workdir / "demo.pid").exists()
    assert not (workdir / "cluster").exists()
    # The operator logged JSON with object references (each Event's line, k8s/events.py).
    log = (workdir / "operator.log").read_text()
    assert '"object": {' in log or '"object":{' in log


def test_interactive_demo_runs_until_down(tmp_path: Path) -> None:
    workdir = tmp_path / "demo"
    out = tmp_path / "demo.out"
    with out.open("w") as sink:
        proc = subprocess.Popen(demo(workdir), stdout=sink, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 300
        while "Try next" not in out.read_text() and time.monotonic() < deadline:
            assert proc.poll() is None, out.read_text()[-4000:]
            time.sleep(0.5)
        assert "Try next" in out.read_text(), out.read_text()[-4000:]
        # It keeps running after everything is usable, until told to stop.
        assert proc.poll() is None
        assert strays(workdir) != []
        again = subprocess.run(demo(workdir), capture_output=True, text=True, timeout=60)
        assert again.returncode == 2
        assert "already running" in again.stdout
        down = subprocess.run(demo(workdir, "--down"), capture_output=True, text=True, timeout=120)
        assert down.returncode == 0, down.stdout
        assert proc.wait(timeout=60) == 0
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=30)
    assert "stopped: no process left behind" in out.read_text()
    assert strays(workdir) == []


def test_existing_cluster_mode_releases_its_objects_before_it_stops(
    tmp_path: Path, controlplane: ControlPlane, crds: list[str], kubectl: Kubectl
) -> None:
    ns = f"demo-{uuid.uuid4().hex[:6]}"
    flags = ("--once", "--existing-cluster", "--kubeconfig", str(controlplane.kubeconfig))
    done = subprocess.run(
        demo(tmp_path / "demo", *flags, "--skip-crds", "--namespace", ns),
        capture_output=True, text=True, timeout=400,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    assert "10/10 objects usable" in done.stdout
    assert "starting the local control plane" not in done.stdout
    # The Sessions were released through the operator's finalizers (they are gone, not stuck
    # Terminating), then the platform; the cluster itself keeps running.
    kinds = "sessions,computes,dockercontainers,storages,data,jupyternotebooks,skahaplatforms"
    left = kubectl("get", f"{kinds},secrets,configmaps", "-n", ns, "-o", "name").stdout.split()
    assert [name for name in left if name != "configmap/kube-root-ca.crt"] == []
    assert strays(tmp_path / "demo") == []
