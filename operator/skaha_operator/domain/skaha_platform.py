"""SkahaPlatform: one Skaha / Cavern / Rucio deployment, the token Secret and platform defaults.

Skaha serves `/v1/...` under its base URL and publishes the API version in `/capabilities`
(docs/platform-api.md §1). Cavern's generic layout is `home` and `projects` directories under the
service root (docs/platform-api.md §7). The platform has no lifecycle of its own: its phase is the
result of the last probe and may move back from Failed to Available.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Literal

from pydantic import Field

from skaha_operator.domain.base import (
    AGE_COLUMN,
    PHASE_COLUMN,
    READY_COLUMN,
    REASON_COLUMN,
    CrdInfo,
    KindModel,
    PrinterColumn,
    WireModel,
)
from skaha_operator.domain.common import (
    LocalObjectRef,
    SecretKeyRef,
    Timestamp,
    duration_field,
    name_field,
)
from skaha_operator.domain.status import PhasedStatus

URL_PATTERN = r"^https?://[^\s]+$"


class SkahaApiVersion(StrEnum):
    """Skaha REST API versions (docs/platform-api.md §1)."""

    V0 = "v0"
    V1 = "v1"


class SkahaEndpoint(WireModel):
    """Where Skaha answers."""

    url: str = Field(
        description="Base URL of Skaha, without the version, e.g. https://ws-uv.canfar.net/skaha.",
        pattern=URL_PATTERN,
        max_length=2048,
    )
    api_version: SkahaApiVersion | None = Field(
        None, description="Force an API version; absent: read it from /capabilities."
    )


class CavernEndpoint(WireModel):
    """Where Cavern (the VOSpace file store mounted into sessions) answers."""

    url: str = Field(
        description="Base URL of Cavern, e.g. https://ws-uv.canfar.net/arc.",
        pattern=URL_PATTERN,
        max_length=2048,
    )
    user: str = Field(
        description="The user whose home directory (home/<user>) storage is created in.",
        pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$",
        max_length=253,
    )
    node_uri_prefix: str | None = Field(
        None,
        description="VOSpace node URI prefix, e.g. vos://cadc.nrc.ca~arc; absent: derived "
        "from the URL's host and last path segment.",
        pattern=r"^vos://[^\s/]+$",
        max_length=512,
    )
    home_directory: str = Field(
        "home", description="Top-level directory of user homes.", max_length=253
    )
    projects_directory: str = Field(
        "projects", description="Top-level directory of projects.", max_length=253
    )


class RucioEndpoint(WireModel):
    """Where Rucio answers (rules API) and who the operator acts as."""

    url: str = Field(
        description="Base URL of the Rucio server.", pattern=URL_PATTERN, max_length=2048
    )
    auth_url: str | None = Field(
        None,
        description="Base URL of the Rucio auth server; absent: the same as url.",
        pattern=URL_PATTERN,
        max_length=2048,
    )
    account: str | None = Field(
        None, description="Rucio account (X-Rucio-Account).", max_length=253
    )
    vo: str | None = Field(None, description="Rucio VO (X-Rucio-VO).", max_length=63)
    credentials_secret_ref: LocalObjectRef | None = Field(
        None,
        description="Secret in this namespace with keys username and password for Rucio "
        "userpass auth (docs/platform-api.md §8); absent: Data with a rucio source cannot be "
        "prepared.",
    )


class SrcnetEndpoint(WireModel):
    """The SRCNet Data Management API used for staging."""

    url: str = Field(
        description="Base URL, e.g. https://data-management.srcnet.skao.int/api/v1.",
        pattern=URL_PATTERN,
        max_length=2048,
    )


class PlatformDefaults(WireModel):
    """Defaults for parts that do not set their own schedule."""

    duration: str | None = duration_field("Default booked duration.")
    prepare_deadline: str | None = duration_field("Default time allowed for preparation.")
    poll_interval: str | None = duration_field("Default time between polls.", minimum="1s")
    max_polls: int | None = Field(None, description="Default poll limit.", ge=1, le=100000)


class CaBundleRef(WireModel):
    """A key of a Secret in the same namespace holding PEM CA certificates."""

    name: str = name_field("Name of the Secret.")
    key: str = Field(
        "ca.crt",
        description="Key inside the Secret.",
        pattern=r"^[-._a-zA-Z0-9]+$",
        max_length=253,
    )


class SkahaPlatformSpec(WireModel):
    """Where the platform's services are and which Secret holds the token."""

    skaha: SkahaEndpoint = Field(description="The Skaha session service.")
    cavern: CavernEndpoint = Field(description="The Cavern file store.")
    rucio: RucioEndpoint | None = Field(None, description="Rucio, for Data with a rucio source.")
    srcnet: SrcnetEndpoint | None = Field(
        None, description="SRCNet Data Management, for Data with an srcnetStaging source."
    )
    token_secret_ref: SecretKeyRef = Field(
        description="Secret in this namespace holding the bearer token (key default: token)."
    )
    ca_bundle_secret_ref: CaBundleRef | None = Field(
        None,
        description="Secret in this namespace holding PEM CA certificates (key default: "
        "ca.crt) trusted, on top of the public CAs and the operator's --ca-bundle, for calls "
        "to this platform's Skaha, Cavern and Rucio (a site CA).",
    )
    defaults: PlatformDefaults | None = Field(None, description="Defaults for schedules.")


class ResourceOptions(WireModel):
    """Allowed values of one resource, from Skaha /context (docs/platform-api.md §4)."""

    default: int | None = Field(None, description="Default value.", ge=0)
    options: list[int] | None = Field(None, description="Allowed values.", max_length=512)


class SkahaPlatformStatus(PhasedStatus):
    """What the last probe of the platform found."""

    api_version: SkahaApiVersion | None = Field(
        None, description="Skaha API version found in /capabilities."
    )
    cores: ResourceOptions | None = Field(None, description="Core options from /context.")
    memory_gb: ResourceOptions | None = Field(
        None, alias="memoryGB", description="RAM options (GiB) from /context."
    )
    gpus: ResourceOptions | None = Field(None, description="GPU options from /context.")
    max_interactive_sessions: int | None = Field(
        None, description="Interactive session cap from /context.", ge=0
    )
    last_probe_time: Timestamp | None = Field(None, description="When the platform was probed.")


class SkahaPlatform(KindModel):
    """One Skaha/Cavern/Rucio deployment that sessions run on."""

    crd = CrdInfo(
        kind="SkahaPlatform",
        plural="skahaplatforms",
        short_names=("skp",),
        columns=(
            PHASE_COLUMN,
            READY_COLUMN,
            PrinterColumn("API", "string", ".status.apiVersion", "Skaha API version"),
            PrinterColumn("Skaha", "string", ".spec.skaha.url", "Skaha URL"),
            REASON_COLUMN,
            AGE_COLUMN,
        ),
    )

    kind: Literal["SkahaPlatform"] = Field("SkahaPlatform", description="The kind's name.")
    spec: SkahaPlatformSpec = Field(description="Desired platform connection.")
    status: SkahaPlatformStatus | None = Field(None, description="Observed platform state.")
