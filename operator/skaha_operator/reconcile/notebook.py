"""The JupyterNotebook decision: place the notebook and its requirements, then a setup job.

Steps (design §2): wait for the platform and the Storage; upload the requirements file (and the
notebook when it comes from a ConfigMap) into the storage with Cavern PUTs (skaha-api.md §7);
then a short headless job on the notebook's own image fetches the notebook when it comes from a
URL (data never moves through the operator) and installs the requirements into a per-notebook
virtual environment inside the storage. Available when that job Completed; a failed job's log
tail (pip's error) is the message. The job step is `reconcile.jobs`.
Pure: imports neither kopf, kubernetes nor httpx.
"""

from __future__ import annotations

import posixpath
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from urllib.parse import urlsplit

from skaha_operator.domain.common import TERMINAL_PHASES, Phase
from skaha_operator.domain.jupyter_notebook import JupyterNotebook, JupyterNotebookStatus
from skaha_operator.reconcile.data import StorageView
from skaha_operator.reconcile.jobs import (
    JOB_ARGS,
    JOB_CMD,
    SCRIPT_ENV,
    JobOutcome,
    JobPlan,
    JobView,
    step_job,
    with_phase,
)
from skaha_operator.reconcile.storage import node_of_mount
from skaha_operator.reconcile.timing import Timing

JOB_TAG = "nb"

SETUP_SCRIPT = "; ".join(
    [
        "set -eu",
        'cd "$SKOP_DIR"',
        'if [ -n "${SKOP_NOTEBOOK_URL:-}" ]; then python3 -c '
        "'import sys, urllib.request; urllib.request.urlretrieve(sys.argv[1], sys.argv[2])' "
        '"$SKOP_NOTEBOOK_URL" "$SKOP_NOTEBOOK"; fi',
        'python3 -m venv --system-site-packages "$SKOP_ENV"',
        '"$SKOP_ENV/bin/python" -m pip install --no-input --disable-pip-version-check '
        '-r "$SKOP_REQUIREMENTS"',
        'echo "notebook environment ready in $SKOP_ENV"',
    ]
)


class NotebookAct(StrEnum):
    """The one external action of a JupyterNotebook decision."""

    NONE = "None"
    UPLOAD = "Upload"
    LAUNCH_JOB = "LaunchJob"


@dataclass(frozen=True)
class NotebookFiles:
    """Where a notebook's files go (paths inside sessions; `node_of_mount` gives Cavern's)."""

    directory: str
    notebook: str
    requirements: str
    environment: str


@dataclass(frozen=True)
class UploadPlan:
    """What the handler PUTs into Cavern: the directory, requirements, and a ConfigMap notebook."""

    directory_node: str
    requirements_node: str
    requirements: bytes
    notebook_node: str | None  # None: the setup job fetches it from the URL
    config_map: tuple[str, str] | None  # (name, key) holding the notebook


@dataclass(frozen=True)
class NotebookObservation:
    """Everything observed for one decision."""

    now: datetime
    platform_ready: bool
    platform_reason: str | None = None
    storage: StorageView | None = None
    config_map_found: bool | None = None  # None: not looked (URL source, or already uploaded)
    job: JobView | None = None


@dataclass(frozen=True)
class NotebookDecision:
    """The next status, the one action (with its plan), and when to look again."""

    status: JupyterNotebookStatus
    action: NotebookAct = NotebookAct.NONE
    upload: UploadPlan | None = None
    job: JobPlan | None = None
    requeue_after: float | None = None
    events: tuple[str, ...] = ()


def notebook_file_name(nb: JupyterNotebook) -> str:
    """The notebook's file name: the URL's last segment or the ConfigMap key, ending .ipynb."""
    source = nb.spec.notebook
    if source.url is not None:
        name = posixpath.basename(urlsplit(source.url).path) or "notebook.ipynb"
    else:
        assert source.config_map_ref is not None
        name = source.config_map_ref.key
    return name if name.endswith(".ipynb") else f"{name}.ipynb"


def notebook_files(nb: JupyterNotebook, storage_mount: str) -> NotebookFiles:
    """The directory, notebook, requirements file and per-notebook environment of `nb`."""
    directory = storage_mount.rstrip("/")
    if nb.spec.path:
        directory = f"{directory}/{nb.spec.path.strip('/')}"
    return files_at(directory, notebook_file_name(nb))


def files_at(directory: str, name: str) -> NotebookFiles:
    """The files of notebook `name` placed in `directory` (one environment per notebook)."""
    stem = name.removesuffix(".ipynb")
    return NotebookFiles(
        directory=directory,
        notebook=f"{directory}/{name}",
        requirements=f"{directory}/{stem}-requirements.txt",
        environment=f"{directory}/.venv-{stem}",
    )


def setup_job(nb: JupyterNotebook, files: NotebookFiles, name: str) -> JobPlan:
    """The headless job on the notebook's image that fetches it (URL) and installs requirements."""
    env = {
        "SKOP_JOB": "notebook-setup",
        "SKOP_DIR": files.directory,
        "SKOP_NOTEBOOK": files.notebook,
        "SKOP_REQUIREMENTS": files.requirements,
        "SKOP_ENV": files.environment,
    }
    if nb.spec.notebook.url is not None:
        env["SKOP_NOTEBOOK_URL"] = nb.spec.notebook.url
    env[SCRIPT_ENV] = SETUP_SCRIPT
    return JobPlan(name=name, image=nb.spec.image, cmd=JOB_CMD, args=JOB_ARGS, env=env)


def decide_notebook(
    nb: JupyterNotebook, obs: NotebookObservation, timing: Timing
) -> NotebookDecision:
    """The next step for one JupyterNotebook."""
    status = nb.status or JupyterNotebookStatus()
    gen = nb.metadata.get("generation")
    phase = status.phase or Phase.INITIALIZING
    if phase in TERMINAL_PHASES or phase in {Phase.AVAILABLE, Phase.RELEASING}:
        return NotebookDecision(status)

    def result(
        phase: Phase,
        reason: str,
        message: str,
        *,
        action: NotebookAct = NotebookAct.NONE,
        upload: UploadPlan | None = None,
        job: JobPlan | None = None,
        requeue: float | None = None,
        stalled: bool = False,
        changes: dict[str, object] | None = None,
    ) -> NotebookDecision:
        new, events = with_phase(
            status, phase, reason, message, obs.now, gen, stalled=stalled, changes=changes
        )
        return NotebookDecision(new, action, upload, job, requeue, events)

    spec = nb.spec
    if not obs.platform_ready:
        why = f" ({obs.platform_reason})" if obs.platform_reason else ""
        return result(
            Phase.PREPARING,
            "WaitingForPlatform",
            f"waiting for SkahaPlatform {spec.platform_ref}{why}",
            requeue=timing.dependency_recheck,
        )
    storage = obs.storage
    if storage is None or storage.phase != Phase.AVAILABLE or not storage.mount_path:
        if storage is not None and storage.phase in TERMINAL_PHASES:
            return result(
                Phase.FAILED,
                "StorageFailed",
                f"Storage {storage.name} is {storage.phase}"
                + (f" ({storage.reason})" if storage.reason else ""),
            )
        state = "not found" if storage is None else (storage.phase or "new")
        return result(
            Phase.PREPARING,
            "WaitingForStorage",
            f"waiting for Storage {spec.storage_ref} ({state})",
            requeue=timing.dependency_recheck,
        )
    files = notebook_files(nb, storage.mount_path)
    cm = spec.notebook.config_map_ref
    if not status.notebook_path:
        if cm is not None and obs.config_map_found is False:
            return result(
                Phase.PREPARING,
                "WaitingForConfigMap",
                f"ConfigMap {cm.name} with key {cm.key} not found",
                requeue=timing.dependency_recheck,
            )
        text = "".join(f"{r}\n" for r in spec.requirements or [])
        plan = UploadPlan(
            directory_node=node_of_mount(files.directory),
            requirements_node=node_of_mount(files.requirements),
            requirements=text.encode(),
            notebook_node=node_of_mount(files.notebook) if cm is not None else None,
            config_map=(cm.name, cm.key) if cm is not None else None,
        )
        # Uploads are PUTs that overwrite (§7): repeating them after a crash is harmless, so the
        # path is recorded after the upload, not before.
        return result(
            Phase.PREPARING,
            "Uploading",
            f"uploading {'the notebook and ' if cm is not None else ''}requirements to "
            f"{files.directory}",
            action=NotebookAct.UPLOAD,
            upload=plan,
            requeue=0.0,
            changes={"notebook_path": files.notebook},
        )
    step = step_job(
        status,
        obs.job,
        obs.now,
        timing,
        tag=JOB_TAG,
        uid=str(nb.metadata.get("uid", "")),
        what="notebook setup",
        failure_reason="NotebookSetupFailed",
    )
    match step.outcome:
        case JobOutcome.LAUNCH:
            assert step.name is not None
            return result(
                Phase.PREPARING,
                step.reason,
                step.message,
                action=NotebookAct.LAUNCH_JOB,
                job=setup_job(nb, files, step.name),
                requeue=timing.poll_base,
                changes=step.changes,
            )
        case JobOutcome.WAIT | JobOutcome.STALLED:
            stalled = step.outcome == JobOutcome.STALLED
            return result(
                Phase.PREPARING,
                step.reason,
                step.message,
                requeue=step.requeue,
                stalled=stalled,
                changes=step.changes,
            )
        case JobOutcome.DONE:
            return result(
                Phase.AVAILABLE,
                "NotebookReady",
                f"notebook at {files.notebook}; requirements installed in {files.environment}",
                changes=step.changes,
            )
        case JobOutcome.FAILED:
            return result(Phase.FAILED, step.reason, step.message, changes=step.changes)


__all__ = [
    "NotebookAct",
    "NotebookDecision",
    "NotebookFiles",
    "NotebookObservation",
    "UploadPlan",
    "decide_notebook",
    "files_at",
    "notebook_file_name",
    "notebook_files",
    "setup_job",
]
