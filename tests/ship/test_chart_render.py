"""The Helm chart as rendered: lint, schema, security, RBAC exactly as the operator needs."""

from __future__ import annotations

import re
from typing import Any

import pytest
import yaml

from skaha_operator import FINALIZER
from tests.ship.chart import (
    CHART,
    KUBE_VERSION,
    ROOT,
    by_kind,
    crd_plurals,
    helm,
    objects,
    render,
)

pytestmark = pytest.mark.integration  # needs the pinned helm from `make controlplane`

USER_OWNED = {"sessions", "skahaplatforms"}
AGGREGATE = "rbac.authorization.k8s.io/aggregate-to-"


def operator_roles(docs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The operator's own ClusterRoles (not those aggregated into view/edit/admin for people,
    nor the metrics reader bound to Prometheus)."""
    return [
        r
        for r in by_kind(docs, "ClusterRole")
        if not any(k.startswith(AGGREGATE) for k in r["metadata"]["labels"]) and not _reader(r)
    ]  # users create and delete them; never the operator


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
        "ClusterRole", "ClusterRole", "ClusterRole", "ClusterRole", "ClusterRoleBinding",
        *["CustomResourceDefinition"] * len(crd_plurals()),
        "Deployment", "MutatingAdmissionPolicy", "MutatingAdmissionPolicyBinding", "Role",
        "RoleBinding", "Service", "ServiceAccount",
    ]  # fmt: skip


def test_finalizer_policy_covers_every_kind_and_is_bound_to_the_watched_namespaces() -> None:
    """docs/design.md §4.6: the API server adds our finalizer in the create, only where the
    operator watches; from Kubernetes 1.36 (v1), and not when turned off."""
    docs = objects(render("watchNamespaces={a,b}"))
    [policy] = by_kind(docs, "MutatingAdmissionPolicy")
    [binding] = by_kind(docs, "MutatingAdmissionPolicyBinding")
    spec = yaml.safe_load((CHART / "files" / "finalizer-policy.yaml").read_text())
    assert policy["spec"] == spec
    [rule] = spec["matchConstraints"]["resourceRules"]
    assert (rule["operations"], set(rule["resources"])) == (["CREATE"], crd_plurals())
    assert spec["failurePolicy"] == "Ignore"  # the operator's own patch is the fallback
    # It spells the operator's finalizer in its condition and in both patches, and no other.
    spelled = re.findall(r'"([^"]*/finalizer)"', yaml.safe_dump(spec))
    assert spelled == [FINALIZER] * 3
    assert binding["spec"]["policyName"] == policy["metadata"]["name"]
    named = {"key": "kubernetes.io/metadata.name", "operator": "In", "values": ["a", "b"]}
    assert binding["spec"]["matchResources"] == {"namespaceSelector": {"matchExpressions": [named]}}
    # Cluster mode: every namespace.
    [binding] = by_kind(objects(render()), "MutatingAdmissionPolicyBinding")
    assert "matchResources" not in binding["spec"]
    # Turned off, or a cluster before 1.36: nothing rendered (the operator patches).
    assert not by_kind(objects(render("finalizerPolicy.enabled=false")), "MutatingAdmissionPolicy")
    older = helm("template", "x", str(CHART), "--kube-version", "1.35.2").stdout
    assert not by_kind(objects(older), "MutatingAdmissionPolicy")


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
    # Secure metrics and the default host policy (public hosts only) unless values say otherwise.
    assert not [a for a in c["args"] if a.startswith(("--metrics-insecure", "--allowed-hosts"))]
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


def _operator_role(docs: list[dict[str, Any]]) -> dict[str, Any]:
    (role,) = operator_roles(docs)
    return role


def _reader(role: dict[str, Any]) -> bool:
    return str(role["metadata"]["name"]).endswith("-metrics-reader")


def test_cluster_rbac_grants_exactly_the_operator_verbs_on_every_kind() -> None:
    role = _operator_role(objects(render()))
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
    # Secrets: read (only those labelled skaha.broker.dev/credentials) and patched to carry the
    # finalizer while a platform needs them; ConfigMaps: notebooks.
    assert rules[(("",), ("secrets",))] == {"get", "patch"}
    assert rules[(("",), ("configmaps",))] == {"get"}
    assert rules[(("",), ("events",))] == {"create"}
    assert rules[(("apiextensions.k8s.io",), ("customresourcedefinitions",))] == {"list", "watch"}
    # Secure metrics: who is scraping (TokenReview) and may they (SubjectAccessReview).
    assert rules[(("authentication.k8s.io",), ("tokenreviews",))] == {"create"}
    assert rules[(("authorization.k8s.io",), ("subjectaccessreviews",))] == {"create"}
    # Cluster-wide kopf does not observe namespaces; nothing else is granted.
    assert len(rules) == 9


def test_namespaced_rbac_uses_roles_in_each_watched_namespace() -> None:
    docs = objects(render("rbac.namespaced=true", "watchNamespaces={science,survey}"))
    roles = [r for r in by_kind(docs, "Role") if not r["metadata"]["name"].endswith("-leases")]
    assert sorted(r["metadata"]["namespace"] for r in roles) == ["science", "survey"]
    bindings = [
        b for b in by_kind(docs, "RoleBinding") if not b["metadata"]["name"].endswith("-leases")
    ]
    assert sorted(b["metadata"]["namespace"] for b in bindings) == ["science", "survey"]
    cluster = _operator_role(docs)
    verbs = {res: set(r["verbs"]) for r in cluster["rules"] for res in r["resources"]}
    assert verbs == {
        "customresourcedefinitions": {"list", "watch"}, "namespaces": {"list", "watch"},
        "tokenreviews": {"create"}, "subjectaccessreviews": {"create"},
    }  # fmt: skip
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
        (("caBundle.configMap=a", "caBundle.secret=b"), "caBundle"),
        (("extraEnv[0].value=x",), "missing property 'name'"),
        (("crds.upgrade=true",), "additional properties 'upgrade' not allowed"),
        (("operator.downloaderImage=Not An Image",), "does not match pattern"),
        (("readiness.periodSeconds=0",), "minimum"),
        (("allowedHosts={https://x.org}",), "does not match pattern"),
    ],
)
def test_values_schema_refuses_bad_values(sets: tuple[str, ...], message: str) -> None:
    flags = [f"--set={s}" for s in sets]
    done = helm("template", "x", str(CHART), "--kube-version", KUBE_VERSION, *flags, check=False)
    assert done.returncode != 0
    assert message in done.stderr


# -- site configuration (issue 14) -----------------------------------------------------------------


def container(*sets: str) -> dict[str, Any]:
    (dep,) = by_kind(objects(render(*sets)), "Deployment")
    (c,) = dep["spec"]["template"]["spec"]["containers"]
    return {"container": c, "pod": dep["spec"]["template"]["spec"]}


def test_extra_env_volumes_and_mounts_reach_the_pod() -> None:
    got = container(
        "extraEnv[0].name=SITE", "extraEnv[0].value=ca-west",
        "extraEnv[1].name=FROM_SECRET", "extraEnv[1].valueFrom.secretKeyRef.name=s",
        "extraEnv[1].valueFrom.secretKeyRef.key=k",
        "extraVolumes[0].name=scratch", "extraVolumes[0].emptyDir.medium=Memory",
        "extraVolumeMounts[0].name=scratch", "extraVolumeMounts[0].mountPath=/scratch",
    )  # fmt: skip
    c, pod = got["container"], got["pod"]
    assert c["env"][2:] == [  # after the replica's identity (POD_NAME, POD_NAMESPACE)
        {"name": "SITE", "value": "ca-west"},
        {"name": "FROM_SECRET", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}},
    ]
    assert {"name": "scratch", "mountPath": "/scratch"} in c["volumeMounts"]
    assert {"name": "scratch", "emptyDir": {"medium": "Memory"}} in pod["volumes"]
    assert {"name": "tmp", "mountPath": "/tmp"} in c["volumeMounts"]  # still there


def test_default_pod_env_is_its_identity_and_its_only_volume_tmp() -> None:
    got = container()
    assert [e["name"] for e in got["container"]["env"]] == ["POD_NAME", "POD_NAMESPACE"]
    assert [v["name"] for v in got["pod"]["volumes"]] == ["tmp"]
    assert not [a for a in got["container"]["args"] if a.startswith(("--ca-bundle", "--downl"))]


def test_proxy_settings_become_upper_and_lower_case_env() -> None:
    c = container("httpProxy=http://proxy:3128", "httpsProxy=http://proxy:3128",
                  "noProxy=.cluster.local\\,10.96.0.0/12")["container"]  # fmt: skip
    env = {e["name"]: e["value"] for e in c["env"] if "value" in e}  # not the downward API's
    assert env == {
        "HTTP_PROXY": "http://proxy:3128", "http_proxy": "http://proxy:3128",
        "HTTPS_PROXY": "http://proxy:3128", "https_proxy": "http://proxy:3128",
        "NO_PROXY": ".cluster.local,10.96.0.0/12", "no_proxy": ".cluster.local,10.96.0.0/12",
    }  # fmt: skip


@pytest.mark.parametrize(
    ("source", "volume"),
    [
        ("configMap", {"configMap": {"name": "site-ca", "items": [
            {"key": "bundle.pem", "path": "ca-bundle.crt"}]}}),
        ("secret", {"secret": {"secretName": "site-ca", "items": [
            {"key": "bundle.pem", "path": "ca-bundle.crt"}]}}),
    ],
)  # fmt: skip
def test_ca_bundle_is_mounted_read_only_and_passed_to_the_operator(
    source: str, volume: dict[str, Any]
) -> None:
    got = container(f"caBundle.{source}=site-ca", "caBundle.key=bundle.pem")
    c, pod = got["container"], got["pod"]
    assert {"name": "ca-bundle", **volume} in pod["volumes"]
    mount = {"name": "ca-bundle", "mountPath": "/etc/skaha-operator/ca-bundle", "readOnly": True}
    assert mount in c["volumeMounts"]
    assert "--ca-bundle=/etc/skaha-operator/ca-bundle/ca-bundle.crt" in c["args"]


def test_downloader_image_is_a_flag() -> None:
    c = container("operator.downloaderImage=registry.example.org/tools/curl:8")["container"]
    assert "--downloader-image=registry.example.org/tools/curl:8" in c["args"]


def test_readiness_probe_and_resources_sized_from_the_benchmark() -> None:
    c = container()["container"]
    assert c["readinessProbe"]["httpGet"] == {"path": "/healthz", "port": "liveness"}
    # docs/performance.md: peak RSS 468 MiB at N=1000 Sessions; the limit is above it.
    limit = c["resources"]["limits"]["memory"]
    assert limit.endswith("Mi")
    assert int(limit[:-2]) > 468
    assert "readinessProbe" not in container("readiness.enabled=false")["container"]


def test_crds_are_templates_kept_on_uninstall_or_left_out() -> None:
    crds = by_kind(objects(render()), "CustomResourceDefinition")
    assert sorted(c["spec"]["names"]["plural"] for c in crds) == sorted(crd_plurals())
    for crd in crds:
        assert crd["metadata"]["annotations"] == {"helm.sh/resource-policy": "keep"}
        labels = crd["metadata"]["labels"]
        assert labels["app.kubernetes.io/managed-by"] == "Helm"
        assert labels["app.kubernetes.io/part-of"] == "skaha-operator"
    generated = {
        yaml.safe_load(p.read_text())["metadata"]["name"]: yaml.safe_load(p.read_text())["spec"]
        for p in (ROOT / "crds").glob("*.yaml")
    }
    assert {c["metadata"]["name"]: c["spec"] for c in crds} == generated  # schema untouched
    unkept = by_kind(objects(render("crds.keep=false")), "CustomResourceDefinition")
    assert all("annotations" not in c["metadata"] for c in unkept)
    assert by_kind(objects(render("crds.enabled=false")), "CustomResourceDefinition") == []


def test_aggregated_roles_let_namespace_editors_create_sessions() -> None:
    docs = objects(render())
    roles = {r["metadata"]["name"]: r for r in by_kind(docs, "ClusterRole")}
    view, edit = roles["skaha-skaha-operator-view"], roles["skaha-skaha-operator-edit"]
    for role, into in ((view, {"view", "edit", "admin"}), (edit, {"edit", "admin"})):
        got = {k.removeprefix(AGGREGATE) for k, v in role["metadata"]["labels"].items()
               if k.startswith(AGGREGATE) and v == "true"}  # fmt: skip
        assert got == into
        (rule,) = role["rules"]
        assert set(rule["resources"]) == crd_plurals()  # no status subresource
    assert set(view["rules"][0]["verbs"]) == {"get", "list", "watch"}
    assert set(edit["rules"][0]["verbs"]) == {"create", "update", "patch", "delete",
                                              "deletecollection"}  # fmt: skip
    off = objects(render("rbac.aggregateToDefaultRoles=false"))
    assert [r["metadata"]["name"] for r in by_kind(off, "ClusterRole")] == [
        "skaha-skaha-operator",
        "skaha-skaha-operator-metrics-reader",
    ]


def test_metrics_are_secure_by_default_with_a_reader_role_and_an_https_service_monitor() -> None:
    docs = objects(render("metrics.serviceMonitor.enabled=true"))
    (reader,) = [r for r in by_kind(docs, "ClusterRole") if _reader(r)]
    assert reader["metadata"]["name"] == "skaha-skaha-operator-metrics-reader"
    assert reader["rules"] == [{"nonResourceURLs": ["/metrics"], "verbs": ["get"]}]
    assert [b["metadata"]["name"] for b in by_kind(docs, "ClusterRoleBinding")] == [
        "skaha-skaha-operator"
    ]  # no subjects given: the reader role is bound by whoever runs Prometheus
    (sm,) = by_kind(docs, "ServiceMonitor")
    (endpoint,) = sm["spec"]["endpoints"]
    assert endpoint["scheme"] == "https"
    assert endpoint["bearerTokenFile"] == "/var/run/secrets/kubernetes.io/serviceaccount/token"
    assert endpoint["tlsConfig"] == {"insecureSkipVerify": True}


def test_metrics_options_reach_the_operator() -> None:
    subject = "metrics.reader.subjects[0]"
    docs = objects(
        render(
            "metrics.certSecret=metrics-tls",
            f"{subject}.kind=ServiceAccount",
            f"{subject}.name=prometheus",
            f"{subject}.namespace=monitoring",
            "allowedHosts={*.canfar.net,10.20.0.0/16}",
        )
    )
    (dep,) = by_kind(docs, "Deployment")
    pod = dep["spec"]["template"]["spec"]
    args = pod["containers"][0]["args"]
    assert "--metrics-cert-dir=/etc/skaha-operator/metrics-tls" in args
    assert [a for a in args if a.startswith("--allowed-hosts")] == [
        "--allowed-hosts=*.canfar.net", "--allowed-hosts=10.20.0.0/16",
    ]  # fmt: skip
    assert {"name": "metrics-tls", "secret": {"secretName": "metrics-tls"}} in pod["volumes"]
    binding = [
        b for b in by_kind(docs, "ClusterRoleBinding") if b["metadata"]["name"].endswith("reader")
    ]
    assert binding[0]["subjects"] == [
        {"kind": "ServiceAccount", "name": "prometheus", "namespace": "monitoring"}
    ]
    plain = objects(render("metrics.secure=false", "metrics.serviceMonitor.enabled=true"))
    (dep,) = by_kind(plain, "Deployment")
    assert "--metrics-insecure" in dep["spec"]["template"]["spec"]["containers"][0]["args"]
    assert not [r for r in by_kind(plain, "ClusterRole") if _reader(r)]
    rules = _operator_role(plain)["rules"]
    assert not [r for r in rules if "tokenreviews" in r["resources"]]
    (sm,) = by_kind(plain, "ServiceMonitor")
    assert sm["spec"]["endpoints"][0]["scheme"] == "http"
    assert "bearerTokenFile" not in sm["spec"]["endpoints"][0]
