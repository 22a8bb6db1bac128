"""DockerContainer: the executable image of a session, checked against Skaha's image list.

Skaha launches only images from its configured registry hosts and lists them with the session
types they support and a digest (docs/platform-api.md §2, §4). Private images need the
`x-skaha-registry-auth` header, built from a basic-auth Secret.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import AfterValidator, Field

from skaha_operator.domain.base import (
    AGE_COLUMN,
    PHASE_COLUMN,
    READY_COLUMN,
    REASON_COLUMN,
    CrdInfo,
    KindModel,
    PrinterColumn,
    WireModel,
    cel,
    frozen,
    immutable,
)
from skaha_operator.domain.common import (
    UNIQUE,
    LocalObjectRef,
    SessionType,
    check_unique,
    name_field,
)
from skaha_operator.domain.status import ComponentStatus

SessionTypes = Annotated[list[SessionType], AfterValidator(check_unique)]

# registry host[:port]/path[:tag]; the digest is a separate field.
IMAGE_PATTERN = (
    r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?(:[0-9]+)?"
    r"(/[a-z0-9]([-a-z0-9._]*[a-z0-9])?)+"
    r"(:[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?$"
)
DIGEST_PATTERN = r"^sha256:[a-f0-9]{64}$"


def image_field(description: str) -> Any:
    """A container image reference, immutable after creation."""
    return Field(
        description=description,
        pattern=IMAGE_PATTERN,
        max_length=512,
        json_schema_extra=cel(immutable("image")),
    )


class DockerContainerTemplate(WireModel):
    """A DockerContainer spec without what a Session supplies (the platform)."""

    image: str = image_field(
        "Image including its registry host, e.g. images.canfar.net/skaha/astroml:latest; "
        "a short name (skaha/astroml:latest) is expanded with the registry host when Skaha "
        "lists exactly one match."
    )
    digest: str | None = Field(
        None,
        description="Expected digest (sha256:<hex>); preparation fails if Skaha lists another.",
        pattern=DIGEST_PATTERN,
        max_length=71,
    )
    registry_secret_ref: LocalObjectRef | None = Field(
        None,
        description="A kubernetes.io/basic-auth Secret (username, password) for private images.",
    )
    session_types: SessionTypes | None = Field(
        None,
        description="Session types Skaha must list the image for; absent: any.",
        max_length=6,
        json_schema_extra=UNIQUE,
    )


class DockerContainerSpec(DockerContainerTemplate):
    """The desired image and the platform that must offer it."""

    cel_rules = (
        frozen("image", "create a new DockerContainer instead"),
        frozen("digest", "create a new DockerContainer instead"),
        frozen("sessionTypes", "create a new DockerContainer instead"),
    )

    platform_ref: str = name_field(
        "Name of the SkahaPlatform (same namespace).",
        json_schema_extra=cel(immutable("platformRef")),
    )


class DockerContainerStatus(ComponentStatus):
    """What the image check found."""

    resolved_image: str | None = Field(
        None,
        description="The full image name Skaha lists and sessions launch: spec.image with its "
        "tag, or a short name expanded with the one registry host that lists it.",
        max_length=512,
    )
    resolved_digest: str | None = Field(
        None, description="Digest Skaha lists for the image.", max_length=71
    )
    listed_types: SessionTypes | None = Field(
        None,
        description="Session types Skaha lists the image for.",
        max_length=6,
        json_schema_extra=UNIQUE,
    )


class DockerContainer(KindModel):
    """A container image that sessions run."""

    crd = CrdInfo(
        kind="DockerContainer",
        plural="dockercontainers",
        short_names=("dkc",),
        columns=(
            PrinterColumn("Image", "string", ".spec.image", "Container image"),
            PHASE_COLUMN,
            READY_COLUMN,
            PrinterColumn("Digest", "string", ".status.resolvedDigest", "Digest", priority=1),
            REASON_COLUMN,
            AGE_COLUMN,
        ),
    )

    kind: Literal["DockerContainer"] = Field("DockerContainer", description="The kind's name.")
    spec: DockerContainerSpec = Field(description="Desired image.")
    status: DockerContainerStatus | None = Field(None, description="Observed state.")
