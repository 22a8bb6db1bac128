"""Storage: a Cavern directory in the user's home or in a project.

Cavern has no mkdir -p, so preparation creates each level and records what it created; a
non-empty container cannot be deleted directly (docs/platform-api.md §7). Release honours the
policy.
"""

from __future__ import annotations

from enum import StrEnum
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
from skaha_operator.domain.common import ReleasePolicy, name_field, relative_path_field
from skaha_operator.domain.status import ComponentStatus

# A Kubernetes quantity (resource.Quantity's grammar).
QUANTITY_PATTERN = (
    r"^(\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))(([KMGTPE]i)|[numkMGTPE]|"
    r"([eE](\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))))?$"
)


class CavernArea(StrEnum):
    """Which Cavern tree a storage lives in."""

    HOME = "home"
    PROJECT = "project"


# The generator turns `integer | string` into x-kubernetes-int-or-string
# (docs/kubernetes-notes.md §6).
Quantity = (
    Annotated[int, Field(ge=0)] | Annotated[str, Field(pattern=QUANTITY_PATTERN, max_length=64)]
)


class StorageTemplate(WireModel):
    """A Storage spec without what a Session supplies (the platform)."""

    cel_rules = (
        Rule(
            "self.area == 'project' ? has(self.project) : !has(self.project)",
            "project is required when area is project and not allowed when area is home",
            field_path=".project",
        ),
    )

    area: CavernArea = Field(
        description="home (the platform user's home) or project (a shared project directory).",
        json_schema_extra=cel(immutable("area")),
    )
    project: str | None = Field(
        None,
        description="Project name, when area is project.",
        pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$",
        max_length=253,
        json_schema_extra=cel(immutable("project")),
    )
    path: str = relative_path_field(
        "Directory inside the area, created level by level, e.g. sessions/run-1.",
        rules=(immutable("path"),),
    )
    size: Quantity | None = Field(
        None,
        description="Space expected to be used, a quantity such as 10Gi or a number of bytes.",
    )
    release_policy: ReleasePolicy = Field(
        ReleasePolicy.RETAIN,
        description="Retain keeps the directory on release; Delete removes what was created.",
    )


class StorageSpec(StorageTemplate):
    """The desired directory and the platform it lives on."""

    cel_rules = (frozen("size", "create a new Storage instead"),)

    platform_ref: str = name_field(
        "Name of the SkahaPlatform (same namespace).",
        json_schema_extra=cel(immutable("platformRef")),
    )


class StorageStatus(ComponentStatus):
    """Where the directory is and what preparation created."""

    uri: str | None = Field(None, description="VOSpace node URI of the directory.", max_length=4096)
    mount_path: str | None = Field(
        None,
        description="Path of the directory inside sessions, e.g. /arc/home/u/x.",
        max_length=4096,
    )
    created_paths: list[Annotated[str, Field(max_length=4096)]] | None = Field(
        None,
        description="Directories preparation created (deepest last); release removes only these.",
        max_length=64,
    )


class Storage(KindModel):
    """A Cavern directory sessions read and write."""

    crd = CrdInfo(
        kind="Storage",
        plural="storages",
        short_names=("sto",),
        columns=(
            PrinterColumn("Area", "string", ".spec.area", "home or project"),
            PrinterColumn("Path", "string", ".spec.path", "Directory in the area"),
            PHASE_COLUMN,
            READY_COLUMN,
            REASON_COLUMN,
            AGE_COLUMN,
        ),
    )

    kind: Literal["Storage"] = Field("Storage", description="The kind's name.")
    spec: StorageSpec = Field(description="Desired directory.")
    status: StorageStatus | None = Field(None, description="Observed state.")
