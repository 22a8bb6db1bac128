"""Count what one Session costs on the happy path: API-server requests by verb and resource (from
the API server's own `apiserver_request_total`), and platform calls by route (from the operator's
`skaha_requests_total`). Starts its own control plane, simulator (zero latency) and operator.

    .venv/bin/python -m bench.happy_path --sessions 10
"""

from __future__ import annotations

import argparse
import re
import sys
import tempfile
import time
import urllib.request
from collections import Counter
from pathlib import Path
from typing import Any, cast

from kubernetes import client

from skaha_operator import GROUP, VERSION
from skaha_operator.controlplane import ControlPlane
from skaha_operator.controlplane.kit import create, install_crds, operator_process, platform_objects
from skaha_operator.controlplane.processes import free_port
from skaha_operator.simulator import Simulator, SimulatorConfig

SAMPLE = re.compile(r"^(\w+)\{(.*)\} ([0-9.e+]+)$")
LABEL = re.compile(r'(\w+)="([^"]*)"')


def scrape(url: str, headers: dict[str, str] | None = None, context: Any = None) -> str:
    req = urllib.request.Request(url, headers=headers or {})
    with urllib.request.urlopen(req, timeout=10, context=context) as resp:
        text: str = resp.read().decode()
        return text


def samples(text: str, name: str) -> list[tuple[dict[str, str], float]]:
    out = []
    for line in text.splitlines():
        m = SAMPLE.match(line)
        if m and m.group(1) == name:
            out.append((dict(LABEL.findall(m.group(2))), float(m.group(3))))
    return out


def api_requests(cp: ControlPlane) -> Counter[tuple[str, str]]:
    text = scrape(f"{cp.server}/metrics", {"Authorization": f"Bearer {cp.token}"}, cp.ssl_context())
    counts: Counter[tuple[str, str]] = Counter()
    for labels, value in samples(text, "apiserver_request_total"):
        if labels.get("group") in (GROUP, "") and labels.get("resource"):
            res = labels["resource"] + (
                f"/{labels['subresource']}" if labels["subresource"] else ""
            )
            counts[(labels["verb"], res)] += int(value)
    return counts


def lease_writes(cp: ControlPlane) -> int:
    """Writes to coordination.k8s.io Leases so far (the replicas' shards: background, not per
    Session)."""
    text = scrape(f"{cp.server}/metrics", {"Authorization": f"Bearer {cp.token}"}, cp.ssl_context())
    return int(
        sum(
            value
            for labels, value in samples(text, "apiserver_request_total")
            if labels.get("group") == "coordination.k8s.io"
            and labels.get("resource") == "leases"
            and labels.get("verb") in {"CREATE", "POST", "PUT", "UPDATE", "PATCH", "DELETE"}
        )
    )


def api_client(cp: ControlPlane) -> client.ApiClient:
    config = client.Configuration()
    config.host = cp.server
    config.ssl_ca_cert = str(cp.ca_file)
    config.api_key = {"authorization": f"Bearer {cp.token}"}
    return client.ApiClient(config)


def session(name: str) -> dict[str, Any]:
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "Session",
        "metadata": {"name": name},
        "spec": {
            "platformRef": "local",
            "executable": {
                "template": {"dockerContainer": {"image": "images.canfar.net/skaha/astroml:latest"}}
            },
            "compute": {
                "template": {
                    "type": "headless",
                    "command": "sleep",
                    "env": {"SIM_RUN_SECONDS": "3600"},
                }
            },
        },
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sessions", type=int, default=10)
    parser.add_argument("--timeout", type=float, default=600)
    args = parser.parse_args(argv)
    sim = Simulator(SimulatorConfig(tokens={"tok-alice": "alice"}, pending_s=0.0, run_s=3600))
    handle = sim.start_in_thread()
    metrics_port = free_port()
    with ControlPlane() as cp, api_client(cp) as api, tempfile.TemporaryDirectory() as tmp:
        install_crds(api, sorted(Path("crds").glob("*.yaml")))
        client.CoreV1Api(api).create_namespace(
            client.V1Namespace(metadata=client.V1ObjectMeta(name="bench"))
        )
        for obj in platform_objects("bench", handle.base_url):
            create(api, "bench", obj)
        with operator_process(
            cp,
            Path(tmp) / "operator.log",
            "--metrics-port",
            str(metrics_port),
            "--metrics-address",
            "127.0.0.1",
            "--metrics-insecure",
        ):
            custom = client.CustomObjectsApi(api)
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:  # the platform probe is not per-Session cost
                got = cast(
                    dict[str, Any],
                    custom.get_namespaced_custom_object(
                        GROUP, VERSION, "bench", "skahaplatforms", "local"
                    ),
                )
                if (got.get("status") or {}).get("phase") == "Available":
                    break
                time.sleep(0.2)
            time.sleep(1.0)
            before = api_requests(cp)
            calls_before = scrape(f"http://127.0.0.1:{metrics_port}/metrics")
            started = time.monotonic()
            for i in range(args.sessions):
                create(api, "bench", session(f"s{i}"))
            deadline = started + args.timeout
            while time.monotonic() < deadline:
                items = cast(
                    dict[str, Any],
                    custom.list_namespaced_custom_object(GROUP, VERSION, "bench", "sessions"),
                )
                phases = Counter((i.get("status") or {}).get("phase") for i in items["items"])
                if phases.get("Running", 0) == args.sessions:
                    break
                time.sleep(0.2)
            elapsed = time.monotonic() - started
            time.sleep(2.0)  # let wake-ups and trailing writes land
            after = api_requests(cp)
            calls_after = scrape(f"http://127.0.0.1:{metrics_port}/metrics")
    handle.stop()
    sim.close()
    n = args.sessions
    delta = after - before
    out = sys.stdout
    out.write(f"{n} Sessions usable in {elapsed:.1f}s ({phases})\n\nAPI requests per Session:\n")
    writes = 0.0
    for (verb, res), count in sorted(delta.items(), key=lambda kv: -kv[1]):
        out.write(f"  {verb:7s} {res:32s} {count / n:6.2f}\n")
        if verb in {"CREATE", "PATCH", "UPDATE", "DELETE", "APPLY", "POST", "PUT"}:
            writes += count / n
    out.write(f"  writes total: {writes:.2f} per Session\n\nPlatform calls per Session:\n")
    before_calls = {
        tuple(sorted(lab.items())): v for lab, v in samples(calls_before, "skaha_requests_total")
    }
    total = 0.0
    for labels, value in samples(calls_after, "skaha_requests_total"):
        d = value - before_calls.get(tuple(sorted(labels.items())), 0.0)
        if d:
            total += d / n
            out.write(
                f"  {labels['method']:6s} {labels['route']:28s} {labels['code']} {d / n:6.2f}\n"
            )
    out.write(f"  total: {total:.2f} per Session\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
