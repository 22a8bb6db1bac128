"""Session: the whole request a user applies; its parts are inline templates or shared references.

Each part is either a `template` (the child kind's spec minus what the Session supplies: the
platform, and for compute also the executable, storages, data and schedule) or a `ref` to a
shared object that is prepared once and used by many sessions (docs/design.md §2). Inside a Session,
a template's `storageRef` names one of the Session's own `storages` entries. The phase is
derived from the parts (docs/design.md §3); Expired joins the terminal phases.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any, Literal

from pydantic import Field

from skaha_operator.domain.base import (
    AGE_COLUMN,
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
    start_frozen_unless,
)
from skaha_operator.domain.common import (
    LABEL_PATTERN,
    Connector,
    Phase,
    Schedule,
    name_field,
)
from skaha_operator.domain.compute import ComputeTemplate, ExecutableRef
from skaha_operator.domain.data import DataTemplate
from skaha_operator.domain.docker_container import DockerContainerTemplate
from skaha_operator.domain.jupyter_notebook import JupyterNotebookTemplate
from skaha_operator.domain.status import SessionStatusBase
from skaha_operator.domain.storage import StorageTemplate

_TEMPLATE_XOR_REF = Rule(
    "has(self.template) != has(self.ref)", "exactly one of template and ref must be set"
)


def part_name_field() -> Any:
    """The name of a part inside its Session (a DNS label)."""
    return Field(
        description="Name of the part inside this Session; child objects are named after it.",
        pattern=LABEL_PATTERN,
        max_length=40,
    )


class ExecutableTemplate(WireModel):
    """An inline executable: exactly one of dockerContainer and jupyterNotebook."""

    cel_rules = (
        Rule(
            "has(self.dockerContainer) != has(self.jupyterNotebook)",
            "exactly one of dockerContainer and jupyterNotebook must be set",
        ),
    )

    docker_container: DockerContainerTemplate | None = Field(
        None, description="A DockerContainer created for this Session."
    )
    jupyter_notebook: JupyterNotebookTemplate | None = Field(
        None, description="A JupyterNotebook created for this Session."
    )


class ExecutablePart(WireModel):
    """The session's executable: an inline template or a reference to a shared one."""

    cel_rules = (_TEMPLATE_XOR_REF,)

    template: ExecutableTemplate | None = Field(None, description="Create the executable inline.")
    ref: ExecutableRef | None = Field(None, description="Use an existing shared executable.")


class ComputePart(WireModel):
    """The session's Skaha session; always created by the Session."""

    template: ComputeTemplate = Field(description="The Compute to create.")


class StoragePart(WireModel):
    """One named storage of the session."""

    cel_rules = (_TEMPLATE_XOR_REF,)

    name: str = part_name_field()
    template: StorageTemplate | None = Field(None, description="Create the storage inline.")
    ref: str | None = name_field("Name of an existing shared Storage.", required=False)


class DataPart(WireModel):
    """One named dataset of the session."""

    cel_rules = (_TEMPLATE_XOR_REF,)

    name: str = part_name_field()
    template: DataTemplate | None = Field(None, description="Create the data inline.")
    ref: str | None = name_field("Name of an existing shared Data.", required=False)


class SessionSpec(WireModel):
    """What the user asks for: the parts, when, and on which platform."""

    cel_rules = (
        Rule(
            "!has(self.data) || self.data.all(d, !has(d.template) || "
            "(has(self.storages) && self.storages.exists(s, s.name == d.template.storageRef)))",
            "data[].template.storageRef must name an entry of storages",
            field_path=".data",
        ),
        Rule(
            "!has(self.executable.template) || !has(self.executable.template.jupyterNotebook) || "
            "(has(self.storages) && self.storages.exists(s, "
            "s.name == self.executable.template.jupyterNotebook.storageRef))",
            "executable.template.jupyterNotebook.storageRef must name an entry of storages",
            field_path=".executable",
        ),
        *(
            frozen(f, "create a new Session instead")
            for f in ("executable", "compute", "storages", "data")
        ),
    )

    platform_ref: str = name_field(
        "Name of the SkahaPlatform (same namespace).",
        json_schema_extra=cel(immutable("platformRef")),
    )
    schedule: Schedule | None = Field(
        None,
        description="Start, booked duration, prepare deadline and poll limits for all parts. "
        "May change: the Compute follows (start only while the Session waits for it).",
    )
    cancel: bool = Field(
        False,
        description="Set true to cancel: parts are released and the phase becomes Cancelled.",
        json_schema_extra=cel(
            Rule("self || !oldSelf", "cannot be set back to false once a session is cancelled")
        ),
    )
    executable: ExecutablePart = Field(description="The image or notebook the session runs.")
    compute: ComputePart = Field(description="The Skaha session to launch.")
    storages: list[StoragePart] | None = Field(
        None,
        description="Named storages, mounted into the session.",
        max_length=8,
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"]},
    )
    data: list[DataPart] | None = Field(
        None,
        description="Named datasets placed into the storages before the session starts.",
        max_length=16,
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"]},
    )


class PartKind(StrEnum):
    """Kinds a Session owns or uses."""

    DOCKER_CONTAINER = "DockerContainer"
    JUPYTER_NOTEBOOK = "JupyterNotebook"
    STORAGE = "Storage"
    DATA = "Data"
    COMPUTE = "Compute"


class PartSummary(WireModel):
    """The state of one part, as the Session last read it."""

    kind: PartKind = Field(description="Kind of the part.")
    name: str = name_field("Name of the part's object.")
    phase: Phase | None = Field(
        None,
        description="The part's phase; absent with reason Released: the part was deleted "
        "after the Session last saw it live.",
    )
    ready: bool = Field(False, description="Whether the part's Ready condition is True.")
    reason: str | None = Field(None, description="The part's reason, if any.", max_length=1024)
    shared: bool = Field(False, description="True when the part is a shared reference.")


class SessionStatus(SessionStatusBase):
    """The aggregate state of the session and how to reach it."""

    parts: list[PartSummary] | None = Field(
        None,
        description="One summary per part.",
        max_length=32,
        json_schema_extra={
            "x-kubernetes-list-type": "map",
            "x-kubernetes-list-map-keys": ["kind", "name"],
        },
    )
    connectors: list[Connector] | None = Field(
        None, description="How to reach the running session.", max_length=8
    )


class Session(KindModel):
    """A science session: executable, compute, storage and data, prepared, run and released."""

    crd = CrdInfo(
        kind="Session",
        plural="sessions",
        short_names=("sks",),
        columns=(
            PrinterColumn("Phase", "string", ".status.phase", "Session phase"),
            READY_COLUMN,
            PrinterColumn("Type", "string", ".spec.compute.template.type", "Skaha session type"),
            PrinterColumn("Start", "date", ".spec.schedule.start", "Requested start", priority=1),
            PrinterColumn("URL", "string", ".status.connectors[0].url", "Connect URL", priority=1),
            REASON_COLUMN,
            AGE_COLUMN,
        ),
    )

    cel_rules = (
        start_frozen_unless(
            "!has(self.status) || !has(self.status.phase) || "
            "self.status.phase in ['Initializing', 'Waiting']",
            "while the Session waits for its start",
        ),
    )

    kind: Literal["Session"] = Field("Session", description="The kind's name.")
    spec: SessionSpec = Field(description="Desired session.")
    status: SessionStatus | None = Field(None, description="Observed state.")
