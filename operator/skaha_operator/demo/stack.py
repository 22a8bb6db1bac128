"""The demo's processes: local control plane, simulator and operator, plus kubectl.

Every child is a `controlplane.processes.Child` (own session, SIGKILLed by the kernel if the demo
dies), logging into the demo's work dir. `Stack.stop` takes them down newest first.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from skaha_operator.controlplane import BinaryMissingError, ControlPlane, binary
from skaha_operator.controlplane.processes import Child, free_port, wait_http_ok

# The simulator's short timings keep the demo quick; they are simulator knobs, not Skaha's.
# Headless sessions run as podman containers where podman and the stand-in image exist
# (`make setup`), else they are emulated (job_mode auto).
SIMULATOR_CONFIG = {
    "seed": 7,
    "pending_s": 2.0,
    "run_s": 1.0,
    "terminate_s": 1.0,
    "job_mode": "auto",
    "job_stop_grace_s": 2.0,
}
OPERATOR_FLAGS = ("--poll-base", "0.3", "--poll-cap", "2", "--resync", "30", "--adopt-grace", "20")


def kubectl_path() -> str:
    """The pinned kubectl from the cache, else the one on PATH."""
    try:
        return str(binary("kubectl"))
    except BinaryMissingError:
        found = shutil.which("kubectl")
        if found is None:
            raise
        return found


@dataclass
class Stack:
    """What the demo started; `stop` undoes all of it."""

    workdir: Path
    kubeconfig: Path | None = None
    controlplane: ControlPlane | None = None
    children: list[Child] = field(default_factory=list)
    metrics_port: int = 0
    simulator_url: str = ""

    def env(self) -> dict[str, str]:
        """The environment for kubectl and the operator: our kubeconfig."""
        env = dict(os.environ)
        if self.kubeconfig is not None:
            env["KUBECONFIG"] = str(self.kubeconfig)
        return env

    def kubectl(
        self,
        *args: str,
        input_text: str | None = None,
        check: bool = True,
        timeout: float = 120.0,
    ) -> subprocess.CompletedProcess[str]:
        """Run kubectl against the demo's cluster; output captured."""
        proc = subprocess.run(
            [kubectl_path(), *args],
            input=input_text,
            text=True,
            capture_output=True,
            env=self.env(),
            timeout=timeout,
            check=False,
        )
        if check and proc.returncode != 0:
            raise RuntimeError(f"kubectl {' '.join(args)} failed:\n{proc.stderr.strip()}")
        return proc

    def start_controlplane(self) -> None:
        """A fresh etcd + kube-apiserver in the work dir."""
        cp = ControlPlane(self.workdir / "cluster", start_timeout=120.0)
        self.controlplane = cp
        cp.start()
        self.kubeconfig = cp.kubeconfig

    def _spawn(self, name: str, argv: list[str]) -> Child:
        child = Child(name=name, argv=argv, log_path=self.workdir / f"{name}.log")
        self.children.append(child)
        child.start()
        return child

    def start_simulator(self, port: int, cavern_files: dict[str, str] | None = None) -> str:
        """The Skaha/Cavern/Rucio simulator on 127.0.0.1:`port`, waited on until it answers."""
        config = self.workdir / "simulator.json"
        config.write_text(json.dumps({**SIMULATOR_CONFIG, "cavern_files": cavern_files or {}}))
        argv = [sys.executable, "-m", "skaha_operator", "simulator", "--port", str(port)]
        child = self._spawn("simulator", [*argv, "--config", str(config)])
        self.simulator_url = f"http://127.0.0.1:{port}"
        wait_http_ok(f"{self.simulator_url}/_sim/clock", time.monotonic() + 60, child)
        return self.simulator_url

    def job_runner(self) -> str:
        """How the simulator runs headless sessions, in words (from `GET /_sim/config`)."""
        with urllib.request.urlopen(f"{self.simulator_url}/_sim/config", timeout=10) as reply:
            runner = json.load(reply)["job_runner"]
        if runner["mode"] == "container":
            return f"headless sessions run as containers ({runner['engine']})"
        return f"headless sessions are emulated ({runner['reason']})"

    def start_operator(self, namespace: str) -> None:
        """`skaha-operator run` for one namespace, JSON logs, liveness and metrics on free ports."""
        liveness, self.metrics_port = free_port(), free_port()
        argv = [sys.executable, "-m", "skaha_operator", "run", "--namespace", namespace]
        argv += ["--log-format", "json", "--liveness", f"http://127.0.0.1:{liveness}/healthz"]
        argv += ["--metrics-port", str(self.metrics_port), "--metrics-address", "127.0.0.1"]
        # `env` execs the operator in place (same pid, same parent-death signal).
        if self.kubeconfig is not None:
            argv = [shutil.which("env") or "/usr/bin/env", f"KUBECONFIG={self.kubeconfig}", *argv]
        child = self._spawn("operator", [*argv, *OPERATOR_FLAGS])
        wait_http_ok(f"http://127.0.0.1:{liveness}/healthz", time.monotonic() + 90, child)

    def dead_children(self) -> list[Child]:
        """Children that exited although the demo still runs."""
        return [c for c in self.children if not c.alive()]

    def stop(self) -> None:
        """Stop the operator, the simulator and the control plane, newest first."""
        for child in reversed(self.children):
            child.stop()
        self.children.clear()
        if self.controlplane is not None:
            self.controlplane.stop()
            self.controlplane = None
