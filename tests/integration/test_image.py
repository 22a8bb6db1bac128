"""The container image, built and run here with podman (issue 14).

`hack/podman.sh image` builds the Dockerfile FROM Debian's own python3 (bookworm, 3.11) made with
mmdebstrap, with a wheelhouse filled by the host's pip (the build reaches no index). The image
then runs `--help`, and runs the operator itself against the local control plane: host network,
read-only root file system with a tmpfs /tmp (as the chart's pod has), the chart's non-root user,
and a kubeconfig holding a token of the chart's ServiceAccount bound by the chart's RBAC. A Session
becomes Available with the simulator serving Skaha, and is released.
"""

from __future__ import annotations

import base64
import json
import re
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from skaha_operator.controlplane import ControlPlane
from skaha_operator.controlplane.processes import free_port
from skaha_operator.simulator import Simulator
from skaha_operator.simulator.containers import engine_environment
from tests.integration.operator_harness import (
    ALLOW_LOOPBACK,
    create,
    drain_namespace,
    get,
    platform_objects,
    wait_for,
)
from tests.ship.chart import objects, render

pytestmark = [pytest.mark.integration, pytest.mark.containers]

ROOT = Path(__file__).resolve().parents[2]
IMAGE = "localhost/skaha-operator:test"
RBAC_KINDS = {"ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding"}


def podman(
    *args: str, timeout: float = 120, check: bool = True
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["podman", *args], capture_output=True, text=True, env=engine_environment(),
        timeout=timeout, check=check,
    )  # fmt: skip


@pytest.fixture(scope="module")
def image() -> Iterator[str]:
    """The operator image, built by the project's own script (bases cached after the first)."""
    done = subprocess.run(
        ["bash", "hack/podman.sh", "image"], cwd=ROOT, capture_output=True, text=True,
        env={**engine_environment(), "IMAGE": IMAGE}, timeout=900, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr[-4000:]
    yield IMAGE
    podman("rmi", "--force", IMAGE, check=False)


def inspect(image: str) -> dict[str, Any]:
    doc: list[dict[str, Any]] = json.loads(podman("image", "inspect", image).stdout)
    return doc[0]


def test_the_image_is_debian_based_non_root_without_pip_and_answers_help(image: str) -> None:
    config = inspect(image)["Config"]
    assert config["User"] == "10001:10001"
    assert config["Entrypoint"] == ["python", "-m", "skaha_operator"]
    done = podman("run", "--rm", "--network", "none", image, "--help")
    for command in ("run", "simulator", "controlplane", "demo"):
        assert command in done.stdout
    probe = (
        "import importlib.util as u, platform, shutil, sys; "
        "print(platform.python_version(), open('/etc/debian_version').read().strip(), "
        "u.find_spec('pip') is None, [t for t in ('gcc', 'cc', 'pip', 'pip3') if shutil.which(t)])"
    )
    done = podman("run", "--rm", "--network", "none", "--entrypoint", "python", image, "-c", probe)
    version, debian, no_pip, tools = done.stdout.split(maxsplit=3)
    assert version.startswith("3.11.")
    assert debian.startswith("12.")  # bookworm
    assert no_pip == "True"
    assert tools.strip() == "[]"


def sa_token(api: client.ApiClient, namespace: str, release: str) -> str:
    """Apply only the chart's RBAC objects and request a token for its ServiceAccount."""
    docs = [d for d in objects(render(namespace=namespace, release=release))
            if d["kind"] in RBAC_KINDS]  # fmt: skip
    rbac = client.RbacAuthorizationV1Api(api)
    core = client.CoreV1Api(api)
    account = ""
    for doc in docs:
        match doc["kind"]:
            case "ServiceAccount":
                core.create_namespaced_service_account(namespace, doc)
                account = doc["metadata"]["name"]
            case "ClusterRole":
                rbac.create_cluster_role(doc)
            case "ClusterRoleBinding":
                rbac.create_cluster_role_binding(doc)
            case "Role":
                rbac.create_namespaced_role(doc["metadata"].get("namespace", namespace), doc)
            case "RoleBinding":
                rbac.create_namespaced_role_binding(
                    doc["metadata"].get("namespace", namespace), doc
                )
    request = {"spec": {"expirationSeconds": 3600}}
    token = core.create_namespaced_service_account_token(account, namespace, request)
    return str(token.status.token)


def delete_rbac(api: client.ApiClient, release: str) -> None:
    rbac = client.RbacAuthorizationV1Api(api)
    selector = f"app.kubernetes.io/instance={release}"
    for item in rbac.list_cluster_role_binding(label_selector=selector).items:
        rbac.delete_cluster_role_binding(item.metadata.name)
    for item in rbac.list_cluster_role(label_selector=selector).items:
        rbac.delete_cluster_role(item.metadata.name)


def kubeconfig(cp: ControlPlane, token: str, path: Path) -> Path:
    ca = base64.b64encode(cp.ca_file.read_bytes()).decode()
    doc = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "local", "cluster": {"server": cp.server,
                                                   "certificate-authority-data": ca}}],
        "users": [{"name": "operator", "user": {"token": token}}],
        "contexts": [{"name": "local", "context": {"cluster": "local", "user": "operator"}}],
        "current-context": "local",
    }  # fmt: skip
    path.parent.mkdir(mode=0o755, parents=True, exist_ok=True)
    path.write_text(json.dumps(doc))
    path.chmod(0o644)  # read by the image's user 10001
    return path


def test_the_operator_runs_from_the_image_as_the_charts_service_account(
    image: str,
    controlplane: ControlPlane,
    api_client: client.ApiClient,
    crds: list[str],
    sim: Simulator,
    tmp_path: Path,
) -> None:
    release = f"img-{uuid.uuid4().hex[:6]}"
    core = client.CoreV1Api(api_client)
    system, science = f"{release}-system", f"{release}-science"
    for ns in (system, science):
        core.create_namespace({"metadata": {"name": ns}})
    name = f"skaha-operator-{release}"
    try:
        token = sa_token(api_client, system, release)
        config = kubeconfig(controlplane, token, tmp_path / "kube" / "config")
        health, metrics = free_port(), free_port()
        podman(
            "run", "--detach", "--name", name, "--network", "host",
            "--read-only", "--tmpfs", "/tmp", "--cap-drop", "ALL",
            "--security-opt", "no-new-privileges",
            "--volume", f"{config.parent}:/etc/skaha-kube:ro",
            "--env", "KUBECONFIG=/etc/skaha-kube/config",
            # As the chart's Deployment: the pod's namespace holds its shard Leases.
            "--env", f"POD_NAMESPACE={system}", "--env", f"POD_NAME={name}",
            image, "run", f"--liveness=http://127.0.0.1:{health}/healthz",
            f"--metrics-port={metrics}", "--metrics-address=127.0.0.1", "--log-format=json",
            "--poll-base", "0.3", "--poll-cap", "2", "--http-timeout", "3", ALLOW_LOOPBACK,
        )  # fmt: skip
        for obj in platform_objects(science, sim.base_url):  # type: ignore[attr-defined]
            create(api_client, science, obj)
        create(api_client, science, {
            "apiVersion": "skaha.broker.dev/v1alpha1", "kind": "Session",
            "metadata": {"name": "nb"},
            "spec": {"platformRef": "local",
                     "executable": {"template": {"dockerContainer": {
                         "image": "images.canfar.net/skaha/astroml:latest"}}},
                     "compute": {"template": {"type": "notebook", "cores": 1, "ramGiB": 2}}},
        })  # fmt: skip

        def available() -> bool:
            state = podman("inspect", "--format", "{{.State.Running}}", name).stdout.strip()
            assert state == "true", podman("logs", name).stdout[-3000:]
            status = (get(api_client, science, "Session", "nb") or {}).get("status") or {}
            return status.get("phase") == "Available"

        wait_for("Session Available, operator in the image", available, 180)
        client.CustomObjectsApi(api_client).delete_namespaced_custom_object(
            "skaha.broker.dev", "v1alpha1", science, "sessions", "nb"
        )
        wait_for("Session released", lambda: get(api_client, science, "Session", "nb") is None, 90)
        logs = podman("logs", name).stdout + podman("logs", name).stderr
        # No request refused by RBAC: the chart's Role and ClusterRole grant all it does.
        assert not re.search(r"forbidden: User \W*system:serviceaccount:", logs), logs[-3000:]
        # JSON logs from the image's default format flag.
        assert any(line.startswith("{") for line in logs.splitlines())
    finally:
        for ns in (science, system):  # released by the operator in the image, still running
            drain_namespace(api_client, ns)
        podman("rm", "--force", "--time", "5", name, check=False)
        delete_rbac(api_client, release)
    assert podman("ps", "--all", "--quiet", "--filter", f"name={name}").stdout.strip() == ""
