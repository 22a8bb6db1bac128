"""/metrics behind Kubernetes authentication, with the real API server deciding: the operator
serves HTTPS and checks every scrape's token with a TokenReview and a SubjectAccessReview for
`get /metrics`, which the chart's `<fullname>-metrics-reader` ClusterRole grants. Tokens come
from the TokenRequest API, as a Prometheus pod's projected token would."""

from __future__ import annotations

import ssl
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from kubernetes import client

from skaha_operator.controlplane import ControlPlane
from skaha_operator.controlplane.processes import free_port
from tests.integration.operator_harness import operator_process, wait_for
from tests.ship.chart import render

pytestmark = pytest.mark.integration


def _insecure() -> ssl.SSLContext:
    # The operator made its own certificate at start; what is tested here is who may read.
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


def scrape(url: str, token: str | None) -> tuple[int, str, dict[str, str]]:
    """(status, body, headers) of a GET; status 0 when no HTTP answer came."""
    headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
    request = urllib.request.Request(url, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=15, context=_insecure()) as resp:
            return resp.status, resp.read().decode(), dict(resp.headers)
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode(errors="replace"), dict(exc.headers)
    except OSError as exc:
        return 0, str(exc), {}


def sa_token(core: client.CoreV1Api, ns: str, name: str) -> str:
    """A ServiceAccount and a 10-minute token for it (TokenRequest)."""
    core.create_namespaced_service_account(ns, {"metadata": {"name": name}})
    request = client.AuthenticationV1TokenRequest(
        spec=client.V1TokenRequestSpec(audiences=[], expiration_seconds=600)
    )
    token: str = core.create_namespaced_service_account_token(name, ns, request).status.token
    return token


@pytest.fixture
def reader_role(api_client: client.ApiClient) -> Iterator[str]:
    """The chart's metrics-reader ClusterRole, as rendered, created for this test only."""
    release = f"m{uuid.uuid4().hex[:8]}"
    docs = [d for d in yaml.safe_load_all(render(release=release)) if d]
    (role,) = [
        d
        for d in docs
        if d["kind"] == "ClusterRole" and d["metadata"]["name"].endswith("-metrics-reader")
    ]
    rbac = client.RbacAuthorizationV1Api(api_client)
    rbac.create_cluster_role(role)
    try:
        yield str(role["metadata"]["name"])
    finally:
        rbac.delete_cluster_role(role["metadata"]["name"])


def test_metrics_need_a_token_allowed_to_get_them(
    api_client: client.ApiClient,
    controlplane: ControlPlane,
    crds: list[str],
    namespace: str,
    reader_role: str,
    tmp_path: Path,
) -> None:
    ns, core = namespace, client.CoreV1Api(api_client)
    rbac = client.RbacAuthorizationV1Api(api_client)
    scraper, stranger = sa_token(core, ns, "scraper"), sa_token(core, ns, "stranger")
    binding = f"{reader_role}-{ns}"
    rbac.create_cluster_role_binding({
        "metadata": {"name": binding},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                    "name": reader_role},
        "subjects": [{"kind": "ServiceAccount", "name": "scraper", "namespace": ns}],
    })  # fmt: skip
    port = free_port()
    url = f"https://127.0.0.1:{port}/metrics"
    flags = ("-n", ns, "--metrics-port", str(port), "--metrics-address", "127.0.0.1")
    try:
        with operator_process(controlplane, tmp_path / "operator.log", *flags) as proc:

            def answering() -> bool:
                assert proc.poll() is None, (tmp_path / "operator.log").read_text()[-3000:]
                return scrape(url, None)[0] != 0

            wait_for("the metrics endpoint", answering, 90)

            code, body, headers = scrape(url, None)
            assert code == 401
            assert headers.get("WWW-Authenticate", "").startswith("Bearer")
            assert "controller_runtime" not in body
            assert scrape(url, "not-a-token")[0] == 401
            code, body, _ = scrape(url, stranger)
            assert code == 403
            assert f"system:serviceaccount:{ns}:stranger" in body
            assert "controller_runtime" not in body
            code, body, _ = scrape(url, scraper)
            assert code == 200
            assert "# HELP controller_runtime_reconcile_total" in body
            # A cached verdict answers the same, without changing who may read.
            assert scrape(url, scraper)[0] == 200
            assert scrape(url, stranger)[0] == 403
            # Plain HTTP on the TLS port gets no metrics.
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as r:
                    plain = r.read().decode(errors="replace")
            except (urllib.error.URLError, OSError) as exc:
                plain = str(exc)
            assert "controller_runtime" not in plain
            assert proc.poll() is None
    finally:
        rbac.delete_cluster_role_binding(binding)
