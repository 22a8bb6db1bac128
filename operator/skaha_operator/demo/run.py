"""The demo flow and its flags: start everything, apply the examples, watch, explain, tear down.

`skaha-operator demo` (what `make demo` runs) keeps going until Ctrl-C, SIGTERM or
`skaha-operator demo --down` (`make demo-down`), which signals the pid recorded in the work dir.
`--once` is the non-interactive form for CI: up to "all usable", the table, tear down, exit code.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import signal
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from types import FrameType
from typing import Any, cast

import yaml

from skaha_operator import GROUP, VERSION
from skaha_operator.controlplane.binaries import cache_dir
from skaha_operator.demo.stack import Stack, kubectl_path
from skaha_operator.demo.table import Outcome, Row, render, row, settled
from skaha_operator.domain.kinds import KINDS_BY_NAME

# The examples as they are (they work with the simulator's defaults), except the headless job,
# whose copy in manifests/demo starts now instead of in 2030.
DEMO_FILES = (
    "examples/notebook-session.yaml",
    "examples/jupyter-notebook.yaml",
    "examples/shared-container-rucio.yaml",
    "demo/headless.yaml",
)
PLATFORM_EXAMPLE = "skaha-platform.yaml"
SIMULATOR_URL = "http://127.0.0.1:8765"
CLEAR = "\x1b[H\x1b[J"


class Stop(Exception):
    """SIGTERM (from `demo --down` or a process manager): tear down like Ctrl-C."""


def _out(text: str = "") -> None:
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


def repo_root() -> Path:
    """The checkout holding crds/ and manifests/ (the demo runs from a clone)."""
    for parent in Path(__file__).resolve().parents:
        if (parent / "crds").is_dir() and (parent / "manifests" / "demo").is_dir():
            return parent
    raise SystemExit("the demo runs from a checkout: crds/ and manifests/demo/ were not found")


def demo_cavern_files(root: Path) -> dict[str, str]:
    """Files the demo puts in alice's Cavern home: the script the headless `reduction` runs."""
    script = root / "manifests" / "demo" / "pipelines" / "reduce.py"
    return {"home/alice/pipelines/reduce.py": script.read_text()}


def demo_documents(root: Path, platform: Path | None, simulator_url: str) -> list[dict[str, Any]]:
    """Platform (the simulator example, or the user's file) then the demo objects, parsed."""
    examples = root / "manifests" / "examples"
    texts = [platform.read_text() if platform else (examples / PLATFORM_EXAMPLE).read_text()]
    texts += [(root / "manifests" / name).read_text() for name in DEMO_FILES]
    # The examples name the simulator's default address; a demo on another port points there.
    texts = [text.replace(SIMULATOR_URL, simulator_url) for text in texts]
    return [doc for text in texts for doc in yaml.safe_load_all(text) if doc]


def tracked(docs: list[dict[str, Any]]) -> list[tuple[str, str]]:
    """(kind, name) of every object of ours among the documents, in order."""
    return [
        (d["kind"], d["metadata"]["name"])
        for d in docs
        if str(d.get("apiVersion", "")).startswith(f"{GROUP}/")
    ]


def _pidfile(workdir: Path) -> Path:
    return workdir / "demo.pid"


def _alive(pid: int) -> bool:
    # A zombie (exited, not yet reaped by its parent) has stopped: only its pid remains.
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def _running_pid(workdir: Path) -> int | None:
    with contextlib.suppress(OSError, ValueError):
        pid = int(_pidfile(workdir).read_text())
        if _alive(pid):
            return pid
    return None


def down(workdir: Path, timeout: float = 90.0) -> int:
    """Stop a running demo by its pid file; it tears itself down. 0 when nothing is left."""
    pid = _running_pid(workdir)
    if pid is None:
        _out(f"no demo running (no live pid in {_pidfile(workdir)})")
        return 0
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not _alive(pid):
            _out(f"demo (pid {pid}) stopped")
            return 0
        time.sleep(0.2)
    # Its children die with it (parent-death signal), so a SIGKILL still leaves no process.
    os.kill(pid, signal.SIGKILL)
    _out(f"demo (pid {pid}) did not stop within {timeout:.0f}s: killed")
    return 1


class Watch:
    """Reads the tracked objects through the Kubernetes API."""

    def __init__(self, stack: Stack, namespace: str, objects: list[tuple[str, str]]) -> None:
        from kubernetes import client, config

        cfg = str(stack.kubeconfig) if stack.kubeconfig else None
        api_client: client.ApiClient = config.new_client_from_config(  # type: ignore[no-untyped-call]
            config_file=cfg
        )
        self.api = client.CustomObjectsApi(api_client)
        self.namespace = namespace
        self.objects = objects

    def rows(self) -> list[Row]:
        """Current rows, in the order the objects were applied."""
        from kubernetes.client import ApiException

        found = []
        for kind, name in self.objects:
            plural = KINDS_BY_NAME[kind].crd.plural
            with contextlib.suppress(ApiException):
                obj = self.api.get_namespaced_custom_object(
                    GROUP, VERSION, self.namespace, plural, name
                )
                found.append(row(cast(dict[str, Any], obj)))
        return found

    def close(self) -> None:
        """Release the HTTP pool."""
        self.api.api_client.close()


def watch_until_settled(
    watch: Watch, stack: Stack, expected: int, deadline: float, live: bool
) -> list[Row]:
    """Refresh the table every second until every object is usable or failed (or the deadline)."""
    shown: list[tuple[str, ...]] = []
    rows: list[Row] = []
    while time.monotonic() < deadline:
        rows = watch.rows()
        if live:
            sys.stdout.write(CLEAR + render(rows) + "\n")
            sys.stdout.flush()
        elif (key := [r.cells()[:4] + r.cells()[5:] for r in rows]) != shown:
            # Not a terminal (CI, a pipe): print the table only when a row changed (age aside).
            _out(render(rows) + "\n")
            shown = key
        if settled(rows, expected):
            return rows
        if dead := stack.dead_children():
            raise RuntimeError(f"{dead[0].name} exited:\n{dead[0].log_tail()}")
        time.sleep(1.0)
    raise TimeoutError(f"not every object was usable or failed in time:\n{render(rows)}")


def next_steps(stack: Stack, namespace: str, elapsed: float, rows: list[Row]) -> str:
    """What to try next, with the generated kubeconfig."""
    usable = sum(r.outcome == Outcome.USABLE for r in rows)
    lines = [f"{usable}/{len(rows)} objects usable, {elapsed:.1f}s after the command.", ""]
    kubeconfig = stack.kubeconfig or os.environ.get("KUBECONFIG", "~/.kube/config")
    kubectl = Path(kubectl_path())
    lines += [
        "Try next (in another shell):",
        f"  export KUBECONFIG={kubeconfig}",
        f"  export PATH={kubectl.parent}:$PATH",
        f"  kubectl -n {namespace} get sessions -o wide",
        f"  kubectl -n {namespace} describe session notebook-with-data",
        f"  kubectl -n {namespace} get computes,storages,data,jupyternotebooks,dockercontainers",
        f"  kubectl -n {namespace} get events --sort-by=.lastTimestamp",
        f"  kubectl -n {namespace} wait --for=condition=Ready session/spectra-tutorial",
        f"  kubectl -n {namespace} patch session reduction --type=merge -p "
        '\'{"spec":{"cancel":true}}\'',
        f"  kubectl -n {namespace} delete session analyse-obs-123   # releases its Skaha session",
    ]
    if stack.metrics_port:
        metrics = f"http://127.0.0.1:{stack.metrics_port}/metrics"
        lines.append(f"  curl -s {metrics} | grep -E '^(controller_runtime|skaha_)'")
    if stack.simulator_url:
        lines.append(f"  curl -s {stack.simulator_url}/_sim/sessions   # what the simulator runs")
    lines.append(f"  tail -f {stack.workdir / 'operator.log'}   # JSON logs")
    lines += ["", "Ctrl-C here, or `make demo-down` in another shell, stops everything."]
    return "\n".join(lines)


def _on_sigterm(signum: int, frame: FrameType | None) -> None:
    raise Stop


@contextlib.contextmanager
def _no_interrupts() -> Iterator[None]:
    # A second Ctrl-C during tear-down must not leave half of it undone.
    old_int = signal.signal(signal.SIGINT, signal.SIG_IGN)
    old_term = signal.signal(signal.SIGTERM, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, old_int)
        signal.signal(signal.SIGTERM, old_term)


def _bring_up(stack: Stack, args: argparse.Namespace, root: Path) -> list[dict[str, Any]]:
    ns = args.namespace
    if args.existing_cluster:
        stack.kubeconfig = args.kubeconfig
        _out("using the existing cluster" + (f" of {args.kubeconfig}" if args.kubeconfig else ""))
    else:
        _out("starting the local control plane (etcd + kube-apiserver)...")
        stack.start_controlplane()
    if not args.skip_crds:
        _out("installing the CRDs...")
        crds = str(root / "crds")
        stack.kubectl("apply", "--server-side", "--force-conflicts", "-f", crds)
        stack.kubectl("wait", "--for=condition=Established", "--timeout=60s", "-f", crds)
    if stack.kubectl("get", "namespace", ns, check=False).returncode != 0:
        stack.kubectl("create", "namespace", ns)
    sim_url = ""
    if args.platform is None:
        _out(f"starting the Skaha simulator on 127.0.0.1:{args.sim_port}...")
        sim_url = stack.start_simulator(args.sim_port, demo_cavern_files(root))
        _out(stack.job_runner())
    if not args.no_operator:
        _out("starting the operator (skaha-operator run)...")
        stack.start_operator(ns)
    docs = demo_documents(root, args.platform, sim_url or SIMULATOR_URL)
    _out(f"applying {len(docs)} objects to namespace {ns}...")
    stack.kubectl("apply", "-n", ns, "-f", "-", input_text=yaml.safe_dump_all(docs))
    return docs


def _tear_down(stack: Stack, args: argparse.Namespace, docs: list[dict[str, Any]]) -> None:
    with _no_interrupts():
        _out("tearing down...")
        if args.existing_cluster and docs:
            # A shared cluster keeps running: release the demo's objects (and their Skaha
            # sessions) while the operator still runs, and the platform they need last.
            platform = [d for d in docs if d["kind"] in ("SkahaPlatform", "Secret")]
            users = [d for d in docs if d not in platform]
            for batch in (users[::-1], platform):
                stack.kubectl(
                    "delete", "-n", args.namespace, "--ignore-not-found", "--wait=true",
                    "--timeout=120s", "-f", "-", input_text=yaml.safe_dump_all(batch),
                    check=False, timeout=180,
                )  # fmt: skip
        stack.stop()
        shutil.rmtree(stack.workdir / "cluster", ignore_errors=True)
        _pidfile(stack.workdir).unlink(missing_ok=True)
        _out("stopped: no process left behind")


def up(args: argparse.Namespace) -> int:
    """Run the demo; the exit code says whether every object became usable."""
    root = repo_root()
    workdir: Path = args.workdir
    if (pid := _running_pid(workdir)) is not None:
        _out(f"a demo is already running (pid {pid}): `make demo-down` stops it")
        return 2
    shutil.rmtree(workdir / "cluster", ignore_errors=True)
    workdir.mkdir(parents=True, exist_ok=True)
    _pidfile(workdir).write_text(str(os.getpid()))
    old_term = signal.signal(signal.SIGTERM, _on_sigterm)
    stack = Stack(workdir)
    docs: list[dict[str, Any]] = []
    started = time.monotonic()
    try:
        docs = _bring_up(stack, args, root)
        watch = Watch(stack, args.namespace, tracked(docs))
        try:
            live = sys.stdout.isatty() and not args.once
            rows = watch_until_settled(
                watch, stack, len(tracked(docs)), started + args.timeout, live
            )
        finally:
            watch.close()
        elapsed = time.monotonic() - started
        if live:
            sys.stdout.write(CLEAR)
            _out(render(rows) + "\n")
        _out(next_steps(stack, args.namespace, elapsed, rows))
        failed = any(r.outcome == Outcome.FAILED for r in rows)
        if not args.once:
            while not (dead := stack.dead_children()):
                time.sleep(1.0)
            _out(f"{dead[0].name} exited:\n{dead[0].log_tail()}")
            return 1
        return 1 if failed else 0
    except (KeyboardInterrupt, Stop):
        return 0
    except (RuntimeError, TimeoutError) as exc:
        _out(f"demo failed: {exc}")
        return 1
    finally:
        _tear_down(stack, args, docs)
        signal.signal(signal.SIGTERM, old_term)


def build_parser() -> argparse.ArgumentParser:
    """Flags of `skaha-operator demo`."""
    p = argparse.ArgumentParser(prog="skaha-operator demo", description=__doc__)
    p.add_argument("--once", action="store_true", help="non-interactive: run to usable, exit")
    p.add_argument("--down", action="store_true", help="stop the demo that is running")
    p.add_argument("--timeout", type=float, default=300.0, help="seconds to wait for usable")
    p.add_argument("--workdir", type=Path, default=cache_dir() / "demo", help="state and logs")
    p.add_argument("--namespace", default="skaha-demo", help="namespace for the examples")
    p.add_argument("--sim-port", type=int, default=8765, help="simulator port (127.0.0.1)")
    p.add_argument(
        "--existing-cluster",
        action="store_true",
        help="use the cluster of $KUBECONFIG (or --kubeconfig) instead of a local control plane",
    )
    p.add_argument("--kubeconfig", type=Path, help="kubeconfig of the existing cluster")
    p.add_argument(
        "--platform",
        type=Path,
        help="a Secret + SkahaPlatform `local` for a real Skaha; no simulator is started",
    )
    p.add_argument(
        "--no-operator", action="store_true", help="an operator already runs in the cluster"
    )
    p.add_argument("--skip-crds", action="store_true", help="the CRDs are installed already")
    return p


def main(argv: list[str] | None = None) -> int:
    """Entry point of `skaha-operator demo`."""
    args = build_parser().parse_args(argv)
    if args.down:
        return down(args.workdir)
    return up(args)
