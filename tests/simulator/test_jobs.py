"""The operator's jobs in the simulator: downloads and notebook setups end as their command would.

Frozen clock: Pending 5 s, then the job runs 60 s (the fixture's run_s); effects appear only once
the job has Completed.
"""

from __future__ import annotations

import hashlib

import pytest

from skaha_operator.simulator import Simulator
from tests.simulator.helpers import Api

TERMINAL = "images.canfar.net/skaha/terminal:1.1.2"
PAYLOAD = b"simulated bytes\n"


def env(**values: str) -> list[str]:
    return [f"{k}={v}" for k, v in values.items()]


async def download(alice: Api, base_url: str, name: str, checksum: str = "") -> str:
    values = {
        "SKOP_JOB": "download",
        "SKOP_URL": f"{base_url}/_sim/files/{name}",
        "SKOP_DEST": "/arc/home/alice/in/f.bin",
    }
    if checksum:
        values["SKOP_CHECKSUM"] = checksum
    return await alice.launch_id(
        image=TERMINAL, name="dl", cmd="/bin/sh", args="-c $(SKOP_SCRIPT)", env=env(**values)
    )


async def logs(alice: Api, session_id: str) -> str:
    reply = await alice.call("GET", f"/skaha/v1/session/{session_id}", params={"view": "logs"})
    return reply.text


async def test_a_download_writes_the_file_only_when_it_completed(
    sim: Simulator, alice: Api, base_url: str
) -> None:
    put = await alice.call("PUT", "/_sim/files/t/f.bin", data=PAYLOAD)
    assert put.json()["sha256"] == hashlib.sha256(PAYLOAD).hexdigest()
    sid = await download(alice, base_url, "t/f.bin", "sha256:" + put.json()["sha256"])
    target = sim.state.cavern.root / "home/alice/in/f.bin"
    sim.clock.advance(30)
    assert await alice.status(sid) == "Running"
    assert not target.exists()
    sim.clock.advance(40)
    assert await alice.status(sid) == "Completed"
    assert target.read_bytes() == PAYLOAD
    assert "downloaded" in await logs(alice, sid)
    assert [(kind, s) for kind, s, _ in sim.state.jobs.log] == [("download", sid)]


@pytest.mark.parametrize(
    ("name", "checksum", "error"),
    [
        ("absent.bin", "", "curl: (22) The requested URL returned error: 404"),
        ("t/f.bin", "sha256:" + "0" * 64, "sha256sum: WARNING: 1 computed checksum did NOT match"),
    ],
)
async def test_a_download_fails_on_404_or_a_checksum_mismatch(
    sim: Simulator, alice: Api, base_url: str, name: str, checksum: str, error: str
) -> None:
    await alice.call("PUT", "/_sim/files/t/f.bin", data=PAYLOAD)
    sid = await download(alice, base_url, name, checksum)
    sim.clock.advance(70)
    assert await alice.status(sid) == "Failed"
    assert error in await logs(alice, sid)
    assert not (sim.state.cavern.root / "home/alice/in/f.bin").exists()


async def test_the_simulator_cannot_reach_other_hosts(sim: Simulator, alice: Api) -> None:
    sid = await alice.launch_id(
        image=TERMINAL,
        name="dl",
        env=env(SKOP_JOB="download", SKOP_URL="https://example.org/x", SKOP_DEST="/arc/home/a"),
    )
    sim.clock.advance(70)
    assert await alice.status(sid) == "Failed"
    assert "Could not resolve host: example.org" in await logs(alice, sid)


async def test_a_download_deleted_before_it_ends_leaves_no_file(
    sim: Simulator, alice: Api, base_url: str
) -> None:
    await alice.call("PUT", "/_sim/files/t/f.bin", data=PAYLOAD)
    sid = await download(alice, base_url, "t/f.bin")
    sim.clock.advance(10)
    assert (await alice.call("DELETE", f"/skaha/v1/session/{sid}")).status == 200
    sim.clock.advance(100)
    await alice.sessions()
    assert not (sim.state.cavern.root / "home/alice/in/f.bin").exists()


async def setup_job(sim: Simulator, alice: Api, requirements: str) -> str:
    (sim.state.cavern.root / "home/alice/nb").mkdir(parents=True)
    (sim.state.cavern.root / "home/alice/nb/a-requirements.txt").write_text(requirements)
    return await alice.launch_id(
        name="nb",
        env=env(
            SKOP_JOB="notebook-setup",
            SKOP_DIR="/arc/home/alice/nb",
            SKOP_NOTEBOOK="/arc/home/alice/nb/a.ipynb",
            SKOP_REQUIREMENTS="/arc/home/alice/nb/a-requirements.txt",
            SKOP_ENV="/arc/home/alice/nb/.venv-a",
        ),
    )


async def test_a_setup_job_installs_into_the_environment(sim: Simulator, alice: Api) -> None:
    sid = await setup_job(sim, alice, "numpy>=2\nastropy\n")
    sim.clock.advance(70)
    assert await alice.status(sid) == "Completed"
    assert "Successfully installed numpy-1.0 astropy-1.0" in await logs(alice, sid)
    assert (sim.state.cavern.root / "home/alice/nb/.venv-a/pyvenv.cfg").is_file()


async def test_a_setup_job_fails_for_a_requirement_pip_cannot_find(
    sim: Simulator, alice: Api
) -> None:
    sim.configure(pip_unavailable=["nope"])
    sid = await setup_job(sim, alice, "numpy\nnope==1.0\n")
    sim.clock.advance(70)
    assert await alice.status(sid) == "Failed"
    assert "ERROR: No matching distribution found for nope" in await logs(alice, sid)
    assert not (sim.state.cavern.root / "home/alice/nb/.venv-a").exists()


async def test_the_demo_payload_is_served_by_default(alice: Api) -> None:
    reply = await alice.call("GET", "/_sim/files/demo/catalogue.fits")
    assert reply.status == 200
    assert reply.text.startswith("SIMPLE")
    assert (await alice.call("GET", "/_sim/files/none")).status == 404
