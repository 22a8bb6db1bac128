"""Peer conformance: the official `canfar` 1.5.2 client drives the simulator unchanged.

Needs the optional extra `peer` (`pip install -e '.[peer]'`). Avoiding the traps of
docs/platform-api.md §6: HOME is isolated, no `CANFAR_*` variable is set, and the URL is
`<base>/skaha/v1` (no other `/v` in the prefix, since `Overview` splits at the first `/v`).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from canfar.context import Context
from canfar.images import Images
from canfar.overview import Overview
from canfar.sessions import Session

from skaha_operator.simulator import Simulator, SimulatorConfig

NOTEBOOK_IMAGE = "images.canfar.net/skaha/astroml:latest"
HEADLESS_IMAGE = "images.canfar.net/skaha/terminal:1.1.2"
TOKEN = "tok-alice"


@pytest.fixture
def served(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Simulator, str]]:
    """A simulator in a background thread, and canfar isolated from the user's config."""
    monkeypatch.setenv("HOME", str(tmp_path))
    for key in [k for k in os.environ if k.startswith("CANFAR_")]:
        monkeypatch.delenv(key)
    sim = Simulator(
        SimulatorConfig(
            tokens={TOKEN: "alice"},
            seed=2,
            frozen_clock=True,
            pending_s=5,
            run_s=30,
            terminate_s=5,
        )
    )
    handle = sim.start_in_thread()
    try:
        yield sim, f"{handle.base_url}/skaha/v1"
    finally:
        handle.stop()
        sim.close()


def test_canfar_session_lifecycle(served: tuple[Simulator, str]) -> None:
    """create (notebook, headless×3), fetch, info, logs, events, renew, destroy, stats."""
    sim, url = served
    with Session(url=url, token=TOKEN, errors="raise") as session:
        notebook = session.create(
            name="peer-nb", image=NOTEBOOK_IMAGE, kind="notebook", cores=2, ram=8
        )
        jobs = session.create(
            name="peer-job",
            image=HEADLESS_IMAGE,
            kind="headless",
            cmd="echo",
            args="hi",
            env={"SIM_LOG": "peer-log-line"},
            replicas=3,
        )
        assert len(notebook) == 1
        assert len(jobs) == 3
        assert {s["id"] for s in sim.sessions(user="alice")} == {*notebook, *jobs}

        headless = session.fetch(kind="headless")
        assert sorted(s["name"] for s in headless) == ["peer-job-1", "peer-job-2", "peer-job-3"]
        assert {s["status"] for s in session.fetch()} == {"Pending"}

        sim.clock.advance(5)
        info = session.info(notebook)
        assert info[0]["status"] == "Running"
        assert info[0]["requestedRAM"] == "8.59"
        assert info[0]["connectURL"].endswith(f"/lab/tree/arc/home/alice?token={notebook[0]}")
        assert [s["id"] for s in session.fetch(kind="notebook", status="Running")] == notebook

        logs = session.logs(jobs[0])
        assert logs is not None
        assert "peer-log-line" in logs[jobs[0]]
        events = session.events(jobs[0])
        assert events is not None
        assert "Started" in events[0][jobs[0]]

        assert session.renew(notebook) == {notebook[0]: True}
        stats = session.stats()
        assert stats["cores"]["requestedCPUCores"] > 0

        assert session.destroy(jobs) == dict.fromkeys(jobs, True)
        assert {s["status"] for s in session.fetch(kind="headless")} == {"Terminating"}
        sim.clock.advance(5)
        assert [s["id"] for s in session.fetch()] == notebook


def test_canfar_images_context_and_availability(served: tuple[Simulator, str]) -> None:
    """Images.fetch, Context.resources and Overview.availability parse our payloads."""
    _, url = served
    with Images(url=url, token=TOKEN) as images:
        assert NOTEBOOK_IMAGE in images.fetch()
        assert images.fetch(kind="headless") == [NOTEBOOK_IMAGE, HEADLESS_IMAGE]
    with Context(url=url, token=TOKEN) as context:
        resources = context.resources()
        assert resources["maxInteractiveSessions"] == 5
        assert resources["cores"]["options"] == list(range(1, 17))
    with Overview(url=url, token=TOKEN) as overview:
        assert overview.availability() is True


def test_canfar_reports_server_rejections(served: tuple[Simulator, str]) -> None:
    """A server-side rejection (the interactive cap) surfaces through canfar's error policy."""
    sim, url = served
    sim.configure(max_sessions=1)
    with Session(url=url, token=TOKEN, errors="ignore") as session:
        assert len(session.create(name="one", image=NOTEBOOK_IMAGE, kind="notebook")) == 1
        assert session.create(name="two", image=NOTEBOOK_IMAGE, kind="notebook") == []
    assert [s["name"] for s in sim.sessions()] == ["one"]
