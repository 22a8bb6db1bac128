"""The Helm chart against a real API server: server-side dry-run of every rendered object, then
`helm install` of two replicas onto fake nodes (kwok) up to an Available Deployment with a
PodDisruptionBudget, the two replicas splitting the shard Leases and working with
exactly the chart's RBAC, and `helm uninstall` leaving only the CRDs.

Pods need a scheduler and nodes: kube-scheduler binds them (kwok does not schedule) to a Node
that kwok keeps Ready and whose pods kwok marks Running and Ready. kube-controller-manager runs
the deployment and replicaset controllers.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from kubernetes import client

from skaha_operator.controlplane import ControlPlane, binary
from skaha_operator.controlplane.launcher import _insecure
from skaha_operator.controlplane.processes import Child, free_port, wait_http_ok
from skaha_operator.simulator import Simulator
from tests.integration.conftest import Kubectl
from tests.integration.operator_harness import create, get, platform_objects, wait_for
from tests.ship.chart import CHART, KUBE_VERSION, crd_plurals, helm, render

pytestmark = pytest.mark.integration

STAGES = Path(__file__).resolve().parents[2] / "hack" / "kwok-stages.yaml"
RESTRICTED = "pod-security.kubernetes.io/enforce=restricted"
CONTROLLERS = "deployment,replicaset,garbagecollector,namespace,serviceaccount,serviceaccount-token"
NODE = {
    "apiVersion": "v1",
    "kind": "Node",
    "metadata": {
        "name": "kwok-node-0",
        "annotations": {"kwok.x-k8s.io/node": "fake"},
        "labels": {
            "kubernetes.io/hostname": "kwok-node-0",
            "kubernetes.io/os": "linux",
            "kubernetes.io/arch": "amd64",
            "type": "kwok",
        },
    },
    "status": {
        "allocatable": {"cpu": "8", "memory": "32Gi", "pods": "110"},
        "capacity": {"cpu": "8", "memory": "32Gi", "pods": "110"},
    },
}


@pytest.mark.parametrize(
    "sets",
    [
        ("networkPolicy.enabled=true",),
        (
            "rbac.namespaced=true",
            "watchNamespaces={ns-a,ns-b}",
            "networkPolicy.enabled=true",
            "networkPolicy.egress[0].to[0].ipBlock.cidr=10.0.0.0/8",
        ),
    ],
    ids=["cluster", "namespaced"],
)
def test_every_rendered_object_passes_server_side_dry_run(
    kubectl: Kubectl, namespace: str, sets: tuple[str, ...]
) -> None:
    kubectl("label", "namespace", namespace, "pod-security.kubernetes.io/warn=restricted")
    for ns in ("ns-a", "ns-b"):
        kubectl("create", "namespace", ns, check=False)
    stream = render(*sets, namespace=namespace, release=f"dry-{len(sets)}")
    done = kubectl("apply", "--dry-run=server", "-f", "-", input=stream, check=False)
    assert done.returncode == 0, done.stderr
    applied = [ln for ln in done.stdout.splitlines() if ln.endswith("(server dry run)")]
    assert len(applied) == stream.count("\nkind: ") + stream.startswith("kind: "), done.stdout
    # The pod template meets the restricted Pod Security Standard: no admission warning.
    assert "PodSecurity" not in done.stderr, done.stderr
    crds = helm("template", "c", str(CHART), "--include-crds", "--kube-version", KUBE_VERSION)
    done = kubectl("apply", "--dry-run=server", "-f", "-", input=crds.stdout)
    assert done.stdout.count("customresourcedefinition") == len(crd_plurals())


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ControlPlane]:
    """A control plane with controllers, kube-scheduler and kwok managing one fake node."""
    with ControlPlane(controller_manager=True, controllers=CONTROLLERS) as cp:
        logs = tmp_path_factory.mktemp("kwok")
        port = free_port()
        scheduler = Child("kube-scheduler", [
            str(binary("kube-scheduler")), f"--kubeconfig={cp.kubeconfig}",
            f"--authentication-kubeconfig={cp.kubeconfig}",
            f"--authorization-kubeconfig={cp.kubeconfig}", "--leader-elect=false",
            "--bind-address=127.0.0.1", f"--secure-port={port}",
        ], logs / "scheduler.log")  # fmt: skip
        kwok = Child("kwok", [
            str(binary("kwok")), f"--kubeconfig={cp.kubeconfig}", "--manage-all-nodes",
            f"--server-address=127.0.0.1:{free_port()}", f"--config={STAGES}",
        ], logs / "kwok.log")  # fmt: skip
        cp.children += [scheduler, kwok]  # stopped with the control plane
        scheduler.start()
        kwok.start()
        deadline = time.monotonic() + 90
        wait_http_ok(f"https://127.0.0.1:{port}/healthz", deadline, scheduler,
                     token=cp.token, context=_insecure())  # fmt: skip
        yield cp


def run_kubectl(cp: ControlPlane, *args: str, input: str | None = None, check: bool = True,
                kubeconfig: Path | None = None) -> subprocess.CompletedProcess[str]:  # fmt: skip
    env = {**os.environ, "KUBECONFIG": str(kubeconfig or cp.kubeconfig)}
    return subprocess.run([str(binary("kubectl")), *args], input=input, text=True,
                          capture_output=True, check=check, env=env, timeout=120)  # fmt: skip


def leftovers(cp: ControlPlane, release: str) -> list[str]:
    selector = f"app.kubernetes.io/instance={release}"
    kinds = "deployment,replicaset,pod,service,serviceaccount,role,rolebinding,networkpolicy"
    names = run_kubectl(cp, "get", kinds, "-A", "-l", selector, "-o", "name").stdout.split()
    cluster = run_kubectl(cp, "get", "clusterrole,clusterrolebinding", "-l", selector, "-o", "name")
    return names + cluster.stdout.split()


def sa_kubeconfig(cp: ControlPlane, ns: str, sa: str, path: Path) -> Path:
    """A kubeconfig that authenticates as the chart's ServiceAccount (TokenRequest)."""
    token = run_kubectl(cp, "create", "token", sa, "-n", ns, "--duration=1h").stdout.strip()
    config = json.loads(cp.kubeconfig.read_text())
    config["users"] = [{"name": "admin", "user": {"token": token}}]
    path.write_text(json.dumps(config))
    return path


def test_helm_install_on_kwok_is_available_works_with_its_rbac_and_uninstalls_clean(
    cluster: ControlPlane, sim: Simulator, tmp_path: Path
) -> None:
    cp, release, ns = cluster, "skaha", "skaha-system"
    run_kubectl(cp, "create", "namespace", ns)
    run_kubectl(cp, "label", "namespace", ns, RESTRICTED)
    run_kubectl(cp, "create", "-f", "-", input=json.dumps(NODE))
    # Admission taints a new node not-ready; the node lifecycle controller (not run here: it
    # would also evict from a node without kubelet heartbeats) lifts it once kwok marks it Ready.
    run_kubectl(cp, "taint", "node", "kwok-node-0", "node.kubernetes.io/not-ready:NoSchedule-")
    hargs = ("--kubeconfig", str(cp.kubeconfig), "--namespace", ns)
    done = helm("install", release, str(CHART), *hargs, "--set", "replicas=2", "--wait",
                "--timeout=180s", check=False)  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    dep = json.loads(run_kubectl(cp, "get", "deployment", "-n", ns, "skaha-skaha-operator",
                                 "-o", "json").stdout)  # fmt: skip
    conditions = {c["type"]: c["status"] for c in dep["status"]["conditions"]}
    assert conditions["Available"] == "True"
    assert dep["status"]["readyReplicas"] == 2
    pods = json.loads(run_kubectl(cp, "get", "pods", "-n", ns, "-o", "json").stdout)["items"]
    assert [p["spec"]["nodeName"] for p in pods] == ["kwok-node-0"] * 2
    pdb = json.loads(run_kubectl(cp, "get", "pdb", "-n", ns, "skaha-skaha-operator", "-o",
                                 "json").stdout)  # fmt: skip
    assert pdb["spec"]["minAvailable"] == 1
    container = dep["spec"]["template"]["spec"]["containers"][0]
    lease_args = [a for a in container["args"] if a.startswith(("--lease", "--shards"))]
    assert run_kubectl(cp, "get", "crd", "sessions.skaha.broker.dev", check=False).returncode == 0

    # The real operator, authenticated as the chart's ServiceAccount, runs a Session to Available:
    # the RBAC is enough. And it is no more than that: it may not read Pods or write Secrets.
    as_sa = sa_kubeconfig(cp, ns, "skaha-skaha-operator", tmp_path / "sa.kubeconfig")
    checks = [("get", "pods", "no"), ("create", "secrets", "no"), ("get", "secrets", "yes"),
              ("update", "sessions.skaha.broker.dev", "no"),
              ("create", "sessions.skaha.broker.dev", "no"),
              ("delete", "skahaplatforms.skaha.broker.dev", "no"),
              ("create", "computes.skaha.broker.dev", "yes"),
              ("watch", "sessions.skaha.broker.dev", "yes"),
              ("get", "computes.skaha.broker.dev --subresource=status", "no"),
              ("patch", "sessions.skaha.broker.dev --subresource=status", "yes"),
              ("update", "leases.coordination.k8s.io -n skaha-system", "yes"),
              ("update", "leases.coordination.k8s.io -n kube-system", "no")]  # fmt: skip
    for verb, what, want in checks:
        where = [] if " -n " in what else ["-n", "default"]
        got = run_kubectl(cp, "auth", "can-i", verb, *what.split(), *where, check=False,
                          kubeconfig=as_sa).stdout.strip()  # fmt: skip
        assert got == want, (verb, what, got)
    config = client.Configuration()
    config.host, config.ssl_ca_cert = cp.server, str(cp.ca_file)
    config.api_key = {"authorization": f"Bearer {cp.token}"}
    with client.ApiClient(config) as api:
        client.CoreV1Api(api).create_namespace({"metadata": {"name": "science"}})
        for obj in platform_objects("science", sim.base_url):  # type: ignore[attr-defined]
            create(api, "science", obj)
        create(api, "science", {
            "apiVersion": "skaha.broker.dev/v1alpha1", "kind": "Session",
            "metadata": {"name": "nb"},
            "spec": {"platformRef": "local",
                     "executable": {"template": {"dockerContainer": {
                         "image": "images.canfar.net/skaha/astroml:latest"}}},
                     "compute": {"template": {"type": "notebook", "cores": 1, "ramGiB": 2}}},
        })  # fmt: skip
        # The two replicas, as the Deployment runs them: the pods' names and namespace from the
        # downward API, the chart's Lease arguments.
        logs = [tmp_path / f"operator-{i}.log" for i in range(2)]
        procs = []
        for pod, log in zip(pods, logs, strict=True):
            env = {**os.environ, "KUBECONFIG": str(as_sa), "POD_NAME": pod["metadata"]["name"],
                   "POD_NAMESPACE": ns}  # fmt: skip
            argv = [sys.executable, "-m", "skaha_operator", "run", "--poll-base", "0.3",
                    "--poll-cap", "2", "--http-timeout", "3", *lease_args]  # fmt: skip
            with log.open("ab") as out:
                procs.append(subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, env=env))
        try:

            def split() -> bool:
                leases = client.CoordinationV1Api(api).list_namespaced_lease(ns).items
                held = [x.spec.holder_identity for x in leases if "-shard-" in x.metadata.name]
                names = sorted(p["metadata"]["name"] for p in pods)
                return sorted(map(str, set(held))) == names and held.count(names[0]) == 8

            wait_for("the two replicas holding 8 shards each", split, 90)

            def available() -> bool:
                status = (get(api, "science", "Session", "nb") or {}).get("status") or {}
                return status.get("phase") == "Available"

            wait_for("Session Available with the chart's RBAC", available, 120)
            client.CustomObjectsApi(api).delete_namespaced_custom_object(
                "skaha.broker.dev", "v1alpha1", "science", "sessions", "nb"
            )
            wait_for("Session released", lambda: get(api, "science", "Session", "nb") is None, 90)
        finally:
            for proc in procs:
                proc.terminate()
            for proc in procs:
                try:
                    proc.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(timeout=10)
        for log in logs:
            assert "Forbidden" not in log.read_text(), log.read_text()[-3000:]
        # A clean stop released every shard and removed the member Leases.
        leases = client.CoordinationV1Api(api).list_namespaced_lease(ns).items
        assert [x.spec.holder_identity for x in leases if "-shard-" in x.metadata.name] == [
            None
        ] * 16
        assert [x for x in leases if "-member-" in x.metadata.name] == []

    done = helm("uninstall", release, *hargs, "--wait", "--timeout=120s", check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    wait_for("nothing of the release left", lambda: leftovers(cp, release) == [], 90, every=1)
    crds = run_kubectl(cp, "get", "crd", "-o", "name").stdout.split()
    assert sorted(c.split("/")[1].split(".")[0] for c in crds) == sorted(crd_plurals())
