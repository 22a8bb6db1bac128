"""`kubectl skaha` against the local control plane, the operator and the Skaha simulator, run the
way a scientist runs it: the real kubectl finds the `kubectl-skaha` console script on PATH, with a
kubeconfig of a ServiceAccount that has only the namespace rights a scientist would have.

Also here, since it needs the same operator: a failed Session's cause is where people look, in
`kubectl get events --field-selector type=Warning` and in `kubectl skaha events`.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from skaha_operator.controlplane import ControlPlane, binary
from skaha_operator.simulator import Simulator
from tests.integration.conftest import Kubectl
from tests.integration.operator_harness import (
    TOKEN,
    create,
    get,
    platform_objects,
    wait_for,
)

pytestmark = pytest.mark.integration

BIN = Path(sys.executable).parent  # where pip put the kubectl-skaha console script
GROUP = "skaha.broker.dev"
DOUBLED = re.compile(r"\b([A-Za-z]+(?: [A-Za-z]+)?) \1\b")


def session(name: str, image: str, duration: str = "2h") -> dict[str, Any]:
    return {
        "apiVersion": f"{GROUP}/v1alpha1",
        "kind": "Session",
        "metadata": {"name": name},
        "spec": {
            "platformRef": "local",
            "schedule": {"duration": duration, "prepareDeadline": "10m"},
            "executable": {"template": {"dockerContainer": {"image": image}}},
            "compute": {"template": {"type": "notebook", "cores": 1, "ramGiB": 2}},
        },
    }


def scientist(kubectl: Kubectl, cp: ControlPlane, ns: str, name: str, secrets: bool,
              path: Path) -> Path:  # fmt: skip
    """A kubeconfig for a ServiceAccount that reads Sessions, their parts, Events and (if
    `secrets`) the platform's token Secret, in `ns` only; its context's namespace is `ns`."""
    kubectl("create", "serviceaccount", name, "-n", ns)
    kinds = f"sessions.{GROUP},computes.{GROUP},skahaplatforms.{GROUP},events"
    kubectl("create", "role", f"{name}-read", "-n", ns, "--verb=get,list,watch",
            f"--resource={kinds}")  # fmt: skip
    kubectl("create", "rolebinding", f"{name}-read", "-n", ns, f"--role={name}-read",
            f"--serviceaccount={ns}:{name}")  # fmt: skip
    if secrets:
        kubectl("create", "role", f"{name}-token", "-n", ns, "--verb=get",
                "--resource=secrets", "--resource-name=skaha-token")  # fmt: skip
        kubectl("create", "rolebinding", f"{name}-token", "-n", ns, f"--role={name}-token",
                f"--serviceaccount={ns}:{name}")  # fmt: skip
    token = kubectl("create", "token", name, "-n", ns, "--duration=1h").stdout.strip()
    config = json.loads(cp.kubeconfig.read_text())
    config["users"] = [{"name": name, "user": {"token": token}}]
    for ctx in config["contexts"]:
        ctx["context"]["user"] = name
        ctx["context"]["namespace"] = ns
    path.write_text(json.dumps(config))
    return path


def skaha(kubeconfig: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """`kubectl skaha ARGS` through the pinned kubectl's plugin lookup."""
    env = {**os.environ, "KUBECONFIG": str(kubeconfig),
           "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}  # fmt: skip
    return subprocess.run([str(binary("kubectl")), "skaha", *args], capture_output=True,
                          text=True, env=env, timeout=60, check=False)  # fmt: skip


def status(api: client.ApiClient, ns: str, kind: str, name: str) -> dict[str, Any]:
    return (get(api, ns, kind, name) or {}).get("status") or {}


def test_kubectl_finds_the_plugin() -> None:
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"}
    done = subprocess.run([str(binary("kubectl")), "plugin", "list"], capture_output=True,
                          text=True, timeout=60, check=False, env=env)  # fmt: skip
    assert str(BIN / "kubectl-skaha") in done.stdout, done.stdout + done.stderr


def test_a_scientist_lists_opens_reads_logs_and_events_and_renews_a_session(
    api_client: client.ApiClient,
    kubectl: Kubectl,
    controlplane: ControlPlane,
    namespace: str,
    sim: Simulator,
    operator: Path,
    tmp_path: Path,
) -> None:
    for obj in platform_objects(namespace, sim.base_url):  # type: ignore[attr-defined]
        create(api_client, namespace, obj)
    # A short name, as canfar users write it: expanded with the one registry listing it.
    create(api_client, namespace, session("nb", "skaha/astroml:latest"))
    wait_for("Session Available",
             lambda: status(api_client, namespace, "Session", "nb").get("phase") == "Available",
             120)  # fmt: skip
    st = status(api_client, namespace, "Session", "nb")
    url = st["connectors"][0]["url"]
    exe = status(api_client, namespace, "DockerContainer", "nb-executable")
    assert exe["resolvedImage"] == "images.canfar.net/skaha/astroml:latest"
    skaha_id = status(api_client, namespace, "Compute", "nb-compute")["launch"]["id"]
    me = scientist(kubectl, controlplane, namespace, "alice", True, tmp_path / "alice.kubeconfig")
    outputs: list[str] = []

    listed = skaha(me, "sessions")
    outputs.append(listed.stdout + listed.stderr)
    assert listed.returncode == 0, listed.stderr
    head, row = listed.stdout.splitlines()
    assert head.split() == ["NAME", "PHASE", "REASON", "URL", "TIME", "LEFT"]
    cells = row.split()
    assert cells[:4] == ["nb", "Available", "SessionAvailable", url]
    assert re.fullmatch(r"1h5\dm|2h00m", cells[4]), cells  # a 2h booking, just started

    opened = skaha(me, "open", "nb")
    outputs.append(opened.stdout + opened.stderr)
    assert (opened.returncode, opened.stdout) == (0, url + "\n")

    logs = skaha(me, "logs", "nb")
    outputs.append(logs.stdout + logs.stderr)
    assert logs.returncode == 0, logs.stderr
    assert f"Jupyter Server is running at /session/notebook/{skaha_id}/lab" in logs.stdout

    events = skaha(me, "events", "nb")
    outputs.append(events.stdout + events.stderr)
    assert events.returncode == 0, events.stderr
    assert "Session/nb" in events.stdout
    assert "Compute/nb-compute" in events.stdout
    assert "SessionAvailable" in events.stdout

    route = f"*/session/{skaha_id}"
    before = sim.stats(method="POST", route=route)["count"]
    renewed = skaha(me, "renew", "nb")
    outputs.append(renewed.stdout + renewed.stderr)
    assert renewed.returncode == 0, renewed.stderr
    assert renewed.stdout.startswith(f"renewed Skaha session {skaha_id} of Session nb")
    assert "expires at" in renewed.stdout
    assert sim.stats(method="POST", route=route)["count"] == before + 1

    # Never the token, in any output.
    assert not [o for o in outputs if TOKEN in o]

    # Someone who may read Sessions but not the platform's Secret: a plain refusal, no token.
    other = scientist(kubectl, controlplane, namespace, "bob", False, tmp_path / "bob.kubeconfig")
    refused = skaha(other, "logs", "nb")
    assert refused.returncode == 1
    assert refused.stderr.strip() == (
        f"error: you may not read Secret {namespace}/skaha-token (the token of SkahaPlatform "
        "local) (forbidden): ask your namespace admin"
    )
    assert TOKEN not in refused.stdout + refused.stderr
    assert skaha(other, "sessions").returncode == 0  # reading Sessions needs no Secret
    missing = skaha(me, "open", "nope")
    assert (missing.returncode, missing.stderr.strip()) == (
        1, f"error: sessions {namespace}/nope not found"
    )  # fmt: skip


def test_a_failed_session_names_its_cause_in_warning_events(
    api_client: client.ApiClient,
    kubectl: Kubectl,
    controlplane: ControlPlane,
    namespace: str,
    sim: Simulator,
    operator: Path,
    tmp_path: Path,
) -> None:
    for obj in platform_objects(namespace, sim.base_url):  # type: ignore[attr-defined]
        create(api_client, namespace, obj)
    image = "images.canfar.net/skaha/no-such-image:1.0"
    create(api_client, namespace, session("bad", image))
    wait_for("Session Failed",
             lambda: status(api_client, namespace, "Session", "bad").get("phase") == "Failed",
             120)  # fmt: skip

    def warnings() -> list[dict[str, Any]]:
        done = kubectl("get", "events", "-n", namespace, "--field-selector", "type=Warning",
                       "-o", "json")  # fmt: skip
        items: list[dict[str, Any]] = json.loads(done.stdout)["items"]
        return items

    # Events are posted in the background: wait for the Session's own.
    wait_for("the Session's Warning Event",
             lambda: any(e["involvedObject"]["name"] == "bad" for e in warnings()), 30)  # fmt: skip
    by_object = {(e["involvedObject"]["kind"], e["involvedObject"]["name"]): e["message"]
                 for e in warnings()}  # fmt: skip
    assert image in by_object[("Session", "bad")], by_object
    assert image in by_object[("DockerContainer", "bad-executable")], by_object
    shown = kubectl("get", "events", "-n", namespace, "--field-selector", "type=Warning").stdout
    assert f"Skaha does not list image {image}" in shown
    # The Session's status parts: the image check Failed; nothing listed live after release.
    parts = {p["name"]: p for p in status(api_client, namespace, "Session", "bad")["parts"]}
    assert parts["bad-executable"]["phase"] == "Failed"
    assert all(p.get("phase") not in {"Available", "Running"} for p in parts.values()), parts

    # Messages read as plain sentences: no word or two-word phrase said twice in a row
    # ("the Skaha session Skaha session ...").
    every = json.loads(kubectl("get", "events", "-n", namespace, "-o", "json").stdout)["items"]
    texts = [e["message"] for e in every]
    texts += [str(status(api_client, namespace, k, n).get("message") or "")
              for k, n in (("Session", "bad"), ("DockerContainer", "bad-executable"),
                           ("Compute", "bad-compute"))]  # fmt: skip
    doubled = [t for t in texts if DOUBLED.search(t)]
    assert doubled == [], doubled

    me = scientist(kubectl, controlplane, namespace, "carol", False, tmp_path / "c.kubeconfig")
    events = skaha(me, "events", "bad")
    assert events.returncode == 0, events.stderr
    assert "Warning" in events.stdout
    assert image in events.stdout
    listed = skaha(me, "sessions").stdout.splitlines()[1].split()
    assert listed[:3] == ["bad", "Failed", "DockerContainerFailed"]
    assert listed[-1] == "-"  # no time left for a finished Session
