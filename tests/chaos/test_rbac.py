"""Campaign 6, least privilege: the operator runs as the Helm chart's ServiceAccount with exactly
the chart's RBAC (namespaced mode) through a workload that uses every kind, is deleted, cancelled
and released; the API server's audit log lists every (verb, resource) it called. Every call is
granted and none was refused; what the chart grants but the operator never called is reported,
and must be one of the grants explained below. Its /metrics are scraped as Prometheus would,
with the token of a ServiceAccount bound to the chart's metrics-reader ClusterRole, so the
TokenReview and SubjectAccessReview grants are exercised (and audited) too."""

from __future__ import annotations

import contextlib
import json
import random
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client

from skaha_operator import GROUP, VERSION
from skaha_operator.controlplane import ControlPlane, binary
from tests.chaos.kit import (
    Kind,
    Operators,
    create,
    platform_objects,
    release_all,
    session_body,
    settle_to,
    simulator,
)
from tests.chaos.report import Report
from tests.chaos.scale import Scale
from tests.ship.chart import render

pytestmark = [pytest.mark.integration, pytest.mark.chaos]

SEED = 8007
RELEASE = "skaha"
SA = "skaha-skaha-operator"
NOTEBOOK = {"cells": [], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}
PAYLOAD = "SIMPLE  = T\nEND\n"
_CACHED_GET = "reads come from the watch-fed cache; a GET is only the fallback (conflict re-read)"
_KINDS = (
    "skahaplatforms",
    "dockercontainers",
    "jupyternotebooks",
    "storages",
    "data",
    "computes",
    "sessions",
)
# Grants a run may leave unused, each explained: the GETs are needed (the fallback) but a run
# without conflicts may not call them. Any other grant left unused fails the test. (The first
# runs found 11 over-grants, create/delete on Sessions and SkahaPlatforms and GET on every
# status; the chart dropped them in 1dba019.)
_LEASE_VERBS = (
    "the usual Lease verbs (client-go's leader-election role) for people and tools; the "
    "replicas list, create, update (compare-and-swap PUT) and delete their Leases"
)
EXPLAINED_UNUSED: dict[tuple[str, str], str] = {
    ("get", f"skaha.broker.dev/{plural}"): _CACHED_GET for plural in _KINDS
} | {(verb, "coordination.k8s.io/leases"): _LEASE_VERBS for verb in ("get", "watch", "patch")}

Grant = tuple[str, str]  # (verb, "group/resource[/subresource]")


def _kubectl(cp: ControlPlane, *args: str, stdin: str | None = None) -> str:
    done = subprocess.run(
        [str(binary("kubectl")), f"--kubeconfig={cp.kubeconfig}", *args],
        input=stdin,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    return done.stdout


def _grants(docs: list[dict[str, Any]]) -> set[Grant]:
    out = set()
    for doc in docs:
        for rule in doc.get("rules") or []:
            for group in rule["apiGroups"]:
                for res in rule["resources"]:
                    out |= {(verb, f"{group}/{res}") for verb in rule["verbs"]}
    return out


WRITES = frozenset({"create", "update", "patch", "delete", "deletecollection"})


def _calls(audit: Path, user: str) -> tuple[set[Grant], int, int, dict[str, set[str]]]:
    """(verb, resource) pairs `user` called, how many calls, how many were refused (403), and
    the user agents (the product, before the version) of its reads and of its writes."""
    used: set[Grant] = set()
    agents: dict[str, set[str]] = {"reads": set(), "writes": set()}
    total = refused = 0
    for line in audit.read_text().splitlines():
        event = json.loads(line)
        ref = event.get("objectRef")
        if event["user"]["username"] != user or ref is None or event["stage"] == "ResponseStarted":
            continue
        total += 1
        kind = "writes" if event["verb"] in WRITES else "reads"
        agents[kind].add(str(event.get("userAgent", "")).split("/")[0])
        refused += (event.get("responseStatus") or {}).get("code") == 403
        res = ref["resource"] + (f"/{ref['subresource']}" if ref.get("subresource") else "")
        used.add((event["verb"], f"{ref.get('apiGroup', '')}/{res}"))
    return used, total, refused, agents


def _with_data_and_notebook(body: dict[str, Any], url: str) -> dict[str, Any]:
    spec = body["spec"]
    spec["storages"] = [
        {"name": "work", "template": {"area": "home", "path": "rbac", "releasePolicy": "Delete"}}
    ]
    spec["data"] = [
        {
            "name": "input",
            "template": {
                "storageRef": "work",
                "path": "in.fits",
                "releasePolicy": "Delete",
                "http": {"url": url, "allowInsecure": True},
            },
        }
    ]
    spec["executable"] = {
        "template": {
            "jupyterNotebook": {
                "image": "images.canfar.net/skaha/astroml:latest",
                "notebook": {"configMapRef": {"name": "nb", "key": "nb.ipynb"}},
                "requirements": ["astropy"],
                "storageRef": "work",
                "releasePolicy": "Delete",
            }
        }
    }
    return body


def test_operator_calls_only_what_the_chart_grants(
    api_client: client.ApiClient,
    namespace: str,
    controlplane: ControlPlane,
    scale: Scale,
    report: Report,
    tmp_path: Path,
) -> None:
    rng = random.Random(SEED)
    report.campaign, report.seed = "Least privilege (chart RBAC vs calls)", SEED
    ns = namespace
    rendered = [
        d
        for d in yaml.safe_load_all(
            render(
                "rbac.namespaced=true",
                f"watchNamespaces={{{ns}}}",
                # The roles aggregated into view/edit are people's, not the operator's.
                "rbac.aggregateToDefaultRoles=false",
                namespace=ns,
                release=RELEASE,
            )
        )
        if d
        and d["kind"]
        in {"ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding"}
    ]
    _kubectl(controlplane, "apply", "-f", "-", stdin=yaml.safe_dump_all(rendered))
    roles = [d for d in rendered if d["kind"] in {"ClusterRole", "Role"}]
    (reader,) = [r for r in roles if r["metadata"]["name"].endswith("-metrics-reader")]
    granted = _grants([r for r in roles if r is not reader])
    token = _kubectl(controlplane, "create", "token", SA, "-n", ns, "--duration=1h").strip()
    # Prometheus' stand-in: a ServiceAccount bound to the chart's metrics-reader ClusterRole.
    _kubectl(controlplane, "create", "serviceaccount", "scraper", "-n", ns)
    scraper_binding = f"{reader['metadata']['name']}-{ns}"
    _kubectl(
        controlplane, "create", "clusterrolebinding", scraper_binding,
        f"--clusterrole={reader['metadata']['name']}", f"--serviceaccount={ns}:scraper",
    )  # fmt: skip
    scraper = _kubectl(controlplane, "create", "token", "scraper", "-n", ns, "--duration=1h")
    config = json.loads(controlplane.kubeconfig.read_text())
    config["users"] = [{"name": "admin", "user": {"token": token}}]
    as_sa = tmp_path / "sa.kubeconfig"
    as_sa.write_text(json.dumps(config))
    custom = client.CustomObjectsApi(api_client)
    with (
        contextlib.ExitStack() as cleanup,
        simulator(SEED, files={"chaos/in.fits": PAYLOAD}, job_run_s=1.0) as p,
        Operators(controlplane, ns, tmp_path) as ops,
    ):
        cleanup.callback(_kubectl, controlplane, "delete", "clusterrolebinding", scraper_binding)
        for obj in platform_objects(p.url):
            create(api_client, ns, obj)
        client.CoreV1Api(api_client).create_namespaced_config_map(
            ns, {"metadata": {"name": "nb"}, "data": {"nb.ipynb": json.dumps(NOTEBOOK)}}
        )
        op = ops.start(kubeconfig=as_sa)
        op.metrics_token = scraper.strip()
        op.wait_serving()
        full = _with_data_and_notebook(
            session_body("full", Kind.NOTEBOOK, rng), f"{p.url}/_sim/files/chaos/in.fits"
        )
        for body in (
            full,
            session_body("job", Kind.JOB, rng),
            session_body("cancelled", Kind.NOTEBOOK, rng),
        ):
            create(api_client, ns, body)
        settle_to(
            api_client,
            ns,
            {"full": "Available", "job": "Completed", "cancelled": "Available"},
            scale.deadline,
        )
        custom.patch_namespaced_custom_object(
            GROUP, VERSION, ns, "sessions", "cancelled", {"spec": {"cancel": True}}
        )
        settle_to(api_client, ns, {"cancelled": "Cancelled"}, scale.deadline)
        leaked = release_all(api_client, ns, p.sim, scale.deadline)
        assert "skaha_requests_total" in ops.scrape(op)
        assert op.alive()
        log = ops.logs()
    used, calls, refused, agents = _calls(
        controlplane.audit_log, f"system:serviceaccount:{ns}:{SA}"
    )
    unused = granted - used
    beyond = used - granted

    report.inject("operator identity", f"ServiceAccount {SA} with the chart's namespaced RBAC")
    report.inject(
        "workload", "Session with JupyterNotebook (ConfigMap), Storage, Data; job; cancel"
    )
    report.check("API calls made by the operator (audit log)", calls)
    report.check("calls refused (403)", refused)
    report.check("user agents of its writes", sorted(agents["writes"]))
    report.figures["user agents of its reads"] = sorted(agents["reads"])
    report.check("(verb, resource) used but not granted", sorted(f"{v} {r}" for v, r in beyond))
    report.check("granted and used", len(granted & used))
    report.figures["granted but not called in this run (all explained)"] = (
        sorted(f"{v} {r}" for v, r in unused) or "none"
    )
    report.figures["Skaha sessions left after deleting everything"] = len(leaked)

    assert calls > 0
    assert refused == 0, "the API server refused some of the operator's calls"
    # Every write, the official client's included, names the operator: its field manager in
    # managedFields and its user agent here (docs/kubernetes-notes.md §12). Our watches do too;
    # kopf's own scans of namespaces and CRDs at start-up carry kopf's name.
    assert agents["writes"] == {"skaha-operator"}
    assert "skaha-operator" in agents["reads"]
    assert agents["reads"] <= {"skaha-operator", "kopf"}
    assert "Forbidden" not in log
    assert beyond == set()
    assert leaked == []
    assert unused <= set(EXPLAINED_UNUSED), sorted(unused - set(EXPLAINED_UNUSED))
