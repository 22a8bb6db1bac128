"""OIDC credentials end to end: the real operator, the real API server, the simulator's issuer.

What must hold (docs/design.md §4.9, docs/install.md §3.1): with access tokens that live a few
seconds, a notebook Session stays Available and Ready across several expiries while the operator
refreshes before each expiry (counted at the issuer), no refused token ever reaches a step, the
rotated refresh token is written back to its Secret, and the Session is still released with a
fresh token; a revoked refresh token makes the platform Unauthorized (Stalled) with the issuer's
own error text and no secret, and a new refresh token put into the Secret brings it back.
"""

from __future__ import annotations

import base64
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from skaha_operator import GROUP, VERSION
from skaha_operator.simulator import Simulator, SimulatorConfig
from tests.integration.operator_harness import MARKED, create, get, wait_for

pytestmark = pytest.mark.integration

TTL_S = 7.0  # access-token lifetime: refreshed at 80 %, so about every 5.6 s while in use
NOTEBOOK_IMAGE = "images.canfar.net/skaha/astroml:latest"


@pytest.fixture(scope="module")
def sim() -> Iterator[Simulator]:
    """A simulator whose issuer hands out 7-second access tokens (no static token for alice)."""
    simulator = Simulator(
        SimulatorConfig(
            tokens={},
            oidc_refresh_tokens={"rt-alice-0": "alice", "rt-bob-0": "bob"},
            oidc_clients={"skaha-operator": "cs-SECRET-42"},
            access_token_ttl_s=TTL_S,
            seed=11,
            pending_s=1.0,
            terminate_s=0.5,
        )
    )
    handle = simulator.start_in_thread()
    simulator.base_url = handle.base_url  # type: ignore[attr-defined]
    try:
        yield simulator
    finally:
        handle.stop()
        simulator.close()


def oidc_platform(
    api: client.ApiClient, ns: str, sim: Simulator, user: str, refresh: str, **oidc: Any
) -> None:
    """A Secret with the refresh token and client secret, and a SkahaPlatform `local` using it."""
    base = sim.base_url  # type: ignore[attr-defined]
    create(
        api,
        ns,
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "oidc", "labels": MARKED},
            "stringData": {"refreshToken": refresh, "clientSecret": "cs-SECRET-42"},
        },
    )
    create(
        api,
        ns,
        {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": "SkahaPlatform",
            "metadata": {"name": "local"},
            "spec": {
                "skaha": {"url": f"{base}/skaha"},
                "cavern": {"url": f"{base}/arc", "user": user},
                "oidc": {
                    "clientId": "skaha-operator",
                    "clientSecretRef": {"name": "oidc"},
                    "refreshTokenSecretRef": {"name": "oidc"},
                    **oidc,
                },
            },
        },
    )


def refresh_in_secret(api: client.ApiClient, ns: str) -> str:
    secret = client.CoreV1Api(api).read_namespaced_secret("oidc", ns)
    return base64.b64decode(secret.data["refreshToken"]).decode()


def status(api: client.ApiClient, ns: str, kind: str, name: str) -> dict[str, Any]:
    return ((get(api, ns, kind, name) or {}).get("status")) or {}


def condition(st: dict[str, Any], kind: str) -> str | None:
    return next((c["status"] for c in st.get("conditions") or [] if c["type"] == kind), None)


def test_a_notebook_stays_available_across_three_access_token_expiries(
    api_client: client.ApiClient, namespace: str, sim: Simulator, operator: Path
) -> None:
    sim.configure(oidc_rotate_refresh_tokens=True)
    issuer = f"{sim.base_url}/oidc"  # type: ignore[attr-defined]
    oidc_platform(api_client, namespace, sim, "alice", "rt-alice-0", issuer=issuer)
    create(
        api_client,
        namespace,
        {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": "Session",
            "metadata": {"name": "nb"},
            "spec": {
                "platformRef": "local",
                "executable": {"template": {"dockerContainer": {"image": NOTEBOOK_IMAGE}}},
                "compute": {"template": {"type": "notebook", "cores": 2, "ramGiB": 4}},
            },
        },
    )
    wait_for(
        "Session Available and Ready",
        lambda: (
            (st := status(api_client, namespace, "Session", "nb")).get("phase") == "Available"
            and condition(st, "Ready") == "True"
        ),
        120,
    )
    platform = status(api_client, namespace, "SkahaPlatform", "local")
    credentials = platform["credentials"]
    assert credentials["type"] == "oidc"
    assert credentials["tokenEndpoint"] == f"{issuer}/token"  # discovered
    first_expiry = credentials["expiresAt"]
    compute_name = "nb-compute"
    launch = status(api_client, namespace, "Compute", compute_name)["launch"]
    skaha_name = launch["name"]

    # Watch over at least three access-token lifetimes and three refreshes at the issuer.
    start_grants = sim.oidc()["grants_by_user"].get("alice", 0)
    started = time.monotonic()
    samples = 0

    def three_expiries_later() -> bool:
        nonlocal samples
        for kind, name in (("Session", "nb"), ("Compute", compute_name)):
            st = status(api_client, namespace, kind, name)
            assert st.get("phase") == "Available", (kind, st)
            assert condition(st, "Ready") == "True", (kind, st)
        samples += 1
        refreshed = sim.oidc()["grants_by_user"].get("alice", 0) - start_grants
        return time.monotonic() - started > 3 * TTL_S and refreshed >= 3

    wait_for("three refreshes with the Session Available", three_expiries_later, 150, every=0.5)
    assert samples >= 10  # sampled all along, not once at the end
    platform = status(api_client, namespace, "SkahaPlatform", "local")
    assert platform["phase"] == "Available"
    assert platform["credentials"]["expiresAt"] != first_expiry
    assert sim.oidc()["grants"].get("invalid_grant", 0) == 0
    # Nothing refused reached a step: the driver logs every AuthError it sees.
    log = operator.read_text()
    assert "the rotated OIDC refresh token was written back" in log  # INFO lines are logged
    assert "refused our credentials" not in log
    # The issuer rotated the refresh token at each refresh; the Secret holds the live one.
    live = refresh_in_secret(api_client, namespace)
    assert live != "rt-alice-0"
    assert sim.state.config.oidc_refresh_tokens.get(live) == "alice"
    for secret in ("rt-alice-0", live, "cs-SECRET-42"):
        assert secret not in log
        assert secret not in str(get(api_client, namespace, "SkahaPlatform", "local"))

    # The Session is still released with a fresh token.
    client.CustomObjectsApi(api_client).delete_namespaced_custom_object(
        GROUP, VERSION, namespace, "sessions", "nb"
    )
    wait_for("Session gone", lambda: get(api_client, namespace, "Session", "nb") is None, 90)
    wait_for(
        "Skaha session released",
        lambda: not [s for s in sim.sessions() if s["name"] == skaha_name],
        60,
    )
    sim.configure(oidc_rotate_refresh_tokens=False)


def test_a_revoked_refresh_token_makes_the_platform_unauthorized_until_replaced(
    api_client: client.ApiClient, namespace: str, sim: Simulator, operator: Path
) -> None:
    token_url = f"{sim.base_url}/oidc/token"  # type: ignore[attr-defined]
    oidc_platform(api_client, namespace, sim, "bob", "rt-bob-0", tokenUrl=token_url)
    wait_for(
        "platform Available",
        lambda: status(api_client, namespace, "SkahaPlatform", "local").get("phase") == "Available",
        60,
    )
    sim.revoke_refresh_token("rt-bob-0")
    # The access token in use lives a few seconds more; the next refresh is refused.
    st = wait_for(
        "platform Unauthorized",
        lambda: (
            (s := status(api_client, namespace, "SkahaPlatform", "local")).get("reason")
            == "Unauthorized"
            and s
        ),
        90,
    )
    assert st["phase"] == "Preparing"
    assert condition(st, "Ready") == "False"
    assert condition(st, "Stalled") == "True"
    assert "invalid_grant: refresh token has been revoked" in st["message"]
    assert "rt-bob" not in str(st)
    assert sim.oidc()["grants"]["invalid_grant"] >= 1

    # A human puts a new refresh token into the Secret: the platform recovers by itself.
    sim.set_refresh_token("rt-bob-1", "bob")
    client.CoreV1Api(api_client).patch_namespaced_secret(
        "oidc", namespace, {"stringData": {"refreshToken": "rt-bob-1"}}
    )
    st = wait_for(
        "platform Available again",
        lambda: (
            (s := status(api_client, namespace, "SkahaPlatform", "local")).get("phase")
            == "Available"
            and s
        ),
        90,
    )
    assert condition(st, "Ready") == "True"
    assert st["credentials"]["type"] == "oidc"
