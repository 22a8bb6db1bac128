"""Releasing when the platform, its token Secret, or the platform itself goes first.

What must hold:
- `kubectl delete -f` of a manifest that lists the token Secret, then the SkahaPlatform, then
  Sessions (so the Secret and the platform are deleted first) while the Sessions run: everything
  is released and goes, and no Skaha session is left live. The platform and its Secret are held
  (finalizers) until nothing in the namespace names the platform;
- a platform that is truly gone (its Skaha URL answers nothing): deleting a Session does not
  pretend, its Compute stays with Stalled=True and reason ReleaseBlocked (and a Warning Event)
  saying how to let go; once the platform carries skaha.broker.dev/abandon=true the objects go
  (the platform too) and a Warning Event names the Skaha session left behind.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client

from skaha_operator import GROUP, VERSION
from skaha_operator.controlplane.processes import free_port
from skaha_operator.simulator import Simulator
from tests.integration.conftest import Kubectl
from tests.integration.operator_harness import create, get, phase, platform_objects, wait_for
from tests.integration.test_session_lifecycle import HEADLESS_IMAGE, NOTEBOOK_IMAGE, session

pytestmark = pytest.mark.integration

LIVE = frozenset({"Pending", "Running", "Terminating"})
ABANDON = "skaha.broker.dev/abandon"


def custom(api: client.ApiClient) -> client.CustomObjectsApi:
    return client.CustomObjectsApi(api)


def names_in(api: client.ApiClient, ns: str, plural: str) -> list[str]:
    got = custom(api).list_namespaced_custom_object(GROUP, VERSION, ns, plural)["items"]
    return sorted(o["metadata"]["name"] for o in got)


def secret_exists(api: client.ApiClient, ns: str, name: str) -> bool:
    try:
        client.CoreV1Api(api).read_namespaced_secret(name, ns)
    except client.ApiException as exc:
        if exc.status == 404:
            return False
        raise
    return True


def launched_names(api: client.ApiClient, ns: str) -> dict[str, str]:
    """Compute -> its Skaha session name (those that wrote a marker)."""
    out = {}
    for o in custom(api).list_namespaced_custom_object(GROUP, VERSION, ns, "computes")["items"]:
        name = (((o.get("status") or {}).get("launch")) or {}).get("name")
        if name:
            out[o["metadata"]["name"]] = name
    return out


def live_named(sim: Simulator, names: set[str]) -> list[str]:
    return [
        f"{s['name']} {s['status']}"
        for s in sim.sessions()
        if s["name"] in names and s["status"] in LIVE
    ]


def warnings(api: client.ApiClient, ns: str, name: str) -> list[tuple[str, str]]:
    events = client.CoreV1Api(api).list_namespaced_event(
        ns, field_selector=f"involvedObject.name={name}"
    )
    return [(e.reason, e.message) for e in events.items if e.type == "Warning"]


def leftovers(api: client.ApiClient, ns: str) -> list[str]:
    """Our objects and the token Secret still in the namespace, with their state."""
    left = []
    for plural in ("sessions", "computes", "dockercontainers", "skahaplatforms"):
        for o in custom(api).list_namespaced_custom_object(GROUP, VERSION, ns, plural)["items"]:
            st = o.get("status") or {}
            left.append(f"{plural}/{o['metadata']['name']} {st.get('phase')} {st.get('reason')}: "
                        f"{st.get('message')}")  # fmt: skip
    try:
        meta = client.CoreV1Api(api).read_namespaced_secret("skaha-token", ns).metadata
    except client.ApiException as exc:
        if exc.status != 404:
            raise
    else:
        left.append(f"secret/skaha-token {meta.finalizers} deleting={meta.deletion_timestamp}")
    return left


def wait_for_gone(api: client.ApiClient, ns: str, timeout: float) -> list[str]:
    """Wait until none of our objects (nor the token Secret) is left; what is left at the end."""
    try:
        wait_for("everything gone", lambda: not leftovers(api, ns), timeout, every=0.5)
    except AssertionError:
        return leftovers(api, ns)
    return []


def in_a_minute() -> str:
    start = datetime.now(UTC) + timedelta(minutes=5)
    return start.replace(microsecond=0).isoformat().replace("+00:00", "Z")


def test_kubectl_delete_f_with_the_secret_and_platform_first_releases_everything(
    api_client: client.ApiClient,
    namespace: str,
    sim: Simulator,
    operator: Path,
    kubectl: Kubectl,
    tmp_path: Path,
) -> None:
    docs: list[dict[str, Any]] = platform_objects(namespace, sim.base_url)  # type: ignore[attr-defined]
    docs[0]["apiVersion"] = "v1"
    docs += [
        session("nb", NOTEBOOK_IMAGE, {"type": "notebook"}),
        session(
            "job",
            HEADLESS_IMAGE,
            {"type": "headless", "command": "run.sh", "env": {"SIM_RUN_SECONDS": "3600"}},
        ),
        session("later", NOTEBOOK_IMAGE, {"type": "notebook"}, schedule={"start": in_a_minute()}),
    ]
    manifest = tmp_path / "all.yaml"
    manifest.write_text(yaml.safe_dump_all(docs))
    kubectl("apply", "-n", namespace, "-f", str(manifest))
    wait_for(
        "Sessions running or waiting",
        lambda: (
            phase(api_client, namespace, "Session", "nb") == "Available"
            and phase(api_client, namespace, "Session", "job") == "Running"
            and phase(api_client, namespace, "Session", "later") == "Waiting"
        ),
        90,
    )
    names = set(launched_names(api_client, namespace).values())
    assert len(names) == 2, names
    assert len(live_named(sim, names)) == 2
    # kubectl deletes in file order: the Secret, the platform, then the Sessions.
    kubectl("delete", "-n", namespace, "-f", str(manifest), "--wait=false")

    gone_in_time = wait_for_gone(api_client, namespace, 90)
    assert gone_in_time == [], gone_in_time
    assert live_named(sim, names) == []


def test_platform_truly_gone_blocks_release_until_abandoned(
    api_client: client.ApiClient, namespace: str, sim: Simulator, operator: Path
) -> None:
    for obj in platform_objects(namespace, sim.base_url):  # type: ignore[attr-defined]
        create(api_client, namespace, obj)
    create(api_client, namespace, session("nb", NOTEBOOK_IMAGE, {"type": "notebook"}))
    wait_for(
        "Session Available",
        lambda: phase(api_client, namespace, "Session", "nb") == "Available",
        90,
    )
    launch = get(api_client, namespace, "Compute", "nb-compute")["status"]["launch"]  # type: ignore[index]
    # The platform goes away for good: its URL answers nothing any more.
    dead = f"http://127.0.0.1:{free_port()}"
    custom(api_client).patch_namespaced_custom_object(
        GROUP,
        VERSION,
        namespace,
        "skahaplatforms",
        "local",
        {"spec": {"skaha": {"url": f"{dead}/skaha"}, "cavern": {"url": f"{dead}/arc"}}},
    )
    wait_for(
        "platform not Available",
        lambda: phase(api_client, namespace, "SkahaPlatform", "local") != "Available",
        60,
    )
    custom(api_client).delete_namespaced_custom_object(GROUP, VERSION, namespace, "sessions", "nb")

    def blocked() -> dict[str, Any] | None:
        st = (get(api_client, namespace, "Compute", "nb-compute") or {}).get("status") or {}
        cond = {c["type"]: c["status"] for c in st.get("conditions") or []}
        return (
            st if st.get("reason") == "ReleaseBlocked" and cond.get("Stalled") == "True" else None
        )

    st = wait_for("Compute ReleaseBlocked", blocked, 60)
    assert ABANDON in st["message"], st["message"]
    # Events are posted after the status write, in the background (k8s/events.py): wait for
    # it, do not race it.
    wait_for(
        "a ReleaseBlocked Warning Event",
        lambda: any(
            r == "ReleaseBlocked" for r, _ in warnings(api_client, namespace, "nb-compute")
        ),
        30,
    )
    # It stays blocked: nothing goes while the session may still run.
    for _ in range(5):
        assert get(api_client, namespace, "Compute", "nb-compute") is not None
        assert get(api_client, namespace, "Session", "nb") is not None
        wait_for("a moment", lambda: True, 1)
    assert [s["id"] for s in sim.sessions() if s["name"] == launch["name"]] == [launch["id"]]

    # A person says: the platform is gone, leave what it had.
    custom(api_client).patch_namespaced_custom_object(
        GROUP,
        VERSION,
        namespace,
        "skahaplatforms",
        "local",
        {"metadata": {"annotations": {ABANDON: "true"}}},
    )
    custom(api_client).delete_namespaced_custom_object(
        GROUP, VERSION, namespace, "skahaplatforms", "local"
    )
    client.CoreV1Api(api_client).delete_namespaced_secret("skaha-token", namespace)

    gone_in_time = wait_for_gone(api_client, namespace, 90)
    assert gone_in_time == [], gone_in_time

    def abandoned() -> list[str]:
        left = [m for r, m in warnings(api_client, namespace, "nb-compute") if "abandon" in m]
        return [m for m in left if launch["id"] in m or launch["name"] in m]

    wait_for("the abandon Warning Event", abandoned, 30)
    # It really was left behind (the platform was unreachable): tidy the simulator up.
    still = [s for s in sim.sessions() if s["name"] == launch["name"] and s["status"] in LIVE]
    assert [s["id"] for s in still] == [launch["id"]]
    sim.force(launch["id"], "Gone")
