"""The operator's health and metrics endpoints, as the chart's probe and Prometheus see them
(metrics in their plain-HTTP form, `--metrics-insecure`; test_metrics_auth.py covers HTTPS with
TokenReview and SubjectAccessReview, the default).

Liveness reflects the API server: /healthz answers 200 with the `api` probe's result while the
API server answers, and stops answering 200 once it is gone (the kubelet then restarts the pod).
Uses its own control plane, since it stops it.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from kubernetes import client

from skaha_operator.controlplane import ControlPlane
from skaha_operator.controlplane.processes import free_port
from tests.integration.conftest import ROOT, install_crds
from tests.integration.operator_harness import operator_process, wait_for

pytestmark = pytest.mark.integration


def fetch(url: str) -> tuple[int, str]:
    """Status and body of a GET; (0, error) when nothing answers."""
    try:
        with urllib.request.urlopen(url, timeout=15) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode(errors="replace")
    except OSError as exc:
        return 0, str(exc)


def test_liveness_follows_the_api_server_and_metrics_are_served(tmp_path: Path) -> None:
    live, metrics = free_port(), free_port()
    log = tmp_path / "operator.log"
    cp = ControlPlane()
    with cp:
        config = client.Configuration()
        config.host = cp.server
        config.ssl_ca_cert = str(cp.ca_file)
        config.api_key = {"authorization": f"Bearer {cp.token}"}
        with client.ApiClient(config) as api:
            install_crds(api, sorted((ROOT / "crds").glob("*.yaml")))
        flags = ("--liveness", f"http://127.0.0.1:{live}/healthz", "--metrics-port", str(metrics))
        flags += ("--metrics-address", "127.0.0.1", "--metrics-insecure", "--log-format", "json")
        with operator_process(cp, log, *flags):
            healthz = f"http://127.0.0.1:{live}/healthz"
            code, body = wait_for("healthz 200", lambda: (r := fetch(healthz))[0] == 200 and r, 90)
            probe = json.loads(body)
            assert set(probe) == {"api"}
            assert probe["api"]["apiLatencyMs"] >= 0
            assert probe["api"]["resourceVersion"]
            code, text = fetch(f"http://127.0.0.1:{metrics}/metrics")
            assert code == 200
            for name in ("controller_runtime_reconcile_total", "skaha_requests_total",
                         "cas_conflicts_total", "skaha_phase_transitions_total"):  # fmt: skip
                assert f"# TYPE {name.removesuffix('_total')}" in text, name
            # JSON logs: every line kopf wrote is one JSON object.
            lines = [ln for ln in log.read_text().splitlines() if ln.startswith("{")]
            assert lines
            assert all("message" in json.loads(ln) for ln in lines)

            cp.stop()
            # kopf caches probe results for 10 s; then the probe fails and /healthz is not 200.
            wait_for("healthz not 200", lambda: fetch(healthz)[0] not in (0, 200), 90, every=1)
