"""Data: input data placed into a Storage from exactly one source (HTTP(S), Rucio, SRCNet staging).

An HTTP download runs as a headless Skaha job that fetches into the storage and verifies a
checksum; data never moves through the operator (docs/design.md §2). A Rucio source becomes a
replication rule polled until OK (docs/platform-api.md §8); SRCNet staging asks the Data
Management API to stage DIDs into a storage area. Plural: `data` (singular and plural are the
same word, as kubectl accepts for `endpoints`); short name `dat`.
"""

from __future__ import annotations

from typing import Annotated, ClassVar, Literal

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
    Timestamp,
    duration_field,
    name_field,
    relative_path_field,
)
from skaha_operator.domain.launch import Launch
from skaha_operator.domain.status import ComponentStatus

# "scope:name". Rucio leaves the name grammar to each deployment's schema; we accept its default
# character set (letters, digits, . - _) plus "/" in names, scopes up to 25 characters.
DID_PATTERN = r"^[A-Za-z0-9_.-]{1,25}:[A-Za-z0-9_.-][A-Za-z0-9_./-]{0,249}$"
CHECKSUM_PATTERN = r"^(sha256:[a-f0-9]{64}|md5:[a-f0-9]{32})$"

Did = Annotated[str, Field(pattern=DID_PATTERN, max_length=276)]


class HttpSource(WireModel):
    """Download one file over HTTP(S)."""

    cel_rules = (
        Rule(
            "self.allowInsecure || self.url.startsWith('https://')",
            "url must use https:// unless allowInsecure is true",
            field_path=".url",
        ),
    )

    url: str = Field(description="URL of the file.", pattern=r"^https?://[^\s]+$", max_length=2048)
    allow_insecure: bool = Field(False, description="Allow a plain http:// URL.")
    checksum: str | None = Field(
        None,
        description="Expected checksum, sha256:<hex> or md5:<hex>; checked after download.",
        pattern=CHECKSUM_PATTERN,
        max_length=71,
    )


class RucioSource(WireModel):
    """Replicate a Rucio DID to an RSE with a rule."""

    did: str = Field(
        description="Data identifier scope:name, e.g. user.alice:obs-123.",
        pattern=DID_PATTERN,
        max_length=276,
    )
    rse_expression: str = Field(
        description="RSE expression the replica must be created on.", min_length=1, max_length=512
    )
    lifetime: str | None = duration_field("How long the rule keeps the replica.")


class SrcnetStagingSource(WireModel):
    """Stage DIDs into an SRCNet storage area via the Data Management API."""

    storage_area_id: str = Field(
        description="UUID of the target storage area (Site Capabilities).",
        pattern=r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$",
        max_length=36,
    )
    dids: list[Did] = Field(
        description="DIDs (namespace:name) to stage.", min_length=1, max_length=64
    )
    lifetime: str | None = duration_field("How long the staged copy is kept.")


class DataTemplate(WireModel):
    """A Data spec without what a Session supplies (the platform)."""

    cel_rules: ClassVar[tuple[Rule, ...]] = (
        Rule(
            "[has(self.http), has(self.rucio), has(self.srcnetStaging)].filter(x, x).size() == 1",
            "exactly one source of http, rucio or srcnetStaging must be set",
        ),
        Rule(
            "[has(self.http), has(self.rucio), has(self.srcnetStaging)] == "
            "[has(oldSelf.http), has(oldSelf.rucio), has(oldSelf.srcnetStaging)]",
            "the kind of source (http, rucio or srcnetStaging) is immutable",
            reason="FieldValueForbidden",
        ),
    )

    storage_ref: str = name_field(
        "Storage the data is placed in (in a Session: the name of one of its storages).",
        json_schema_extra=cel(immutable("storageRef")),
    )
    path: str | None = relative_path_field(
        "File or directory inside the storage; absent: derived from the source.",
        required=False,
        rules=(immutable("path"),),
    )
    release_policy: ReleasePolicy = Field(
        ReleasePolicy.DELETE,
        description="Delete removes the file or the rule on release; Retain keeps it.",
    )
    http: HttpSource | None = Field(
        None, description="Download over HTTP(S).", json_schema_extra=cel(immutable("http"))
    )
    rucio: RucioSource | None = Field(
        None, description="Rucio replication rule.", json_schema_extra=cel(immutable("rucio"))
    )
    srcnet_staging: SrcnetStagingSource | None = Field(
        None,
        description="SRCNet Data Management staging.",
        json_schema_extra=cel(immutable("srcnetStaging")),
    )


class DataSpec(DataTemplate):
    """The desired data and the platform it is placed on."""

    cel_rules: ClassVar[tuple[Rule, ...]] = (frozen("path", "create a new Data instead"),)

    platform_ref: str = name_field(
        "Name of the SkahaPlatform (same namespace).",
        json_schema_extra=cel(immutable("platformRef")),
    )


class DataStatus(ComponentStatus):
    """Where the data is, and the external ids of the rule or job placing it."""

    location: str | None = Field(
        None,
        description="Path of the placed data inside sessions, e.g. /arc/home/u/x/file.fits.",
        max_length=4096,
    )
    rule: Launch | None = Field(
        None, description="The Rucio rule created or adopted for this Data (marker, id, state)."
    )
    job: Launch | None = Field(
        None, description="The download job launched for this Data (marker, name, id, status)."
    )
    staging_job_id: str | None = Field(None, description="SRCNet staging job id.", max_length=128)
    checksum_verified: bool | None = Field(
        None, description="Whether the downloaded file matched spec.http.checksum."
    )
    last_polled: Timestamp | None = Field(None, description="When the source was last polled.")
    polls: int | None = Field(None, description="Polls made so far.", ge=0)


class Data(KindModel):
    """Input data placed into a storage."""

    crd = CrdInfo(
        kind="Data",
        plural="data",
        short_names=("dat",),
        columns=(
            PHASE_COLUMN,
            READY_COLUMN,
            PrinterColumn("Rule", "string", ".status.rule.id", "Rucio rule id"),
            PrinterColumn("Job", "string", ".status.job.id", "Download job session id"),
            PrinterColumn("Storage", "string", ".spec.storageRef", "Storage", priority=1),
            REASON_COLUMN,
            AGE_COLUMN,
        ),
    )

    kind: Literal["Data"] = Field("Data", description="The kind's name.")
    spec: DataSpec = Field(description="Desired data.")
    status: DataStatus | None = Field(None, description="Observed state.")
