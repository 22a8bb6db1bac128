"""Compute: one Skaha session (type, cores, RAM, GPUs; command/args/env for headless).

Launch parameters and their limits follow docs/platform-api.md §2 (types, `cmd`/`args`/`env` for
headless only, gpus never 0); the status keeps the create-pending marker and the Skaha name
derived from the UID so a launch is never duplicated (docs/design.md §4.3).
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Literal

from pydantic import AfterValidator, Field

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
    start_frozen_unless,
)
from skaha_operator.domain.common import (
    NAME_PATTERN,
    UNIQUE,
    Connector,
    Schedule,
    SessionType,
    Timestamp,
    check_unique,
    name_field,
)
from skaha_operator.domain.launch import Launch
from skaha_operator.domain.status import ComponentStatus

ENV_NAME_PATTERN = "^[A-Za-z_][A-Za-z0-9_]*$"

Names = Annotated[
    list[Annotated[str, Field(pattern=NAME_PATTERN, max_length=253)]],
    AfterValidator(check_unique),
]


def _headless_only(field: str) -> Rule:
    """A rule allowing `field` only on headless sessions."""
    return Rule(
        f"self.type == 'headless' || !has(self.{field})",
        f"{field} is allowed only when type is headless",
        field_path=f".{field}",
    )


class ExecutableKind(StrEnum):
    """Kinds that can be a session's executable."""

    DOCKER_CONTAINER = "DockerContainer"
    JUPYTER_NOTEBOOK = "JupyterNotebook"


class ExecutableRef(WireModel):
    """A reference to a DockerContainer or JupyterNotebook in the same namespace."""

    kind: ExecutableKind = Field(description="DockerContainer or JupyterNotebook.")
    name: str = name_field("Name of the object.")


class ComputeTemplate(WireModel):
    """A Compute spec without what a Session supplies.

    The Session supplies the platform, executable, storages, data and schedule.
    """

    cel_rules = tuple(_headless_only(f) for f in ("command", "args", "env"))

    type: SessionType = Field(
        description="Skaha session type: notebook, desktop, carta, headless, firefly, contributed.",
        json_schema_extra=cel(immutable("type")),
    )
    cores: int | None = Field(
        None,
        description="CPU cores; fitted to the platform's options. Absent: flexible.",
        ge=1,
        le=256,
    )
    ram_gib: int | None = Field(
        None,
        alias="ramGiB",
        description="RAM in GiB; fitted to the platform's options. Absent: flexible.",
        ge=1,
        le=4096,
    )
    gpus: int | None = Field(
        None, description="GPUs (Skaha refuses 0: leave absent for none).", ge=1, le=64
    )
    command: str | None = Field(
        None,
        description="Headless only: the command to run (Skaha cmd).",
        min_length=1,
        max_length=4096,
    )
    args: list[Annotated[str, Field(max_length=4096)]] | None = Field(
        None, description="Headless only: arguments of the command.", max_length=128
    )
    env: dict[str, Annotated[str, Field(max_length=4096)]] | None = Field(
        None,
        description="Headless only: environment variables.",
        max_length=64,
        json_schema_extra=cel(
            Rule(
                f"self.all(k, k.size() <= 128 && k.matches('{ENV_NAME_PATTERN}'))",
                "names must be valid environment variable names (letters, digits, _)",
            )
        ),
    )


class ComputeSpec(ComputeTemplate):
    """The desired Skaha session and the parts it waits for.

    Only the schedule may change after creation (docs/lifecycle.md, "Editing"): the session is
    launched with the rest; start can change until the launch.
    """

    cel_rules = tuple(
        frozen(f, "create a new Compute instead")
        for f in (
            "type",
            "cores",
            "ramGiB",
            "gpus",
            "command",
            "args",
            "env",
            "storageRefs",
            "dataRefs",
        )
    )

    platform_ref: str = name_field(
        "Name of the SkahaPlatform (same namespace).",
        json_schema_extra=cel(immutable("platformRef")),
    )
    executable_ref: ExecutableRef = Field(
        description="The image or notebook to run.",
        json_schema_extra=cel(immutable("executableRef")),
    )
    storage_refs: Names | None = Field(
        None, description="Storages to wait for and mount.", max_length=16, json_schema_extra=UNIQUE
    )
    data_refs: Names | None = Field(
        None, description="Data to wait for.", max_length=32, json_schema_extra=UNIQUE
    )
    schedule: Schedule | None = Field(None, description="Start, duration, deadline, polling.")


class ComputeStatus(ComponentStatus):
    """The Skaha session as last observed."""

    launch: Launch | None = Field(
        None, description="The Skaha session launched for this Compute (marker, name, id)."
    )
    launched_cores: int | None = Field(None, description="Cores requested at launch.", ge=0)
    launched_ram_gib: int | None = Field(
        None, alias="launchedRamGiB", description="RAM (GiB) requested at launch.", ge=0
    )
    connectors: list[Connector] | None = Field(
        None, description="How to reach the session.", max_length=8
    )
    start_time: Timestamp | None = Field(None, description="Skaha's startTime.")
    expiry_time: Timestamp | None = Field(None, description="Skaha's expiryTime.")
    last_polled: Timestamp | None = Field(None, description="When Skaha was last polled.")
    polls: int | None = Field(None, description="Polls made so far.", ge=0)
    renewals: int | None = Field(None, description="Renewals made so far.", ge=0)
    renewed_at: Timestamp | None = Field(None, description="When the session was last renewed.")


class Compute(KindModel):
    """One Skaha session."""

    crd = CrdInfo(
        kind="Compute",
        plural="computes",
        short_names=("cmp",),
        columns=(
            PrinterColumn("Type", "string", ".spec.type", "Skaha session type"),
            PHASE_COLUMN,
            READY_COLUMN,
            PrinterColumn("Skaha", "string", ".status.launch.observed", "Skaha status"),
            PrinterColumn("Session-ID", "string", ".status.launch.id", "Skaha session id"),
            PrinterColumn("Cores", "integer", ".spec.cores", "Requested cores", priority=1),
            PrinterColumn("RAM", "integer", ".spec.ramGiB", "Requested RAM (GiB)", priority=1),
            REASON_COLUMN,
            AGE_COLUMN,
        ),
    )

    cel_rules = (
        start_frozen_unless(
            "!has(self.status) || !has(self.status.launch)"
            " || !has(self.status.launch.pendingSince)",
            "until the Skaha session is launched",
        ),
    )

    kind: Literal["Compute"] = Field("Compute", description="The kind's name.")
    spec: ComputeSpec = Field(description="Desired Skaha session.")
    status: ComputeStatus | None = Field(None, description="Observed state.")
