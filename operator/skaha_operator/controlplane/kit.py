"""Helpers to drive the operator against a local control plane: install the CRDs, run the
operator as a child process, create a platform pointing at a simulator, create objects.

Used by the integration tests, the benchmark and the demo's checks alike, so they exercise the
product the same way (the benchmark must not import from tests/).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import yaml
from kubernetes import client

from skaha_operator import FINALIZER, GROUP, VERSION
from skaha_operator.controlplane.launcher import ControlPlane
from skaha_operator.domain.kinds import plural_of

TOKEN = "tok-alice"
# The label that opts a Secret in for the operator (k8s/api.py CREDENTIALS_LABEL).
MARKED = {"skaha.broker.dev/credentials": "true"}
# The simulator listens on loopback, which the operator refuses unless it is listed
# (platform/hosts.py).
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


def platform_objects(
    namespace: str,
    skaha_base: str,
    *,
    token: str = TOKEN,
    user: str = "alice",
    rucio: bool = False,
    defaults: dict[str, Any] | None = None,
) -> list[dict[str, Any]]:
    """A token Secret and a SkahaPlatform pointing at the simulator (with `rucio`, its Rucio
    and a userpass Secret for it; `defaults` become the platform's spec.defaults)."""
    spec: dict[str, Any] = {
        "skaha": {"url": f"{skaha_base}/skaha"},
        "cavern": {"url": f"{skaha_base}/arc", "user": user},
        "tokenSecretRef": {"name": "skaha-token", "key": "token"},
    }
    objects: list[dict[str, Any]] = [
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "skaha-token", "labels": MARKED},
            "stringData": {"token": token},
        },
    ]
    if rucio:
        spec["rucio"] = {"url": f"{skaha_base}/rucio", "credentialsSecretRef": {"name": "rucio"}}
        objects.append(
            {
                "apiVersion": "v1",
                "kind": "Secret",
                "metadata": {"name": "rucio", "labels": MARKED},
                "stringData": {"username": user, "password": "secret"},
            }
        )
    if defaults:
        spec["defaults"] = defaults
    objects.append(
        {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": "SkahaPlatform",
            "metadata": {"name": "local"},
            "spec": spec,
        }
    )
    return objects


def create(api: client.ApiClient, namespace: str, obj: dict[str, Any], retry: float = 30) -> None:
    """Create a Secret or one of our objects.

    A 503 is retried for up to `retry` seconds: the API server's way of saying "not yet", as for
    a few seconds after our CRDs are first created while the finalizer policy exists, and briefly
    after a CRD changes (docs/kubernetes-notes.md §11).
    """
    deadline = time.monotonic() + retry
    while True:
        try:
            if obj["kind"] == "Secret":
                body: Any = obj  # the client accepts a plain manifest dict
                client.CoreV1Api(api).create_namespaced_secret(namespace, body)
                return
            client.CustomObjectsApi(api).create_namespaced_custom_object(
                GROUP, VERSION, namespace, plural_of(obj["kind"]), obj
            )
            return
        except client.ApiException as exc:
            if exc.status != 503 or time.monotonic() > deadline:
                raise
            time.sleep(0.5)


def _wait_established(ext: client.ApiextensionsV1Api, name: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        crd = ext.read_custom_resource_definition(name)
        conditions = (crd.status and crd.status.conditions) or []
        if any(c.type == "Established" and c.status == "True" for c in conditions):
            return
        time.sleep(0.1)
    raise TimeoutError(f"CRD {name} not Established within {timeout}s")


def install_crds(api: client.ApiClient, paths: list[Path]) -> list[str]:
    """Create (or replace) each CRD file and wait until every one is Established."""
    ext = client.ApiextensionsV1Api(api)
    names = []
    for path in paths:
        for doc in yaml.safe_load_all(path.read_text()):
            if not doc:
                continue
            name = doc["metadata"]["name"]
            try:
                current: Any = ext.read_custom_resource_definition(name)
                doc["metadata"]["resourceVersion"] = current.metadata.resource_version
                ext.replace_custom_resource_definition(name, doc)
            except client.ApiException as exc:
                if exc.status != 404:
                    raise
                ext.create_custom_resource_definition(doc)
            names.append(name)
    for name in names:
        _wait_established(ext, name)
    return names


# The chart's MutatingAdmissionPolicy spec (docs/design.md §4.6), read from the repository.
CHART_FILES = Path(__file__).resolve().parents[3] / "helm" / "skaha-operator" / "files"
FINALIZER_POLICY = CHART_FILES / "finalizer-policy.yaml"


def install_finalizer_policy(
    api: client.ApiClient, name: str, namespaces: list[str] | None, timeout: float = 30
) -> None:
    """The policy and a binding to `namespaces` (None: every namespace), as the chart makes
    them on Kubernetes 1.36; returns once a create in the first namespace gets the finalizer
    (the API server picks policies up in the background)."""
    adm = client.AdmissionregistrationV1Api(api)
    spec = yaml.safe_load(FINALIZER_POLICY.read_text())
    policy: Any = {"metadata": {"name": name}, "spec": spec}  # the client sends plain dicts
    adm.create_mutating_admission_policy(policy)
    binding: dict[str, Any] = {"policyName": name}
    if namespaces is not None:
        named = {"key": "kubernetes.io/metadata.name", "operator": "In", "values": namespaces}
        binding["matchResources"] = {"namespaceSelector": {"matchExpressions": [named]}}
    bound: Any = {"metadata": {"name": name}, "spec": binding}
    adm.create_mutating_admission_policy_binding(bound)
    probe_ns = namespaces[0] if namespaces else "default"
    deadline = time.monotonic() + timeout
    while FINALIZER not in finalizers_at_create(api, probe_ns):
        if time.monotonic() > deadline:
            raise TimeoutError(f"finalizer policy {name} not in force within {timeout}s")
        time.sleep(0.2)


def remove_finalizer_policy(api: client.ApiClient, name: str) -> None:
    """Delete the policy and its binding (either may be gone already)."""
    adm = client.AdmissionregistrationV1Api(api)
    for delete in (adm.delete_mutating_admission_policy_binding,
                   adm.delete_mutating_admission_policy):  # fmt: skip
        try:
            delete(name)
        except client.ApiException as exc:
            if exc.status != 404:
                raise


def finalizers_at_create(
    api: client.ApiClient, namespace: str, finalizers: list[str] | None = None
) -> list[str]:
    """The finalizers a Session created in `namespace` (with `finalizers`) would carry: a
    dry-run create, which admission mutates as it would a real one."""
    meta: dict[str, Any] = {"generateName": "probe-"}
    if finalizers is not None:
        meta["finalizers"] = finalizers
    body = {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "Session",
        "metadata": meta,
        "spec": {
            "platformRef": "probe",
            "executable": {"template": {"dockerContainer": {"image": "images.canfar.net/x:1"}}},
            "compute": {"template": {"type": "headless", "command": "true"}},
        },
    }
    made: Any = client.CustomObjectsApi(api).create_namespaced_custom_object(
        GROUP, VERSION, namespace, "sessions", body, dry_run="All"
    )
    return list((made.get("metadata") or {}).get("finalizers") or [])
