"""decide_notebook, table-driven: storage, upload (URL or ConfigMap), the setup job; connect URL."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from skaha_operator.domain.common import Phase
from skaha_operator.domain.jupyter_notebook import JupyterNotebook
from skaha_operator.reconcile.compute import open_file_url
from skaha_operator.reconcile.data import StorageView
from skaha_operator.reconcile.jobs import JobView, make_job_name
from skaha_operator.reconcile.notebook import (
    NotebookAct,
    NotebookObservation,
    decide_notebook,
    files_at,
    notebook_file_name,
    notebook_files,
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
    assert (d.status.phase, d.status.reason, d.action) == (
        Phase.PREPARING,
        reason,
        NotebookAct.NONE,
    )


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
    assert d.action == NotebookAct.UPLOAD
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
    assert d.action == NotebookAct.LAUNCH_JOB
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
    assert d.status.job_pending_since == NOW


RUNNING = UPLOADED | {
    "jobSessionName": make_job_name("nb", UID, 2),
    "jobPendingSince": "2030-01-01T11:59:30Z",
    "jobAttempts": 2,
    "jobSessionId": "abc12345",
}


@pytest.mark.parametrize(
    ("view", "phase", "reason"),
    [
        (JobView(status="Running"), Phase.PREPARING, "JobRunning"),
        (JobView(status="Completed"), Phase.AVAILABLE, "NotebookReady"),
        (
            JobView(status="Failed", detail="ERROR: No matching distribution found for nope"),
            Phase.FAILED,
            "NotebookSetupFailed",
        ),
    ],
)
def test_the_setup_job_decides_the_notebook(view: JobView, phase: Phase, reason: str) -> None:
    d = decide_notebook(make(URL_SOURCE, RUNNING), obs(job=view), T)
    assert (d.status.phase, d.status.reason) == (phase, reason)
    if view.detail:
        assert (d.status.message or "").endswith(view.detail)


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
