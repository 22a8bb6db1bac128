"""An OIDC credential outlives the operator process: with an issuer that rotates refresh tokens
and refuses a used one, the token written back to the Secret is what a restarted operator starts
from (docs/install.md §3.1, "Rotated refresh tokens").
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from kubernetes import client

from skaha_operator.controlplane import ControlPlane
from skaha_operator.simulator import Simulator, SimulatorConfig
from tests.integration.operator_harness import operator_process, wait_for
from tests.integration.test_oidc_credentials import oidc_platform, refresh_in_secret, status

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def sim() -> Iterator[Simulator]:
    """An issuer that rotates refresh tokens (a used one is refused) and 7-second access tokens."""
    simulator = Simulator(
        SimulatorConfig(
            tokens={},
            oidc_refresh_tokens={"rt-carol-0": "carol"},
            oidc_clients={"skaha-operator": "cs-SECRET-42"},
            oidc_rotate_refresh_tokens=True,
            access_token_ttl_s=7.0,
            seed=13,
        )
    )
    handle = simulator.start_in_thread()
    simulator.base_url = handle.base_url  # type: ignore[attr-defined]
    try:
        yield simulator
    finally:
        handle.stop()
        simulator.close()


def grants(sim: Simulator, outcome: str) -> int:
    return int(sim.oidc()["grants"].get(outcome, 0))


def test_a_restarted_operator_starts_from_the_written_back_refresh_token(
    api_client: client.ApiClient,
    namespace: str,
    sim: Simulator,
    controlplane: ControlPlane,
    crds: list[str],
    tmp_path: Path,
) -> None:
    token_url = f"{sim.base_url}/oidc/token"  # type: ignore[attr-defined]
    oidc_platform(api_client, namespace, sim, "carol", "rt-carol-0", tokenUrl=token_url)
    first_log, second_log = tmp_path / "first.log", tmp_path / "second.log"
    with operator_process(controlplane, first_log) as proc:
        wait_for(
            "platform Available",
            lambda: (
                status(api_client, namespace, "SkahaPlatform", "local").get("phase") == "Available"
            ),
            60,
        )
        wait_for(
            "the rotated refresh token written back",
            lambda: refresh_in_secret(api_client, namespace) != "rt-carol-0",
            60,
        )
        assert proc.poll() is None, first_log.read_text()[-3000:]
    stored = refresh_in_secret(api_client, namespace)
    assert sim.state.config.oidc_refresh_tokens == {stored: "carol"}  # the only live one
    assert grants(sim, "invalid_grant") == 0
    before = grants(sim, "ok")
    restarted = datetime.now(UTC)

    with operator_process(controlplane, second_log) as proc:

        def probed_again() -> bool:
            st = status(api_client, namespace, "SkahaPlatform", "local")
            probed = st.get("lastProbeTime")
            return (
                probed is not None
                and datetime.fromisoformat(probed.replace("Z", "+00:00"))
                >= restarted.replace(microsecond=0)
                and grants(sim, "ok") > before
                and st.get("phase") == "Available"
            )

        wait_for("the restarted operator probes with a fresh grant", probed_again, 90)
        assert proc.poll() is None, second_log.read_text()[-3000:]
    assert grants(sim, "invalid_grant") == 0
    st = status(api_client, namespace, "SkahaPlatform", "local")
    assert st["reason"] == "PlatformReady"
    assert st["credentials"]["type"] == "oidc"
