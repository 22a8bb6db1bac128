"""decide_notebook, table-driven: storage, upload (URL or ConfigMap), the setup job; connect URL."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from skaha_operator.domain.common import Phase
from skaha_operator.domain.jupyter_notebook import JupyterNotebook
from skaha_operator.reconcile.compute import open_file_url
from skaha_operator.reconcile.data import StorageView
from skaha_operator.reconcile.jobs import make_job_name
from skaha_operator.reconcile.launch import LaunchView, Seen
from skaha_operator.reconcile.notebook import (
    NotebookDecision,
    NotebookObservation,
    decide_notebook,
    files_at,
    notebook_file_name,
    notebook_files,
    placed_files,
)
from skaha_operator.reconcile.timing import Timing

NOW = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)
T = Timing()
UID = "9a7c5a4e-1111-2222-3333-444455556666"
IMAGE = "images.canfar.net/skaha/astroml:latest"
STORAGE = StorageView("work", Phase.AVAILABLE, "/arc/home/alice/w")
URL_SOURCE = {"url": "https://example.org/nb/spectra.ipynb"}
CM_SOURCE = {"configMapRef": {"name": "nb", "key": "analysis"}}


def make(
    source: dict[str, Any], status: dict[str, Any] | None = None, **spec: Any
) -> JupyterNotebook:
    return JupyterNotebook.model_validate(
        {
            "metadata": {"name": "n", "namespace": "ns", "uid": UID, "generation": 1},
            "spec": {
                "platformRef": "local",
                "image": IMAGE,
                "notebook": source,
                "storageRef": "work",
                "requirements": ["astropy>=6", "numpy"],
                **spec,
            },
            "status": status,
        }
    )


def obs(**kw: Any) -> NotebookObservation:
    base: dict[str, Any] = {"now": NOW, "platform_ready": True, "storage": STORAGE}
    return NotebookObservation(**(base | kw))


def acts(d: NotebookDecision) -> bool:
    return bool(d.upload or d.job or d.delete_jobs or d.delete_paths)


def conditions(d: NotebookDecision) -> dict[str, str]:
    return {c.type: c.status for c in d.status.conditions or []}


@pytest.mark.parametrize(
    ("source", "name"),
    [
        (URL_SOURCE, "spectra.ipynb"),
        ({"url": "https://example.org/"}, "notebook.ipynb"),
        (CM_SOURCE, "analysis.ipynb"),
        ({"configMapRef": {"name": "nb", "key": "a.ipynb"}}, "a.ipynb"),
    ],
)
def test_notebook_file_name(source: dict[str, Any], name: str) -> None:
    assert notebook_file_name(make(source)) == name


def test_files_are_per_notebook_inside_the_storage_path() -> None:
    files = notebook_files(make(URL_SOURCE, path="tut"), "/arc/home/alice/w")
    assert files == files_at("/arc/home/alice/w/tut", "spectra.ipynb")
    assert (files.notebook, files.requirements, files.environment) == (
        "/arc/home/alice/w/tut/spectra.ipynb",
        "/arc/home/alice/w/tut/spectra-requirements.txt",
        "/arc/home/alice/w/tut/.venv-spectra",
    )


@pytest.mark.parametrize(
    ("kw", "reason"),
    [
        ({"platform_ready": False}, "WaitingForPlatform"),
        ({"storage": None}, "WaitingForStorage"),
        ({"config_map_found": False}, "WaitingForConfigMap"),
    ],
)
def test_the_notebook_waits(kw: dict[str, Any], reason: str) -> None:
    d = decide_notebook(make(CM_SOURCE), obs(**kw), T)
    assert (d.status.phase, d.status.reason, acts(d)) == (Phase.PREPARING, reason, False)


@pytest.mark.parametrize(
    ("source", "notebook_node", "config_map"),
    [
        (URL_SOURCE, None, None),  # the setup job fetches a URL inside the platform
        (CM_SOURCE, "home/alice/w/analysis.ipynb", ("nb", "analysis")),
    ],
)
def test_the_upload_puts_requirements_and_a_config_map_notebook(
    source: dict[str, Any], notebook_node: str | None, config_map: tuple[str, str] | None
) -> None:
    d = decide_notebook(make(source), obs(config_map_found=True), T)
    assert d.job is None
    plan = d.upload
    assert plan is not None
    stem = notebook_file_name(make(source)).removesuffix(".ipynb")
    assert plan.directory_node == "home/alice/w"
    assert plan.requirements_node == f"home/alice/w/{stem}-requirements.txt"
    assert plan.requirements == b"astropy>=6\nnumpy\n"
    assert (plan.notebook_node, plan.config_map) == (notebook_node, config_map)
    assert d.status.notebook_path == f"/arc/home/alice/w/{stem}.ipynb"


UPLOADED = {"phase": "Preparing", "notebookPath": "/arc/home/alice/w/spectra.ipynb"}


def test_after_the_upload_the_setup_job_runs_on_the_notebook_image() -> None:
    d = decide_notebook(make(URL_SOURCE, UPLOADED), obs(), T)
    assert d.upload is None
    job = d.job
    assert job is not None
    assert (job.name, job.image) == (make_job_name("nb", UID, 1), IMAGE)
    assert {k: v for k, v in job.env.items() if k != "SKOP_SCRIPT"} == {
        "SKOP_JOB": "notebook-setup",
        "SKOP_DIR": "/arc/home/alice/w",
        "SKOP_NOTEBOOK": "/arc/home/alice/w/spectra.ipynb",
        "SKOP_REQUIREMENTS": "/arc/home/alice/w/spectra-requirements.txt",
        "SKOP_ENV": "/arc/home/alice/w/.venv-spectra",
        "SKOP_NOTEBOOK_URL": URL_SOURCE["url"],
    }
    assert "pip install" in job.env["SKOP_SCRIPT"]
    assert d.status.job is not None
    assert (d.status.job.name, d.status.job.pending_since) == (job.name, NOW)


NAME2 = make_job_name("nb", UID, 2)


def running(phase: str = "Preparing", **job: Any) -> dict[str, Any]:
    return UPLOADED | {
        "phase": phase,
        "job": {
            "name": NAME2,
            "pendingSince": "2030-01-01T11:59:30Z",
            "attempts": 2,
            "id": "abc12345",
            **job,
        },
    }


PIP = "ERROR: No matching distribution found for nope"


@pytest.mark.parametrize(
    ("state", "detail", "phase", "reason"),
    [
        ("Running", None, Phase.PREPARING, "JobRunning"),
        ("Completed", None, Phase.AVAILABLE, "NotebookReady"),
        ("Failed", PIP, Phase.FAILED, "NotebookSetupFailed"),
    ],
)
def test_the_setup_job_decides_the_notebook(
    state: str, detail: str | None, phase: Phase, reason: str
) -> None:
    view = LaunchView(by_id=Seen("abc12345", NAME2, state=state))
    d = decide_notebook(make(URL_SOURCE, running()), obs(job=view, job_detail=detail), T)
    assert (d.status.phase, d.status.reason) == (phase, reason)
    assert d.status.job is not None
    assert d.status.job.observed == state
    if detail:
        assert (d.status.message or "").endswith(detail)
        assert conditions(d) == {"Ready": "False", "Stalled": "True"}


def test_a_setup_job_removed_before_its_outcome_was_seen() -> None:
    d = decide_notebook(
        make(URL_SOURCE, running(observed="Running")), obs(job=LaunchView(gone=True)), T
    )
    assert (d.status.phase, d.status.reason) == (Phase.FAILED, "OutcomeNotObserved")
    assert "not observed" in (d.status.message or "")


def test_a_refused_setup_job_fails_with_the_answer() -> None:
    d = decide_notebook(make(URL_SOURCE, UPLOADED), obs(refused="400: bad image"), T)
    assert (d.status.phase, d.status.reason) == (Phase.FAILED, "JobRejected")
    assert (d.status.message or "").endswith("400: bad image")


def test_an_available_notebook_is_left_alone() -> None:
    nb = make(URL_SOURCE, running("Available"))
    d = decide_notebook(nb, obs(), T)
    assert (d.status, d.write, acts(d), d.requeue_after) == (nb.status, False, False, None)


# -- release -------------------------------------------------------------------------------------

NODES = (
    "home/alice/w/.venv-spectra",
    "home/alice/w/spectra-requirements.txt",
    "home/alice/w/spectra.ipynb",
)
OLD = "2030-01-01T11:50:00Z"
LIVE = LaunchView(listed=(Seen("abc12345", NAME2, "Running"),))


def test_placed_files_come_from_the_recorded_path() -> None:
    nb = make(URL_SOURCE, UPLOADED)
    assert nb.status is not None
    assert placed_files(nb.status) == files_at("/arc/home/alice/w", "spectra.ipynb")


@pytest.mark.parametrize(
    ("status", "kw", "phase", "delete_jobs", "paths", "released"),
    [
        (running(), {"users": ("c1",)}, Phase.RELEASING, (), (), False),
        (running(), {"job": LIVE}, Phase.RELEASING, ("abc12345",), (), False),
        # a re-sent launch inside its grace: an earlier attempt may still commit
        (running(), {"job": LaunchView(listed=())}, Phase.RELEASING, (), (), False),
        (running(pendingSince=OLD), {"job": LaunchView(listed=())}, None, (), NODES, True),
        (UPLOADED, {}, None, (), NODES, True),  # uploaded, no job yet
        (None, {}, None, (), (), True),  # nothing placed
        (running("Failed"), {"job": LIVE}, None, ("abc12345",), (), False),  # not written
    ],
)
def test_release_stops_the_job_then_removes_the_files(
    status: dict[str, Any] | None,
    kw: dict[str, Any],
    phase: Phase | None,
    delete_jobs: tuple[str, ...],
    paths: tuple[str, ...],
    released: bool,
) -> None:
    nb = make(URL_SOURCE, status)
    d = decide_notebook(nb, obs(deleting=True, **kw), T)
    assert (d.delete_jobs, d.delete_paths, d.released) == (delete_jobs, paths, released)
    if phase is None:
        assert d.write is False
        assert d.status == (nb.status or d.status)
    else:
        assert d.status.phase == phase
    if kw.get("users"):
        assert d.status.message == "still used by Compute c1"


def test_release_retains_the_files_under_retain() -> None:
    nb = make(URL_SOURCE, running(pendingSince=OLD), releasePolicy="Retain")
    d = decide_notebook(nb, obs(deleting=True, job=LaunchView(listed=())), T)
    assert (d.delete_paths, d.released) == ((), True)


def test_an_unreachable_platform_blocks_release_until_abandoned() -> None:
    nb = make(URL_SOURCE, running())
    d = decide_notebook(nb, obs(deleting=True, reachable=False), T)
    assert (d.status.phase, d.status.reason, d.released) == (
        Phase.RELEASING,
        "ReleaseBlocked",
        False,
    )
    assert conditions(d)["Stalled"] == "True"
    assert d.warning == d.status.message
    assert "skaha.broker.dev/abandon=true" in (d.warning or "")
    d = decide_notebook(nb, obs(deleting=True, reachable=False, abandon=True), T)
    assert (d.released, d.write) == (True, False)
    assert (d.warning or "").startswith("abandoned notebook setup job abc12345")


@pytest.mark.parametrize(
    ("url", "path", "opened"),
    [
        (
            "https://h/session/notebook/ab12cd34/lab/tree/arc/home/alice?token=ab12cd34",
            "/arc/home/alice/w/spectra.ipynb",
            "https://h/session/notebook/ab12cd34/lab/tree/arc/home/alice/w/spectra.ipynb"
            "?token=ab12cd34",
        ),
        (
            "https://h/session/notebook/x/lab/tree/arc/home/alice",
            "/arc/projects/p/a.ipynb",
            "https://h/session/notebook/x/lab/tree/arc/projects/p/a.ipynb",
        ),
        ("https://h/session/desktop/x/", "/arc/home/a.ipynb", "https://h/session/desktop/x/"),
    ],
)
def test_open_file_url_appends_the_notebook_to_the_lab_tree(
    url: str, path: str, opened: str
) -> None:
    assert open_file_url(url, path) == opened
