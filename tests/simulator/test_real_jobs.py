"""Headless sessions run for real: podman containers on the Debian stand-in image.

Needs podman and the stand-in image, which `make setup` installs and builds (hack/podman.sh);
without them these tests fail (they never skip). The operator's own job scripts run unchanged:
the download (curl, sha256sum) against a file the simulator serves on 127.0.0.1, and the notebook
setup (venv, pip) against a package index on 127.0.0.1 holding a wheel built here. Containers use
the host network, so they reach nothing but this machine's loopback servers.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import http.server
import os
import subprocess
import threading
import time
import zipfile
from collections.abc import AsyncIterator, Iterator
from functools import partial
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from pydantic import SecretStr

from skaha_operator.domain.data import Data
from skaha_operator.domain.jupyter_notebook import JupyterNotebook
from skaha_operator.platform.clients import PlatformClients, PlatformSettings
from skaha_operator.reconcile.data import download_job
from skaha_operator.reconcile.jobs import JobPlan
from skaha_operator.reconcile.notebook import files_at, setup_job
from skaha_operator.simulator import Simulator, SimulatorConfig
from skaha_operator.simulator.containers import LABEL, engine_environment, probe_engine
from tests.simulator.helpers import Api

pytestmark = pytest.mark.containers

TERMINAL = "images.canfar.net/skaha/terminal:1.1.2"
NOTEBOOK_IMAGE = "images.canfar.net/skaha/astroml:latest"
PAYLOAD = b"real bytes for a real download\n"
DEADLINE_S = 120.0
TERMINAL_STATES = {"Completed", "Failed"}


@pytest.fixture(scope="module")
def engine_ready() -> None:
    """podman and the stand-in image must be there: `make setup` puts them there."""
    config = SimulatorConfig()
    engine, reason = probe_engine(config.job_engine, config.job_standin_image)
    if engine is None:
        pytest.fail(f"{reason}; run `make setup` (hack/podman.sh install standin)")


class Index:
    """A PEP 503 simple index on 127.0.0.1 serving one wheel (the host network reaches it)."""

    def __init__(self, root: Path) -> None:
        handler = partial(QuietHandler, directory=str(root))
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/simple/"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(10)


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        """No request log on stderr."""


def build_wheel(directory: Path, name: str = "skop_probe", version: str = "1.0") -> Path:
    """A pure-Python wheel made by hand: a module, METADATA, WHEEL and a hashed RECORD."""
    dist = f"{name}-{version}"
    files = {
        f"{name}/__init__.py": b'VALUE = "probe installed"\n',
        f"{dist}.dist-info/METADATA": (
            f"Metadata-Version: 2.1\nName: {name.replace('_', '-')}\nVersion: {version}\n"
        ).encode(),
        f"{dist}.dist-info/WHEEL": (
            b"Wheel-Version: 1.0\nGenerator: skaha-operator-tests\n"
            b"Root-Is-Purelib: true\nTag: py3-none-any\n"
        ),
    }
    record = []
    for path, data in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        record.append(f"{path},sha256={digest},{len(data)}")
    record.append(f"{dist}.dist-info/RECORD,,")
    files[f"{dist}.dist-info/RECORD"] = ("\n".join(record) + "\n").encode()
    wheel = directory / f"{dist}-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        for path, data in files.items():
            archive.writestr(path, data)
    return wheel


@pytest.fixture(scope="module")
def index(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Index]:
    root = tmp_path_factory.mktemp("index")
    project = root / "simple" / "skop-probe"
    project.mkdir(parents=True)
    wheel = build_wheel(project)
    (project / "index.html").write_text(f'<a href="{wheel.name}">{wheel.name}</a>\n')
    (root / "simple" / "index.html").write_text('<a href="skop-probe/">skop-probe</a>\n')
    served = Index(root)
    yield served
    served.close()


@pytest.fixture
async def sim(engine_ready: None, index: Index) -> AsyncIterator[Simulator]:
    """A running-clock simulator whose headless sessions are containers; none is left after."""
    simulator = Simulator(
        SimulatorConfig(
            tokens={"tok-alice": "alice"},
            job_mode="container",
            pending_s=0,
            job_stop_grace_s=1,
            # The site's package index, as a platform would configure it for every job.
            job_env={"PIP_INDEX_URL": index.url},
        )
    )
    assert simulator.job_runner.mode == "container", simulator.job_runner
    runner = simulator.state.jobs.containers
    assert runner is not None
    yield simulator
    simulator.close()
    assert leftover_containers(runner.instance) == []


def leftover_containers(instance: str) -> list[str]:
    """This simulator's containers (others may run on the machine at the same time)."""
    done = subprocess.run(
        ["podman", "ps", "--all", "--quiet", "--filter", f"label={LABEL}={instance}"],
        capture_output=True, text=True, env=engine_environment(), timeout=60, check=True,
    )  # fmt: skip
    return done.stdout.split()


@pytest.fixture
async def alice(sim: Simulator) -> AsyncIterator[Api]:
    async with (
        sim.serve() as running,
        aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60)) as http,
    ):
        yield Api(http, running.base_url, "tok-alice")


async def wait_status(
    alice: Api, sid: str, wanted: set[str], deadline_s: float = DEADLINE_S
) -> str:
    """Poll until the session's status is one of `wanted` (404 reads as "gone")."""
    until = time.monotonic() + deadline_s
    seen = ""
    while time.monotonic() < until:
        reply = await alice.session(sid)
        seen = "gone" if reply.status == 404 else reply.json()["status"]
        if seen in wanted:
            return seen
        await asyncio.sleep(0.1)
    raise AssertionError(f"session {sid} still {seen!r} after {deadline_s} s, wanted {wanted}")


async def logs(alice: Api, sid: str) -> str:
    reply = await alice.call("GET", f"/skaha/v1/session/{sid}", params={"view": "logs"})
    assert reply.status == 200, reply.text
    return reply.text


async def launch_plan(alice: Api, plan: JobPlan) -> str:
    """Launch a job exactly as the operator does (its JobPlan: image, cmd, args, env)."""
    return await alice.launch_id(
        name=plan.name,
        image=plan.image,
        cmd=plan.cmd,
        args=plan.args,
        env=[f"{k}={v}" for k, v in plan.env.items()],
    )


# -- commands, environment, lifecycle --------------------------------------------------------------


async def test_env_logs_the_post_env_and_skahas_variables_and_completes(alice: Api) -> None:
    """The Skaha docs' example: cmd=env with TEST=test (REPLICA_* as the canfar client sends)."""
    sid = await alice.launch_id(
        image=TERMINAL,
        name="env-job",
        cmd="env",
        env=["TEST=test", "REPLICA_ID=1", "REPLICA_COUNT=1"],
    )
    assert await wait_status(alice, sid, TERMINAL_STATES) == "Completed"
    lines = set((await logs(alice, sid)).splitlines())
    for line in (
        "TEST=test",
        "REPLICA_ID=1",
        "REPLICA_COUNT=1",
        f"skaha_sessionid={sid}",
        "skaha_username=alice",
        "HOME=/arc/home/alice",
    ):
        assert line in lines
    assert not any(line.startswith("TERM=") for line in lines)  # no engine additions


async def test_a_failing_command_fails_the_session(alice: Api) -> None:
    sid = await alice.launch_id(image=TERMINAL, name="false-job", cmd="false")
    assert await wait_status(alice, sid, TERMINAL_STATES) == "Failed"


async def test_args_are_split_on_spaces_and_expanded_as_kubernetes_does(alice: Api) -> None:
    sid = await alice.launch_id(
        image=TERMINAL,
        name="printf-job",
        cmd="printf",
        args="%s| a  b $(GREETING) $$(GREETING) $(MISSING)",
        env=["GREETING=hi"],
    )
    assert await wait_status(alice, sid, TERMINAL_STATES) == "Completed"
    assert await logs(alice, sid) == "a||b|hi|$(GREETING)|$(MISSING)|"


async def test_stdout_and_stderr_are_the_logs_while_running_and_after(alice: Api) -> None:
    sid = await alice.launch_id(
        image=TERMINAL,
        name="talk-job",
        cmd="/bin/sh",
        args="-c $(S)",
        env=["S=echo out; echo err >&2; sleep 2; echo done; exit 3"],
    )
    assert await wait_status(alice, sid, {"Running"}) == "Running"
    until = time.monotonic() + 30
    while "err" not in await logs(alice, sid):
        assert time.monotonic() < until, "no log while running"
        await asyncio.sleep(0.1)
    assert await wait_status(alice, sid, TERMINAL_STATES) == "Failed"
    assert (await logs(alice, sid)).split() == ["out", "err", "done"]


async def test_delete_stops_the_container_terminating_then_gone(alice: Api, sim: Simulator) -> None:
    sid = await alice.launch_id(image=TERMINAL, name="sleep-job", cmd="sleep", args="600")
    await wait_status(alice, sid, {"Running"})
    assert (await alice.call("DELETE", f"/skaha/v1/session/{sid}")).status == 200
    assert (await alice.session(sid)).json()["status"] == "Terminating"
    await wait_status(alice, sid, {"gone"}, deadline_s=60)
    runner = sim.state.jobs.containers
    assert runner is not None
    assert leftover_containers(runner.instance) == []  # nothing else is running


async def test_finished_sessions_follow_the_ttl(alice: Api, sim: Simulator) -> None:
    sid = await alice.launch_id(image=TERMINAL, name="ttl-job", cmd="true")
    assert await wait_status(alice, sid, TERMINAL_STATES) == "Completed"
    sim.clock.advance(sim.config.ttl_headless_s - 5)
    assert await alice.status(sid) == "Completed"
    sim.clock.advance(10)
    assert (await alice.session(sid)).status == 404


async def test_a_job_writes_its_home_and_the_projects(alice: Api, sim: Simulator) -> None:
    """Runs as alice's uid in /arc/home/alice; directories Cavern made stay writable for it."""
    (sim.state.cavern.root / "projects" / "survey" / "out").mkdir(parents=True)
    script = "pwd; echo a > out.txt; echo b > /arc/projects/survey/out/b.txt; id -u"
    sid = await alice.launch_id(
        image=TERMINAL, name="write-job", cmd="/bin/sh", args="-c $(S)", env=[f"S={script}"]
    )
    assert await wait_status(alice, sid, TERMINAL_STATES) == "Completed", await logs(alice, sid)
    lines = (await logs(alice, sid)).split()
    assert lines[0] == "/arc/home/alice"
    root = sim.state.cavern.root
    assert (root / "home" / "alice" / "out.txt").read_text() == "a\n"
    assert (root / "projects" / "survey" / "out" / "b.txt").read_text() == "b\n"
    if os.geteuid() == 0:
        assert lines[1] == str(sim.state.sessions.find(sid).uid)


async def test_fixed_resources_limit_the_container(alice: Api, sim: Simulator) -> None:
    reply = await alice.call("GET", "/_sim/config")
    runner = reply.json()["job_runner"]
    assert runner["mode"] == "container"
    assert runner["resource_limits"] is sim.job_runner.limits
    if not sim.job_runner.limits:
        return  # the engine refused limits here, and /_sim/config says so
    script = (
        "cat /sys/fs/cgroup/memory.max 2>/dev/null || "
        "cat /sys/fs/cgroup/memory/memory.limit_in_bytes"
    )
    sid = await alice.launch_id(
        image=TERMINAL, name="mem-job", cores="1", ram="2", cmd="/bin/sh", args="-c $(S)",
        env=[f"S={script}"],
    )  # fmt: skip
    assert await wait_status(alice, sid, TERMINAL_STATES) == "Completed"
    assert (await logs(alice, sid)).strip() == str(2 * 1024**3)


async def test_interactive_sessions_stay_emulated(alice: Api) -> None:
    sid = await alice.launch_id(image=NOTEBOOK_IMAGE, name="nb", type="notebook")
    assert await wait_status(alice, sid, {"Running"}) == "Running"
    assert "Jupyter Server is running" in await logs(alice, sid)


# -- the operator's download job -------------------------------------------------------------------


def data(url: str, checksum: str | None) -> Data:
    http: dict[str, str] = {"url": url}
    if checksum:
        http["checksum"] = checksum
    return Data.model_validate(
        {
            "metadata": {"name": "d", "namespace": "ns", "uid": "u-1", "generation": 1},
            "spec": {"platformRef": "local", "storageRef": "work", "http": http},
        }
    )


async def download(alice: Api, sim: Simulator, name: str, checksum: str | None) -> str:
    sim.state.jobs.files["in/cat.fits"] = PAYLOAD
    url = f"{alice.base}/_sim/files/{name}"
    (sim.state.cavern.root / "home" / "alice" / "work").mkdir(parents=True, exist_ok=True)
    plan = download_job(data(url, checksum), "/arc/home/alice/work/cat.fits", TERMINAL, "dl-d")
    return await launch_plan(alice, plan)


async def test_the_download_script_fetches_and_checks_in_a_container(
    alice: Api, sim: Simulator
) -> None:
    checksum = "sha256:" + hashlib.sha256(PAYLOAD).hexdigest()
    sid = await download(alice, sim, "in/cat.fits", checksum)
    assert await wait_status(alice, sid, TERMINAL_STATES) == "Completed", await logs(alice, sid)
    text = await logs(alice, sid)
    assert "/arc/home/alice/work/cat.fits.part: OK" in text  # sha256sum's own line
    assert f"downloaded {alice.base}/_sim/files/in/cat.fits" in text
    target = sim.state.cavern.root / "home" / "alice" / "work" / "cat.fits"
    assert target.read_bytes() == PAYLOAD
    if os.geteuid() == 0:
        assert target.stat().st_uid == sim.state.sessions.find(sid).uid  # written as the user


async def test_a_checksum_mismatch_is_rejected_by_sha256sum(alice: Api, sim: Simulator) -> None:
    sid = await download(alice, sim, "in/cat.fits", "sha256:" + "0" * 64)
    assert await wait_status(alice, sid, TERMINAL_STATES) == "Failed"
    text = await logs(alice, sid)
    assert "cat.fits.part: FAILED" in text
    assert "sha256sum: WARNING: 1 computed checksum did NOT match" in text
    work = sim.state.cavern.root / "home" / "alice" / "work"
    assert sorted(p.name for p in work.iterdir()) == []  # no file, no partial file


async def test_a_missing_file_is_reported_by_curl(alice: Api, sim: Simulator) -> None:
    sid = await download(alice, sim, "in/nope.fits", None)
    assert await wait_status(alice, sid, TERMINAL_STATES) == "Failed"
    assert "curl: (22) The requested URL returned error: 404" in await logs(alice, sid)


# -- the operator's notebook setup job -------------------------------------------------------------


def notebook(url: str) -> JupyterNotebook:
    return JupyterNotebook.model_validate(
        {
            "metadata": {"name": "n", "namespace": "ns", "uid": "u-2", "generation": 1},
            "spec": {
                "platformRef": "local",
                "image": NOTEBOOK_IMAGE,
                "notebook": {"url": url},
                "storageRef": "work",
                "requirements": ["skop-probe==1.0"],
            },
        }
    )


async def setup(alice: Api, sim: Simulator, requirements: str) -> tuple[str, Path]:
    """Upload what the operator uploads (the requirements file), then run its setup job."""
    sim.state.jobs.files["nb/analysis.ipynb"] = b'{"cells": [], "nbformat": 4}\n'
    directory = sim.state.cavern.root / "home" / "alice" / "nbs"
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "analysis-requirements.txt").write_text(requirements)
    nb = notebook("https://notebooks.example.org/nb/analysis.ipynb")
    plan = setup_job(nb, files_at("/arc/home/alice/nbs", "analysis.ipynb"), "nb-n")
    # Notebook URLs must be https (the CRD); here the file comes from the simulator on loopback.
    plan.env["SKOP_NOTEBOOK_URL"] = f"{alice.base}/_sim/files/nb/analysis.ipynb"
    return await launch_plan(alice, plan), directory


async def test_the_setup_script_installs_requirements_from_the_site_index(
    alice: Api, sim: Simulator
) -> None:
    sid, directory = await setup(alice, sim, "skop-probe==1.0\n")
    assert await wait_status(alice, sid, TERMINAL_STATES) == "Completed", await logs(alice, sid)
    text = await logs(alice, sid)
    assert "Successfully installed skop-probe-1.0" in text  # pip's own words
    assert (directory / "analysis.ipynb").read_bytes().startswith(b'{"cells"')
    venv = directory / ".venv-analysis"
    assert (venv / "pyvenv.cfg").read_text().count("include-system-site-packages = true") == 1
    installed = list(venv.glob("lib/python3*/site-packages/skop_probe/__init__.py"))
    assert len(installed) == 1


async def test_the_storage_release_removes_what_the_setup_job_made(
    alice: Api, sim: Simulator
) -> None:
    """The operator's Storage release (Cavern, children first) copes with a real virtualenv:
    its symbolic links are LinkNodes, deleted as links."""
    sid, directory = await setup(alice, sim, "skop-probe==1.0\n")
    assert await wait_status(alice, sid, TERMINAL_STATES) == "Completed", await logs(alice, sid)
    assert (directory / ".venv-analysis" / "lib64").is_symlink()
    base, token = alice.base, SecretStr("tok-alice")
    settings = PlatformSettings(skaha_url=f"{base}/skaha", cavern_url=f"{base}/arc", token=token)
    clients = PlatformClients.create(settings)
    try:
        removed = await asyncio.wait_for(clients.cavern.delete_tree("home/alice/nbs"), 120)
    finally:
        await clients.aclose()
    assert removed > 100  # pip, the package, the notebook, the requirements
    assert not directory.exists()


async def test_a_missing_package_fails_with_pips_message(alice: Api, sim: Simulator) -> None:
    sid, _ = await setup(alice, sim, "skop-no-such-package\n")
    assert await wait_status(alice, sid, TERMINAL_STATES) == "Failed"
    text = await logs(alice, sid)
    assert "ERROR: No matching distribution found for skop-no-such-package" in text


async def test_without_a_site_index_pip_uses_the_simulators_stand_in_index(
    alice: Api, sim: Simulator
) -> None:
    """The demo's requirements install from `/_sim/pypi/simple/`; pip_unavailable is a 404."""
    sim.configure(job_env={}, pip_unavailable=["no-such-thing"])
    sid, _ = await setup(alice, sim, "astropy>=6\nspecutils==1.15.0  # pinned\n")
    assert await wait_status(alice, sid, TERMINAL_STATES) == "Completed", await logs(alice, sid)
    assert "Successfully installed astropy-6 specutils-1.15.0" in await logs(alice, sid)
    sid, _ = await setup(alice, sim, "no-such-thing\n")
    assert await wait_status(alice, sid, TERMINAL_STATES) == "Failed"
    assert "No matching distribution found for no-such-thing" in await logs(alice, sid)
