"""Storage, Data and JupyterNotebook end to end: the real operator, API server and simulator.

What must hold: a Session with Storage + HTTP Data + JupyterNotebook becomes
Available only after the file is in the simulated Cavern tree and the setup job completed, and its
Compute launched after both; a failing download, a STUCK rule past its deadline and a failing
requirements install each end the Session Failed naming the cause, with nothing left running; a
shared Data is downloaded once and outlives one of its Sessions; an operator killed (SIGKILL)
while a download job or a Rucio rule is pending does not create a second one after it restarts.

The restart tests run first and start their own operator processes; the module-scoped `operator`
fixture (used by the later tests) is created only after them, so two operators never overlap.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from skaha_operator import GROUP, VERSION
from skaha_operator.controlplane import ControlPlane
from skaha_operator.simulator import Simulator
from skaha_operator.simulator.rucio_store import RuleState
from tests.integration.operator_harness import TOKEN, operator_process, wait_for

pytestmark = pytest.mark.integration

NOTEBOOK_IMAGE = "images.canfar.net/skaha/astroml:latest"
PLURALS = {
    "SkahaPlatform": "skahaplatforms",
    "Session": "sessions",
    "Storage": "storages",
    "Data": "data",
    "JupyterNotebook": "jupyternotebooks",
    "Compute": "computes",
}
NOTEBOOK_JSON = json.dumps({"cells": [], "metadata": {}, "nbformat": 4, "nbformat_minor": 5})
LIVE = {"Pending", "Running"}
EXAMPLES = Path(__file__).resolve().parents[2] / "manifests" / "examples"


# -- helpers -----------------------------------------------------------------------------------


def create(api: client.ApiClient, ns: str, obj: dict[str, Any]) -> None:
    """Create a Secret, a ConfigMap or one of our objects."""
    core = client.CoreV1Api(api)
    if obj["kind"] == "Secret":
        core.create_namespaced_secret(ns, obj)
    elif obj["kind"] == "ConfigMap":
        core.create_namespaced_config_map(ns, obj)
    else:
        client.CustomObjectsApi(api).create_namespaced_custom_object(
            GROUP, VERSION, ns, PLURALS[obj["kind"]], {"apiVersion": f"{GROUP}/{VERSION}", **obj}
        )


def get(api: client.ApiClient, ns: str, kind: str, name: str) -> dict[str, Any] | None:
    try:
        found: dict[str, Any] = client.CustomObjectsApi(api).get_namespaced_custom_object(
            GROUP, VERSION, ns, PLURALS[kind], name
        )
    except client.ApiException as exc:
        if exc.status == 404:
            return None
        raise
    return found


def status(api: client.ApiClient, ns: str, kind: str, name: str) -> dict[str, Any]:
    return ((get(api, ns, kind, name) or {}).get("status")) or {}


def delete(api: client.ApiClient, ns: str, kind: str, name: str) -> None:
    client.CustomObjectsApi(api).delete_namespaced_custom_object(
        GROUP, VERSION, ns, PLURALS[kind], name
    )


def with_platform(
    api: client.ApiClient, ns: str, sim: Simulator, *, deadline: str | None = None
) -> None:
    """Token and Rucio Secrets, and a SkahaPlatform on the simulator (Rucio included)."""
    base = sim.base_url  # type: ignore[attr-defined]
    spec: dict[str, Any] = {
        "skaha": {"url": f"{base}/skaha"},
        "cavern": {"url": f"{base}/arc", "user": "alice"},
        "rucio": {"url": f"{base}/rucio", "credentialsSecretRef": {"name": "rucio"}},
        "tokenSecretRef": {"name": "skaha-token", "key": "token"},
    }
    if deadline:
        spec["defaults"] = {"prepareDeadline": deadline}
    for obj in (
        {"kind": "Secret", "metadata": {"name": "skaha-token"}, "stringData": {"token": TOKEN}},
        {
            "kind": "Secret",
            "metadata": {"name": "rucio"},
            "stringData": {"username": "alice", "password": "secret"},
        },
        {"kind": "SkahaPlatform", "metadata": {"name": "local"}, "spec": spec},
    ):
        create(api, ns, obj)


def serve(sim: Simulator, name: str, data: bytes) -> str:
    """Serve `data` from the simulator; the URL and the sha256 checksum a Data spec names."""
    sim.state.jobs.files[name] = data
    return f"{sim.base_url}/_sim/files/{name}"  # type: ignore[attr-defined]


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def http_data(url: str, data: bytes | None, storage: str, path: str) -> dict[str, Any]:
    http: dict[str, Any] = {"url": url, "allowInsecure": True}
    if data is not None:
        http["checksum"] = sha256(data)
    return {"storageRef": storage, "path": path, "http": http}


def session(name: str, *, executable: dict[str, Any], **spec: Any) -> dict[str, Any]:
    return {
        "kind": "Session",
        "metadata": {"name": name},
        "spec": {
            "platformRef": "local",
            "executable": executable,
            "compute": {"template": {"type": "notebook", "cores": 1, "ramGiB": 2}},
            **spec,
        },
    }


def image() -> dict[str, Any]:
    return {"template": {"dockerContainer": {"image": NOTEBOOK_IMAGE}}}


def home_storage(name: str, path: str) -> dict[str, Any]:
    return {"name": name, "template": {"area": "home", "path": path}}


def jobs_of(sim: Simulator, uid: str, kind: str = "download") -> list[str]:
    """Skaha session ids of every job of `kind` ever launched for the object with `uid`."""
    tag = uid.replace("-", "")[:32]
    return [sid for k, sid, name in sim.state.jobs.log if k == kind and tag in name]


def live_sessions(sim: Simulator) -> list[dict[str, Any]]:
    return [s for s in sim.sessions() if s["status"] in LIVE]


def rules_on(sim: Simulator, scope: str, name: str) -> list[str]:
    return [r.id for r in sim.state.rucio.rules() if (r.scope, r.name) == (scope, name)]


def cavern(sim: Simulator, node: str) -> Path:
    return sim.state.cavern.root / node


def stamp(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def wait_phase(api: client.ApiClient, ns: str, kind: str, name: str, want: str, t: float = 120):
    def probe() -> dict[str, Any] | None:
        st = status(api, ns, kind, name)
        return st if st.get("phase") == want else None

    return wait_for(f"{kind} {name} {want}", probe, t)


@contextmanager
def knobs(sim: Simulator, **values: Any) -> Iterator[None]:
    """Change simulator knobs for one test (the simulator is shared by the module)."""
    old = {k: getattr(sim.config, k) for k in values}
    sim.configure(**values)
    try:
        yield
    finally:
        sim.configure(**old)


# -- restarts (own operator processes; keep these first in the module) ---------------------------


def test_restart_during_a_pending_download_does_not_launch_a_second_job(
    api_client: client.ApiClient,
    namespace: str,
    sim: Simulator,
    controlplane: ControlPlane,
    crds: list[str],
    tmp_path: Path,
) -> None:
    with_platform(api_client, namespace, sim)
    payload = b"restart payload\n"
    url = serve(sim, f"{namespace}/restart.bin", payload)
    # The launch is committed but answered 500: the id is never recorded by the first operator.
    sim.set_faults(
        [{"route": "/skaha/v1/session", "method": "POST", "fail_after_commit": 1.0, "count": 1}]
    )
    log = tmp_path / "operator.log"
    try:
        with operator_process(controlplane, log) as first:
            create(
                api_client,
                namespace,
                {
                    "kind": "Storage",
                    "metadata": {"name": "st"},
                    "spec": {
                        "platformRef": "local",
                        "area": "home",
                        "path": f"restart/{namespace}",
                    },
                },
            )
            create(
                api_client,
                namespace,
                {
                    "kind": "Data",
                    "metadata": {"name": "dl"},
                    "spec": {"platformRef": "local", **http_data(url, payload, "st", "f.bin")},
                },
            )
            uid = get(api_client, namespace, "Data", "dl")["metadata"]["uid"]  # type: ignore[index]
            wait_for("the download job launched", lambda: jobs_of(sim, uid), 90, every=0.05)
            first.kill()  # SIGKILL: no clean-up, the marker stays as it was
            first.wait(timeout=10)
        assert not status(api_client, namespace, "Data", "dl").get("job", {}).get("id")
        with operator_process(controlplane, log):
            st = wait_phase(api_client, namespace, "Data", "dl", "Available")
    finally:
        sim.clear_faults()
    assert len(jobs_of(sim, uid)) == 1
    assert st["job"]["attempts"] == 1
    assert st["job"]["id"] == jobs_of(sim, uid)[0]
    assert cavern(sim, f"home/alice/restart/{namespace}/f.bin").read_bytes() == payload


def test_restart_during_a_pending_rule_creation_does_not_create_a_second_rule(
    api_client: client.ApiClient,
    namespace: str,
    sim: Simulator,
    controlplane: ControlPlane,
    crds: list[str],
    tmp_path: Path,
) -> None:
    with_platform(api_client, namespace, sim)
    did_name = f"obs-{namespace}"
    sim.set_faults(
        [{"route": "/rucio/rules/", "method": "POST", "fail_after_commit": 1.0, "count": 1}]
    )
    log = tmp_path / "operator.log"
    try:
        with knobs(sim, replicate_s=2.0), operator_process(controlplane, log) as first:
            create(
                api_client,
                namespace,
                {
                    "kind": "Storage",
                    "metadata": {"name": "st"},
                    "spec": {
                        "platformRef": "local",
                        "area": "project",
                        "project": "survey",
                        "path": f"rules/{namespace}",
                    },
                },
            )
            create(
                api_client,
                namespace,
                {
                    "kind": "Data",
                    "metadata": {"name": "obs"},
                    "spec": {
                        "platformRef": "local",
                        "storageRef": "st",
                        "rucio": {
                            "did": f"user.alice:{did_name}",
                            "rseExpression": "SRCNET_LOCAL",
                            "lifetime": "24h",
                        },
                    },
                },
            )
            wait_for(
                "the rule created", lambda: rules_on(sim, "user.alice", did_name), 90, every=0.05
            )
            first.kill()
            first.wait(timeout=10)
            with operator_process(controlplane, log):
                st = wait_phase(api_client, namespace, "Data", "obs", "Available")
    finally:
        sim.clear_faults()
    rules = rules_on(sim, "user.alice", did_name)
    assert len(rules) == 1
    assert st["rule"]["id"] == rules[0]
    assert st["rule"]["observed"] == "OK"


# -- with the shared operator ----------------------------------------------------------------------


def test_session_with_storage_data_and_notebook_is_available_only_after_preparation(
    api_client: client.ApiClient, namespace: str, sim: Simulator, operator: Path
) -> None:
    with_platform(api_client, namespace, sim)
    payload = b"catalogue bytes " * 64
    url = serve(sim, f"{namespace}/catalogue.fits", payload)
    create(
        api_client,
        namespace,
        {
            "kind": "ConfigMap",
            "metadata": {"name": "nb"},
            "data": {"analysis.ipynb": NOTEBOOK_JSON},
        },
    )
    notebook = {
        "image": NOTEBOOK_IMAGE,
        "storageRef": "work",
        "path": "nb",
        "notebook": {"configMapRef": {"name": "nb", "key": "analysis.ipynb"}},
        "requirements": ["astropy>=6", "numpy"],
    }
    create(
        api_client,
        namespace,
        session(
            "full",
            executable={"template": {"jupyterNotebook": notebook}},
            storages=[home_storage("work", f"sessions/{namespace}")],
            data=[
                {"name": "cat", "template": http_data(url, payload, "work", "in/catalogue.fits")}
            ],
        ),
    )
    done = wait_phase(api_client, namespace, "Session", "full", "Available", 150)

    root = f"home/alice/sessions/{namespace}"
    assert cavern(sim, f"{root}/in/catalogue.fits").read_bytes() == payload
    assert cavern(sim, f"{root}/nb/analysis.ipynb").read_text() == NOTEBOOK_JSON
    assert cavern(sim, f"{root}/nb/analysis-requirements.txt").read_text() == "astropy>=6\nnumpy\n"
    assert cavern(sim, f"{root}/nb/.venv-analysis/pyvenv.cfg").is_file()

    data = status(api_client, namespace, "Data", "full-data-cat")
    nb = status(api_client, namespace, "JupyterNotebook", "full-executable")
    compute = status(api_client, namespace, "Compute", "full-compute")
    assert (data["reason"], data["checksumVerified"]) == ("Downloaded", True)
    assert data["location"] == f"/arc/{root}/in/catalogue.fits"
    assert nb["reason"] == "NotebookReady"
    assert nb["job"]["observed"] == "Completed"
    # Order: the Compute's launch marker was written after both were Available.
    launched = stamp(compute["launch"]["pendingSince"])
    assert launched >= stamp(data["phaseTimes"]["Available"])
    assert launched >= stamp(nb["phaseTimes"]["Available"])
    url_opened = done["connectors"][0]["url"]
    assert f"/lab/tree/arc/{root}/nb/analysis.ipynb?token=" in url_opened
    data_uid = get(api_client, namespace, "Data", "full-data-cat")["metadata"]["uid"]  # type: ignore[index]
    assert len(jobs_of(sim, data_uid)) == 1

    delete(api_client, namespace, "Session", "full")
    wait_for("Session gone", lambda: get(api_client, namespace, "Session", "full") is None, 90)
    skaha_id = compute["launch"]["id"]
    wait_for("Skaha session gone", lambda: all(s["id"] != skaha_id for s in sim.sessions()), 60)
    # Data and notebook policies are Delete, the storage's Retain: the directory stays, empty of
    # what was placed.
    assert not cavern(sim, f"{root}/in/catalogue.fits").exists()
    assert not cavern(sim, f"{root}/nb/analysis.ipynb").exists()
    assert cavern(sim, root).is_dir()


def test_failing_download_fails_the_session_naming_the_cause(
    api_client: client.ApiClient, namespace: str, sim: Simulator, operator: Path
) -> None:
    with_platform(api_client, namespace, sim)
    url = f"{sim.base_url}/_sim/files/{namespace}/missing.fits"  # type: ignore[attr-defined]
    create(
        api_client,
        namespace,
        session(
            "nodl",
            executable=image(),
            storages=[home_storage("work", f"sessions/{namespace}")],
            data=[{"name": "cat", "template": http_data(url, None, "work", "missing.fits")}],
        ),
    )
    st = wait_phase(api_client, namespace, "Session", "nodl", "Failed", 150)
    assert st["reason"] == "DataFailed"
    assert "DownloadFailed" in st["message"]
    assert "404" in st["message"]
    assert live_sessions(sim) == []


def test_stuck_rule_past_its_deadline_fails_the_session_and_the_rule_is_released(
    api_client: client.ApiClient, namespace: str, sim: Simulator, operator: Path
) -> None:
    with_platform(api_client, namespace, sim, deadline="20s")
    did_name = f"stuck-{namespace}"
    with knobs(sim, replicate_s=3600.0):
        create(
            api_client,
            namespace,
            session(
                "stuck",
                executable=image(),
                storages=[
                    {
                        "name": "in",
                        "template": {
                            "area": "project",
                            "project": "survey",
                            "path": f"stuck/{namespace}",
                        },
                    }
                ],
                data=[
                    {
                        "name": "obs",
                        "template": {
                            "storageRef": "in",
                            "rucio": {
                                "did": f"user.alice:{did_name}",
                                "rseExpression": "SRCNET_LOCAL",
                                "lifetime": "1h",
                            },
                        },
                    }
                ],
            ),
        )
        rule_id = wait_for(
            "rule id",
            lambda: (
                status(api_client, namespace, "Data", "stuck-data-obs").get("rule", {}).get("id")
            ),
            90,
        )
        sim.state.rucio.force(rule_id, RuleState.STUCK)
        st = wait_phase(api_client, namespace, "Session", "stuck", "Failed", 150)
    assert "RuleStuck" in st["message"]
    assert "transfer failed: simulated source unavailable" in st["message"]
    # The owned Data was released with policy Delete: its rule is gone; nothing runs.
    wait_for("rule deleted", lambda: not rules_on(sim, "user.alice", did_name), 60)
    assert live_sessions(sim) == []


def test_failing_requirements_install_fails_the_session_with_the_pip_error(
    api_client: client.ApiClient, namespace: str, sim: Simulator, operator: Path
) -> None:
    with_platform(api_client, namespace, sim)
    create(
        api_client,
        namespace,
        {"kind": "ConfigMap", "metadata": {"name": "nb"}, "data": {"a.ipynb": NOTEBOOK_JSON}},
    )
    notebook = {
        "image": NOTEBOOK_IMAGE,
        "storageRef": "work",
        "notebook": {"configMapRef": {"name": "nb", "key": "a.ipynb"}},
        "requirements": ["numpy", "no-such-package-xyz==1.0"],
    }
    with knobs(sim, pip_unavailable=["no-such-package-xyz"]):
        create(
            api_client,
            namespace,
            session(
                "badpip",
                executable={"template": {"jupyterNotebook": notebook}},
                storages=[home_storage("work", f"sessions/{namespace}")],
            ),
        )
        st = wait_phase(api_client, namespace, "Session", "badpip", "Failed", 150)
    assert st["reason"] == "JupyterNotebookFailed"
    assert "NotebookSetupFailed" in st["message"]
    assert "No matching distribution found for no-such-package-xyz" in st["message"]
    # The Compute never launched anything; nothing runs.
    assert (
        not status(api_client, namespace, "Compute", "badpip-compute").get("launch", {}).get("id")
    )
    assert live_sessions(sim) == []


def test_shared_data_is_downloaded_once_and_outlives_one_of_its_sessions(
    api_client: client.ApiClient, namespace: str, sim: Simulator, operator: Path
) -> None:
    with_platform(api_client, namespace, sim)
    payload = b"shared " * 100
    url = serve(sim, f"{namespace}/shared.bin", payload)
    create(
        api_client,
        namespace,
        {
            "kind": "Storage",
            "metadata": {"name": "shared-st"},
            "spec": {"platformRef": "local", "area": "home", "path": f"shared/{namespace}"},
        },
    )
    create(
        api_client,
        namespace,
        {
            "kind": "Data",
            "metadata": {"name": "shared-data"},
            "spec": {"platformRef": "local", **http_data(url, payload, "shared-st", "s.bin")},
        },
    )
    for name in ("one", "two"):
        create(
            api_client,
            namespace,
            session(
                name,
                executable=image(),
                storages=[{"name": "s", "ref": "shared-st"}],
                data=[{"name": "d", "ref": "shared-data"}],
            ),
        )
    for name in ("one", "two"):
        wait_phase(api_client, namespace, "Session", name, "Available", 150)
    uid = get(api_client, namespace, "Data", "shared-data")["metadata"]["uid"]  # type: ignore[index]
    assert len(jobs_of(sim, uid)) == 1

    delete(api_client, namespace, "Session", "one")
    wait_for("Session one gone", lambda: get(api_client, namespace, "Session", "one") is None, 90)
    shared = get(api_client, namespace, "Data", "shared-data")
    assert shared is not None
    assert "deletionTimestamp" not in shared["metadata"]
    assert shared["status"]["phase"] == "Available"
    assert cavern(sim, f"home/alice/shared/{namespace}/s.bin").read_bytes() == payload
    assert status(api_client, namespace, "Session", "two")["phase"] == "Available"
    assert len(jobs_of(sim, uid)) == 1


def test_the_examples_become_usable_with_the_simulator_defaults(
    api_client: client.ApiClient, namespace: str, operator: Path, kubectl: Any
) -> None:
    # A second simulator with nothing but defaults; the examples name 127.0.0.1:8765, so they
    # are pointed at wherever this one listens (as the demo does).
    defaults = Simulator()
    handle = defaults.start_in_thread()
    try:
        for name in (
            "skaha-platform",
            "notebook-session",
            "jupyter-notebook",
            "shared-container-rucio",
        ):
            text = (EXAMPLES / f"{name}.yaml").read_text()
            kubectl(
                "apply",
                "-n",
                namespace,
                "-f",
                "-",
                input=text.replace("http://127.0.0.1:8765", handle.base_url),
            )
        for name in ("notebook-with-data", "spectra-tutorial", "analyse-obs-123"):
            wait_phase(api_client, namespace, "Session", name, "Available", 300)
        data = status(api_client, namespace, "Data", "notebook-with-data-data-catalogue")
        assert data["checksumVerified"] is True
        assert status(api_client, namespace, "Data", "obs-123")["rule"]["observed"] == "OK"
        url = status(api_client, namespace, "Session", "spectra-tutorial")["connectors"][0]["url"]
        assert "/lab/tree/arc/home/alice/notebooks/tutorial/spectra/spectra.ipynb?token=" in url
    finally:
        handle.stop()
        defaults.close()
