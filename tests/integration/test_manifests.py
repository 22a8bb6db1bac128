"""manifests/: the kustomize base equals the chart (regenerated, no drift), renders with kubectl's
built-in kustomize and passes server-side dry-run, as do the examples and the demo objects."""

from __future__ import annotations

import filecmp
import importlib.util
from pathlib import Path
from types import ModuleType

import pytest
import yaml

from skaha_operator.controlplane import binary
from tests.integration.conftest import ROOT, Kubectl

pytestmark = pytest.mark.integration


def _generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "gen_manifests", ROOT / "hack" / "gen_manifests.py"
    )
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_base_is_the_chart_regenerated(tmp_path: Path) -> None:
    _generator().main(str(binary("helm")), tmp_path)
    base = ROOT / "manifests" / "base"
    for path in sorted(tmp_path.rglob("*.yaml")):
        rel = path.relative_to(tmp_path)
        assert filecmp.cmp(path, base / rel, shallow=False), f"{rel} drifted: run `make manifests`"
    assert len(list(tmp_path.rglob("*.yaml"))) == len(list(base.rglob("*.yaml"))) == 10


def test_base_renders_and_passes_server_side_dry_run(kubectl: Kubectl, crds: list[str]) -> None:
    rendered = kubectl("kustomize", str(ROOT / "manifests" / "base")).stdout
    docs = [d for d in yaml.safe_load_all(rendered) if d]
    kinds = sorted(d["kind"] for d in docs)
    assert kinds.count("CustomResourceDefinition") == 7
    assert [k for k in kinds if k != "CustomResourceDefinition"] == [
        # The operator's ClusterRole, its metrics reader, and two aggregated into view/edit/admin.
        # The Role and RoleBinding: the replicas' shard Leases in skaha-system. The finalizer
        # policy and its binding (Kubernetes 1.36, docs/design.md §4.6).
        "ClusterRole", "ClusterRole", "ClusterRole", "ClusterRole", "ClusterRoleBinding",
        "Deployment", "MutatingAdmissionPolicy", "MutatingAdmissionPolicyBinding", "Namespace",
        "Role", "RoleBinding", "Service", "ServiceAccount",
    ]  # fmt: skip
    assert not any("helm.sh/chart" in (d["metadata"].get("labels") or {}) for d in docs)
    kubectl("create", "namespace", "skaha-system", check=False)
    done = kubectl("apply", "--server-side", "--dry-run=server", "--force-conflicts", "-f", "-",
                   input=rendered, check=False)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.count("serverside-applied (server dry run)") == len(docs)


@pytest.mark.parametrize("folder", ["examples", "demo"])
def test_examples_pass_server_side_dry_run(
    kubectl: Kubectl, crds: list[str], namespace: str, folder: str
) -> None:
    files = sorted((ROOT / "manifests" / folder).glob("*.yaml"))
    stream = "\n---\n".join(p.read_text() for p in files)
    count = len([d for d in yaml.safe_load_all(stream) if d])
    done = kubectl(
        "apply", "--dry-run=server", "-n", namespace, "-f", "-", input=stream, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.count("(server dry run)") == count
