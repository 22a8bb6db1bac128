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
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from skaha_operator.controlplane import ControlPlane, binary
from skaha_operator.controlplane.launcher import _insecure
from skaha_operator.controlplane.processes import Child, free_port, wait_http_ok
from skaha_operator.simulator import Simulator
from tests.integration.conftest import Kubectl
from tests.integration.operator_harness import (
    ALLOW_LOOPBACK,
    create,
    get,
    platform_objects,
    wait_for,
)
from tests.ship.chart import CHART, crd_plurals, helm, render

pytestmark = pytest.mark.integration

STAGES = Path(__file__).resolve().parents[2] / "hack" / "kwok-stages.yaml"
RESTRICTED = "pod-security.kubernetes.io/enforce=restricted"
CONTROLLERS = (
    "deployment,replicaset,garbagecollector,namespace,serviceaccount,serviceaccount-token,"
    "clusterrole-aggregation"  # fills view/edit/admin from the chart's aggregated roles
)
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
    # The CRDs are templates of the chart (crds.enabled, the default): in the stream above.
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


def ensure_node(cp: ControlPlane) -> None:
    """The kwok node, created once per control plane."""
    if run_kubectl(cp, "get", "node", "kwok-node-0", check=False).returncode == 0:
        return
    run_kubectl(cp, "create", "-f", "-", input=json.dumps(NODE))
    # Admission taints a new node not-ready; the node lifecycle controller (not run here: it
    # would also evict from a node without kubelet heartbeats) lifts it once kwok marks it Ready.
    run_kubectl(cp, "taint", "node", "kwok-node-0", "node.kubernetes.io/not-ready:NoSchedule-")


def drop_crds(cp: ControlPlane) -> None:
    """Remove our CRDs a previous release kept (helm.sh/resource-policy: keep), so that the next
    release installs them as its own (Helm refuses to adopt objects of another release).
    Objects an earlier test left behind a finalizer (no operator runs now) would hold a CRD in
    Terminating: their finalizers go first."""
    for plural in crd_plurals():
        found = run_kubectl(cp, "get", f"{plural}.skaha.broker.dev", "-A", "-o", "json",
                            check=False)  # fmt: skip
        for item in json.loads(found.stdout or '{"items": []}')["items"]:
            meta = item["metadata"]
            run_kubectl(cp, "patch", f"{plural}.skaha.broker.dev", meta["name"], "-n",
                        meta["namespace"], "--type=merge", "-p",
                        '{"metadata":{"finalizers":null}}', check=False)  # fmt: skip
    done = run_kubectl(cp, "delete", "crd", "-l", "app.kubernetes.io/part-of=skaha-operator",
                       "--ignore-not-found", "--wait", "--timeout=90s", check=False)  # fmt: skip
    assert done.returncode == 0, done.stderr


def our_crds(cp: ControlPlane) -> dict[str, dict[str, Any]]:
    selector = "app.kubernetes.io/part-of=skaha-operator"
    items = json.loads(run_kubectl(cp, "get", "crd", "-l", selector, "-o", "json").stdout)["items"]
    return {c["spec"]["names"]["plural"]: c for c in items}


def test_helm_install_on_kwok_is_available_works_with_its_rbac_and_uninstalls_clean(
    cluster: ControlPlane, sim: Simulator, tmp_path: Path
) -> None:
    cp, release, ns = cluster, "skaha", "skaha-system"
    drop_crds(cp)
    run_kubectl(cp, "create", "namespace", ns)
    run_kubectl(cp, "label", "namespace", ns, RESTRICTED)
    ensure_node(cp)
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
              ("create", "tokenreviews.authentication.k8s.io", "yes"),
              ("create", "subjectaccessreviews.authorization.k8s.io", "yes"),
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
                    "--poll-cap", "2", "--http-timeout", "3", ALLOW_LOOPBACK,
                    *lease_args]  # fmt: skip
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
    # The CRDs stay (crds.keep: helm.sh/resource-policy: keep), and with them every Session.
    crds = run_kubectl(cp, "get", "crd", "-o", "name").stdout.split()
    assert sorted(c.split("/")[1].split(".")[0] for c in crds) == sorted(crd_plurals())


SITE_CA = """-----BEGIN CERTIFICATE-----
MIIBszCCAVmgAwIBAgIUQ3nQ0Z5v1X2m8y3lJ6w5b7mE0c8wCgYIKoZIzj0EAwIw
-----END CERTIFICATE-----
"""  # the pod does not run (kwok): only the mount is checked here; tests/unit checks the trust


def can_i(cp: ControlPlane, user: str, verb: str, what: str, ns: str) -> str:
    done = run_kubectl(cp, "auth", "can-i", verb, *what.split(), "-n", ns, "--as", user,
                       check=False)  # fmt: skip
    return done.stdout.strip()


def test_site_values_reach_the_pod_crds_upgrade_with_the_release_and_editors_create_sessions(
    cluster: ControlPlane, tmp_path: Path
) -> None:
    cp, release, ns = cluster, "site", "site-system"
    drop_crds(cp)
    run_kubectl(cp, "create", "namespace", ns)
    run_kubectl(cp, "label", "namespace", ns, RESTRICTED)
    ensure_node(cp)
    run_kubectl(cp, "create", "configmap", "site-ca", "-n", ns, f"--from-literal=ca.crt={SITE_CA}")
    hargs = ("--kubeconfig", str(cp.kubeconfig), "--namespace", ns)
    values = ("--set", "extraEnv[0].name=SKAHA_SITE", "--set", "extraEnv[0].value=ca-west",
              "--set", "caBundle.configMap=site-ca", "--set", "httpsProxy=http://proxy:3128",
              "--set", "operator.downloaderImage=registry.example.org/tools/curl:8",
              "--set", "crds.enabled=true")  # fmt: skip
    done = helm("install", release, str(CHART), *hargs, *values, "--wait", "--timeout=180s",
                check=False)  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr

    # The values are in the running pod's spec.
    (pod,) = json.loads(run_kubectl(cp, "get", "pods", "-n", ns, "-l",
                                    f"app.kubernetes.io/instance={release}", "-o", "json"
                                    ).stdout)["items"]  # fmt: skip
    (c,) = pod["spec"]["containers"]
    env = {e["name"]: e.get("value") for e in c["env"]}
    assert env["SKAHA_SITE"] == "ca-west"
    assert env["HTTPS_PROXY"] == env["https_proxy"] == "http://proxy:3128"
    assert "--ca-bundle=/etc/skaha-operator/ca-bundle/ca-bundle.crt" in c["args"]
    assert "--downloader-image=registry.example.org/tools/curl:8" in c["args"]
    mounts = {m["name"]: m for m in c["volumeMounts"]}
    assert mounts["ca-bundle"]["mountPath"] == "/etc/skaha-operator/ca-bundle"
    assert mounts["ca-bundle"]["readOnly"] is True
    volumes = {v["name"]: v for v in pod["spec"]["volumes"]}
    assert volumes["ca-bundle"]["configMap"]["name"] == "site-ca"
    assert c["readinessProbe"]["httpGet"]["path"] == "/healthz"
    assert {cond["type"]: cond["status"] for cond in pod["status"]["conditions"]}["Ready"] == "True"

    # The CRDs belong to the release, and `helm upgrade` updates them (Helm never would from
    # crds/): a chart whose Session CRD has a new column is upgraded in place.
    crds = our_crds(cp)
    assert sorted(crds) == sorted(crd_plurals())
    for crd in crds.values():
        notes = crd["metadata"]["annotations"]
        assert notes["meta.helm.sh/release-name"] == release
        assert notes["helm.sh/resource-policy"] == "keep"
    newer = tmp_path / "chart"
    shutil.copytree(CHART, newer)
    sessions = newer / "files" / "crds" / "skaha.broker.dev_sessions.yaml"
    text = sessions.read_text()
    column = "    additionalPrinterColumns:\n"
    assert column in text
    sessions.write_text(
        text.replace(
            column,
            column
            + (
                "    - name: Upgraded\n      type: string\n      jsonPath: .spec.platformRef\n"
                "      description: Added by the upgrade test\n      priority: 1\n"
            ),
            1,
        )
    )
    done = helm("upgrade", release, str(newer), *hargs, "--reuse-values", "--wait",
                "--timeout=180s", check=False)  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    version = our_crds(cp)["sessions"]["spec"]["versions"][0]
    assert "Upgraded" in [col["name"] for col in version["additionalPrinterColumns"]]

    # A person bound to the namespace `edit` ClusterRole (Kubernetes' own, filled by the
    # aggregation controller from the chart's <release>-edit) creates a Session; `view` reads.
    science = "editors"
    run_kubectl(cp, "create", "namespace", science)
    run_kubectl(cp, "create", "rolebinding", "alice-edit", "--clusterrole=edit",
                "--user=alice", "-n", science)  # fmt: skip
    run_kubectl(cp, "create", "rolebinding", "bob-view", "--clusterrole=view",
                "--user=bob", "-n", science)  # fmt: skip
    wait_for(
        "edit aggregates the chart's role",
        lambda: can_i(cp, "alice", "create", "sessions.skaha.broker.dev", science) == "yes",
        60,
        every=0.5,
    )
    assert can_i(cp, "alice", "patch", "sessions.skaha.broker.dev --subresource=status",
                 science) == "no"  # fmt: skip
    assert can_i(cp, "alice", "create", "sessions.skaha.broker.dev", "default") == "no"
    assert can_i(cp, "bob", "list", "sessions.skaha.broker.dev", science) == "yes"
    assert can_i(cp, "bob", "create", "sessions.skaha.broker.dev", science) == "no"
    session = {
        "apiVersion": "skaha.broker.dev/v1alpha1", "kind": "Session",
        "metadata": {"name": "by-alice", "namespace": science},
        "spec": {"platformRef": "local",
                 "executable": {"template": {"dockerContainer": {
                     "image": "images.canfar.net/skaha/astroml:latest"}}},
                 "compute": {"template": {"type": "notebook", "cores": 1, "ramGiB": 2}}},
    }  # fmt: skip
    # A 503 is "not yet": for a moment after the CRDs were created or upgraded, the finalizer
    # policy cannot run yet (docs/kubernetes-notes.md §11); alice applies again, as kubectl
    # users and GitOps tools do.
    tries: list[subprocess.CompletedProcess[str]] = []

    def created() -> bool:
        tries.append(run_kubectl(cp, "create", "--as", "alice", "-f", "-",
                                 input=json.dumps(session), check=False))  # fmt: skip
        return tries[-1].returncode == 0 or "ServiceUnavailable" not in tries[-1].stderr

    wait_for("alice's create answered other than 503", created, 60, every=0.5)
    assert tries[-1].returncode == 0, tries[-1].stderr
    listed = run_kubectl(cp, "get", "sessions", "-n", science, "--as", "bob", "-o", "name")
    assert listed.stdout.split() == ["session.skaha.broker.dev/by-alice"]
    denied = run_kubectl(cp, "delete", "session", "by-alice", "-n", science, "--as", "bob",
                         check=False)  # fmt: skip
    assert denied.returncode != 0
    assert "forbidden" in denied.stderr.lower()

    # Uninstall keeps the CRDs (crds.keep) and so the Session.
    done = helm("uninstall", release, *hargs, "--wait", "--timeout=120s", check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    wait_for("nothing of the release left", lambda: leftovers(cp, release) == [], 90, every=1)
    assert sorted(our_crds(cp)) == sorted(crd_plurals())
    assert run_kubectl(cp, "get", "session", "by-alice", "-n", science, "-o", "name").stdout
