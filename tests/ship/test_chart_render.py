"""The Helm chart as rendered: lint, schema, security, RBAC exactly as the operator needs."""

from __future__ import annotations

import pytest

from tests.ship.chart import CHART, KUBE_VERSION, by_kind, crd_plurals, helm, objects, render

pytestmark = pytest.mark.integration  # needs the pinned helm from `make controlplane`

USER_OWNED = {"sessions", "skahaplatforms"}  # users create and delete them; never the operator
PART_VERBS = {"get", "list", "watch", "create", "patch", "delete"}


@pytest.mark.parametrize(
    "sets",
    [
        (),
        ("rbac.namespaced=true", "watchNamespaces={science,survey}", "networkPolicy.enabled=true"),
    ],
)
def test_helm_lint_passes(sets: tuple[str, ...]) -> None:
    flags = [f"--set={s}" for s in sets]
    done = helm("lint", "--strict", "--kube-version", KUBE_VERSION, str(CHART), *flags, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "1 chart(s) linted, 0 chart(s) failed" in done.stdout


def test_default_render_has_every_object_once() -> None:
    kinds = sorted(d["kind"] for d in objects(render()))
    assert kinds == [
        "ClusterRole", "ClusterRoleBinding", "Deployment", "Role", "RoleBinding", "Service",
        "ServiceAccount",
    ]  # fmt: skip


def test_deployment_is_one_replica_with_election_restricted_with_liveness() -> None:
    (dep,) = by_kind(objects(render()), "Deployment")
    spec = dep["spec"]
    assert spec["replicas"] == 1
    # A new pod joins before the old one leaves; the old one releases its shard Leases.
    assert spec["strategy"] == {
        "type": "RollingUpdate",
        "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0},
    }
    pod = spec["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    (c,) = pod["containers"]
    sc = c["securityContext"]
    assert sc["allowPrivilegeEscalation"] is False
    assert sc["readOnlyRootFilesystem"] is True
    assert sc["capabilities"] == {"drop": ["ALL"]}
    assert sc["runAsNonRoot"] is True
    assert sc["seccompProfile"] == {"type": "RuntimeDefault"}
    assert c["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "liveness"}
    assert "--liveness=http://0.0.0.0:8080/healthz" in c["args"]
    assert "--metrics-port=9090" in c["args"]
    assert "--log-format=json" in c["args"]
    assert not [a for a in c["args"] if a.startswith("--namespace")]
    assert {p["name"]: p["containerPort"] for p in c["ports"]} == {
        "liveness": 8080,
        "metrics": 9090,
    }
    assert c["image"] == "skaha-operator:0.1.0"
    assert {"--shards=16", "--lease-name=skaha-skaha-operator", "--lease-duration=10",
            "--lease-renew=3"} <= set(c["args"])  # fmt: skip
    env = {e["name"]: e["valueFrom"]["fieldRef"]["fieldPath"] for e in c["env"]}
    assert env == {"POD_NAME": "metadata.name", "POD_NAMESPACE": "metadata.namespace"}


def test_two_replicas_get_a_disruption_budget_and_lease_rbac_in_the_release_namespace() -> None:
    docs = objects(render("replicas=2", namespace="ops", release="op"))
    (dep,) = by_kind(docs, "Deployment")
    assert dep["spec"]["replicas"] == 2
    (pdb,) = by_kind(docs, "PodDisruptionBudget")
    assert pdb["metadata"]["namespace"] == "ops"
    assert pdb["spec"]["minAvailable"] == 1
    assert pdb["spec"]["selector"]["matchLabels"] == dep["spec"]["selector"]["matchLabels"]
    (role,) = by_kind(docs, "Role")
    assert role["metadata"]["namespace"] == "ops"
    assert role["rules"] == [
        {
            "apiGroups": ["coordination.k8s.io"],
            "resources": ["leases"],
            "verbs": ["get", "list", "watch", "create", "update", "patch", "delete"],
        }
    ]
    (binding,) = by_kind(docs, "RoleBinding")
    assert binding["roleRef"]["name"] == role["metadata"]["name"]
    assert by_kind(objects(render()), "PodDisruptionBudget") == []


def test_election_off_is_one_recreated_replica_without_leases() -> None:
    docs = objects(render("election.enabled=false"))
    (dep,) = by_kind(docs, "Deployment")
    assert dep["spec"]["strategy"] == {"type": "Recreate"}
    args = dep["spec"]["template"]["spec"]["containers"][0]["args"]
    assert "--no-election" in args
    assert not [a for a in args if a.startswith("--lease") or a.startswith("--shards")]
    assert by_kind(docs, "Role") == []


def test_image_digest_wins_over_tag() -> None:
    digest = "sha256:" + "a" * 64
    (dep,) = by_kind(objects(render(f"image.digest={digest}", "image.tag=x")), "Deployment")
    assert dep["spec"]["template"]["spec"]["containers"][0]["image"] == f"skaha-operator@{digest}"


def test_cluster_rbac_grants_exactly_the_operator_verbs_on_every_kind() -> None:
    (role,) = by_kind(objects(render()), "ClusterRole")
    rules = {(tuple(r["apiGroups"]), tuple(sorted(r["resources"]))): set(r["verbs"])
             for r in role["rules"]}  # fmt: skip
    plurals = crd_plurals()
    assert plurals >= USER_OWNED
    owned = tuple(sorted(USER_OWNED))
    assert rules[(("skaha.broker.dev",), owned)] == {"get", "list", "watch", "patch"}
    parts = tuple(sorted(plurals - USER_OWNED))
    assert rules[(("skaha.broker.dev",), parts)] == PART_VERBS
    status = tuple(sorted(f"{p}/status" for p in plurals))
    assert rules[(("skaha.broker.dev",), status)] == {"patch"}
    # A platform's token Secret carries our finalizer while the platform is in use.
    assert rules[(("",), ("secrets",))] == {"get", "patch"}
    assert rules[(("",), ("configmaps",))] == {"get"}
    assert rules[(("",), ("events",))] == {"create"}
    assert rules[(("apiextensions.k8s.io",), ("customresourcedefinitions",))] == {"list", "watch"}
    # Cluster-wide kopf does not observe namespaces; nothing else is granted.
    assert len(rules) == 7


def test_namespaced_rbac_uses_roles_in_each_watched_namespace() -> None:
    docs = objects(render("rbac.namespaced=true", "watchNamespaces={science,survey}"))
    roles = [r for r in by_kind(docs, "Role") if not r["metadata"]["name"].endswith("-leases")]
    assert sorted(r["metadata"]["namespace"] for r in roles) == ["science", "survey"]
    bindings = [
        b for b in by_kind(docs, "RoleBinding") if not b["metadata"]["name"].endswith("-leases")
    ]
    assert sorted(b["metadata"]["namespace"] for b in bindings) == ["science", "survey"]
    (cluster,) = by_kind(docs, "ClusterRole")
    resources = sorted(res for r in cluster["rules"] for res in r["resources"])
    assert resources == ["customresourcedefinitions", "namespaces"]
    assert all(set(r["verbs"]) == {"list", "watch"} for r in cluster["rules"])
    assert all(
        {res for r in role["rules"] for res in r["resources"]} >= crd_plurals() for role in roles
    )
    (dep,) = by_kind(docs, "Deployment")
    args = dep["spec"]["template"]["spec"]["containers"][0]["args"]
    assert [a for a in args if a.startswith("--namespace")] == [
        "--namespace=science", "--namespace=survey",
    ]  # fmt: skip


def test_optional_objects_render_when_enabled() -> None:
    docs = objects(
        render(
            "metrics.serviceMonitor.enabled=true",
            "networkPolicy.enabled=true",
            "networkPolicy.egress[0].to[0].ipBlock.cidr=10.0.0.0/8",
        )
    )
    (sm,) = by_kind(docs, "ServiceMonitor")
    assert sm["spec"]["endpoints"][0]["port"] == "metrics"
    (np,) = by_kind(docs, "NetworkPolicy")
    assert np["spec"]["policyTypes"] == ["Ingress", "Egress"]
    assert np["spec"]["ingress"] == [{"ports": [{"port": "metrics", "protocol": "TCP"}]}]
    assert {p["port"] for p in np["spec"]["egress"][0]["ports"]} == {53}
    assert np["spec"]["egress"][1] == {"to": [{"ipBlock": {"cidr": "10.0.0.0/8"}}]}
    no_metrics = objects(render("metrics.enabled=false", "metrics.serviceMonitor.enabled=true"))
    assert by_kind(no_metrics, "Service") == []
    assert by_kind(no_metrics, "ServiceMonitor") == []


@pytest.mark.parametrize(
    ("sets", "message"),
    [
        (("rbac.namespaced=true",), "minItems"),
        (("operator.logFormat=xml",), "value must be one of"),
        (("replicas=0",), "minimum: got 0, want 1"),
        (("replicas=2", "election.enabled=false"), "replicas > 1 needs election.enabled=true"),
        (("election.leaseDuration=5",), "at least twice election.leaseRenew"),
        (("image.digest=latest",), "does not match pattern"),
    ],
)
def test_values_schema_refuses_bad_values(sets: tuple[str, ...], message: str) -> None:
    flags = [f"--set={s}" for s in sets]
    done = helm("template", "x", str(CHART), "--kube-version", KUBE_VERSION, *flags, check=False)
    assert done.returncode != 0
    assert message in done.stderr
