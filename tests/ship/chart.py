"""Helpers to render the chart and the kustomize base with the pinned helm and kubectl."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import yaml

from skaha_operator.controlplane import binary

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "helm" / "skaha-operator"
KUBE_VERSION = "1.36.3"


def helm(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run the pinned helm; output captured."""
    return subprocess.run(
        [str(binary("helm")), *args], capture_output=True, text=True, check=check, timeout=120
    )


def render(*sets: str, namespace: str = "skaha-system", release: str = "skaha") -> str:
    """`helm template` with `--set` values, as one YAML stream."""
    flags = [f"--set={s}" for s in sets]
    done = helm(
        "template", release, str(CHART), "--namespace", namespace,
        "--kube-version", KUBE_VERSION, *flags,
    )  # fmt: skip
    return done.stdout


def objects(stream: str) -> list[dict[str, Any]]:
    """The non-empty documents of a YAML stream."""
    return [doc for doc in yaml.safe_load_all(stream) if doc]


def by_kind(docs: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    """Documents of one kind."""
    return [d for d in docs if d["kind"] == kind]


def crd_plurals() -> set[str]:
    """Plural of every generated CRD."""
    return {
        yaml.safe_load(p.read_text())["spec"]["names"]["plural"]
        for p in (ROOT / "crds").glob("*.yaml")
    }
