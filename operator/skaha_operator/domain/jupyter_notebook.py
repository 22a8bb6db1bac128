"""JupyterNotebook: a notebook (URL or ConfigMap) and its Python requirements, on a base image.

Preparation uploads the notebook and a requirements file into Cavern (docs/platform-api.md §7)
and runs a short headless Skaha job that installs the requirements into the storage
(docs/design.md §2).
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from skaha_operator.domain.base import (
    AGE_COLUMN,
    PHASE_COLUMN,
    READY_COLUMN,
    REASON_COLUMN,
    CrdInfo,
    KindModel,
    PrinterColumn,
    Rule,
    WireModel,
    cel,
    frozen,
    immutable,
)
from skaha_operator.domain.common import (
    ReleasePolicy,
    name_field,
    relative_path_field,
)
from skaha_operator.domain.docker_container import DIGEST_PATTERN, image_field
from skaha_operator.domain.launch import Launch
from skaha_operator.domain.status import ComponentStatus


class ConfigMapKeyRef(WireModel):
    """A key of a ConfigMap in the same namespace."""

    name: str = name_field("Name of the ConfigMap.")
    key: str = Field(
        description="Key holding the notebook JSON.", pattern=r"^[-._a-zA-Z0-9]+$", max_length=253
    )


class NotebookSource(WireModel):
    """Where the notebook comes from: exactly one of url and configMapRef."""

    cel_rules = (
        Rule(
            "has(self.url) != has(self.configMapRef)",
            "exactly one of url and configMapRef must be set",
        ),
    )

    url: str | None = Field(
        None,
        description="HTTPS URL of the .ipynb file.",
        pattern=r"^https://[^\s]+$",
        max_length=2048,
    )
    config_map_ref: ConfigMapKeyRef | None = Field(
        None, description="A ConfigMap key holding the notebook."
    )


class JupyterNotebookTemplate(WireModel):
    """A JupyterNotebook spec without what a Session supplies (the platform)."""

    image: str = image_field(
        "Base image the notebook runs on, e.g. images.canfar.net/skaha/astroml:latest."
    )
    digest: str | None = Field(
        None,
        description="Expected image digest (sha256:<hex>).",
        pattern=DIGEST_PATTERN,
        max_length=71,
    )
    notebook: NotebookSource = Field(description="The notebook to place.")
    requirements: list[Annotated[str, Field(min_length=1, max_length=512)]] | None = Field(
        None,
        description="pip requirement specifiers installed for the notebook, e.g. numpy>=2.",
        max_length=256,
    )
    storage_ref: str = name_field(
        "Storage the notebook and its installed requirements go into (in a Session: the name "
        "of one of its storages)."
    )
    path: str | None = relative_path_field(
        "Directory inside the storage; absent: the storage root.", required=False
    )
    release_policy: ReleasePolicy = Field(
        ReleasePolicy.DELETE, description="Delete or retain what was placed on release."
    )


class JupyterNotebookSpec(JupyterNotebookTemplate):
    """The desired notebook and the platform it is prepared on."""

    cel_rules = (
        frozen("image", "create a new JupyterNotebook instead"),
        frozen("digest", "create a new JupyterNotebook instead"),
        frozen("notebook", "create a new JupyterNotebook instead"),
        frozen("requirements", "create a new JupyterNotebook instead"),
        frozen("storageRef", "create a new JupyterNotebook instead"),
        frozen("path", "create a new JupyterNotebook instead"),
    )

    platform_ref: str = name_field(
        "Name of the SkahaPlatform (same namespace).",
        json_schema_extra=cel(immutable("platformRef")),
    )


class JupyterNotebookStatus(ComponentStatus):
    """Where the notebook went and how its requirements job is doing."""

    notebook_path: str | None = Field(
        None,
        description="Path of the placed notebook inside sessions, e.g. /arc/home/u/x/a.ipynb.",
        max_length=2048,
    )
    job: Launch | None = Field(
        None, description="The setup job launched for this notebook (marker, name, id, status)."
    )


class JupyterNotebook(KindModel):
    """A notebook with requirements, installed into a storage."""

    crd = CrdInfo(
        kind="JupyterNotebook",
        plural="jupyternotebooks",
        short_names=("jnb",),
        columns=(
            PHASE_COLUMN,
            READY_COLUMN,
            PrinterColumn("Job", "string", ".status.job.id", "Install job session id"),
            PrinterColumn("Image", "string", ".spec.image", "Base image", priority=1),
            REASON_COLUMN,
            AGE_COLUMN,
        ),
    )

    kind: Literal["JupyterNotebook"] = Field("JupyterNotebook", description="The kind's name.")
    spec: JupyterNotebookSpec = Field(description="Desired notebook.")
    status: JupyterNotebookStatus | None = Field(None, description="Observed state.")
