"""Pydantic models of the Skaha, Cavern and Rucio wire formats, and their parsers.

Every model tolerates missing fields (Skaha's Gson output omits nulls, `docs/platform-api.md`
§3) and unknown extra fields; enumerations fall back to an `UNKNOWN` member instead of failing,
because the status vocabulary changed between API eras (§3). Pure data: no I/O, no httpx.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from datetime import datetime
from email.utils import parsedate_to_datetime
from enum import StrEnum
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field


def _lenient_datetime(value: object) -> object:
    """Parse ISO-8601 (Skaha, §3) or RFC 1123 (Rucio, §8) dates; anything unparseable -> None."""
    if value is None or isinstance(value, datetime):
        return value
    if not isinstance(value, str) or not value.strip():
        return None
    text = value.strip()
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        pass
    try:
        return parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None


LenientDatetime = Annotated[datetime | None, BeforeValidator(_lenient_datetime)]


class _Wire(BaseModel):
    """Base for wire models: accept aliases and field names, ignore unknown fields."""

    model_config = ConfigDict(populate_by_name=True, extra="ignore", frozen=True)


# ---------------------------------------------------------------- Skaha (§1–§4)


class ApiVersion(StrEnum):
    """The Skaha API path prefix (§1: `/v0` before 2025-08-06, `/v1` after)."""

    V0 = "v0"
    V1 = "v1"


#: VOSI standardIDs that tell the API version apart (§1, CANFAR `utils/vosi.py`).
STANDARD_ID_V1 = "http://www.opencadc.org/std/platform#session-1"
STANDARD_ID_V0 = "vos://cadc.nrc.ca~vospace/CADC/std/Proc#sessions-1.0"


class SkahaSessionStatus(StrEnum):
    """The union of both eras' session statuses (§3); unknown text maps to `UNKNOWN`."""

    PENDING = "Pending"
    RUNNING = "Running"
    TERMINATING = "Terminating"
    SUCCEEDED = "Succeeded"
    COMPLETED = "Completed"
    FAILED = "Failed"
    ERROR = "Error"
    UNKNOWN = "Unknown"

    @classmethod
    def _missing_(cls, value: object) -> SkahaSessionStatus:
        # Case-insensitive match first; any other text is a status we do not know yet.
        if isinstance(value, str):
            for member in cls:
                if member.value.lower() == value.strip().lower():
                    return member
        return cls.UNKNOWN

    @property
    def is_finished(self) -> bool:
        """True for the terminal statuses of either era (Succeeded/Completed/Failed/Error)."""
        return self in _FINISHED


_FINISHED = frozenset(
    {
        SkahaSessionStatus.SUCCEEDED,
        SkahaSessionStatus.COMPLETED,
        SkahaSessionStatus.FAILED,
        SkahaSessionStatus.ERROR,
    }
)


class SessionType(StrEnum):
    """Session types accepted by `type=` (§2); `desktop-app` only appears in listings."""

    DESKTOP = "desktop"
    NOTEBOOK = "notebook"
    CARTA = "carta"
    CONTRIBUTED = "contributed"
    FIREFLY = "firefly"
    HEADLESS = "headless"
    DESKTOP_APP = "desktop-app"


def _lenient_status(value: object) -> object:
    return SkahaSessionStatus(value) if isinstance(value, str) else SkahaSessionStatus.UNKNOWN


class SkahaSession(_Wire):
    """One session as `GET /v1/session[/{id}]` returns it (§3); absent fields are None."""

    id: str
    userid: str = ""
    image: str = ""
    type: str = ""
    status: Annotated[SkahaSessionStatus, BeforeValidator(_lenient_status)] = (
        SkahaSessionStatus.UNKNOWN
    )
    name: str = ""
    run_as_uid: str | None = Field(default=None, alias="runAsUID")
    run_as_gid: str | None = Field(default=None, alias="runAsGID")
    supplemental_groups: list[int] = Field(default_factory=list, alias="supplementalGroups")
    appid: str | None = None
    start_time: LenientDatetime = Field(default=None, alias="startTime")
    expiry_time: LenientDatetime = Field(default=None, alias="expiryTime")
    connect_url: str = Field(default="", alias="connectURL")
    requested_ram: str | None = Field(default=None, alias="requestedRAM")
    requested_cpu_cores: str | None = Field(default=None, alias="requestedCPUCores")
    requested_gpu_cores: str | None = Field(default=None, alias="requestedGPUCores")
    ram_in_use: str | None = Field(default=None, alias="ramInUse")
    cpu_cores_in_use: str | None = Field(default=None, alias="cpuCoresInUse")
    gpu_ram_in_use: str | None = Field(default=None, alias="gpuRAMInUse")
    gpu_utilization: str | None = Field(default=None, alias="gpuUtilization")
    is_fixed_resources: bool | None = Field(default=None, alias="isFixedResources")


class SkahaImage(_Wire):
    """One entry of `GET /v1/image` (§4); `types` is a set on the server, order unspecified."""

    id: str
    types: list[str] = Field(default_factory=list)
    digest: str | None = None


class ResourceOptions(_Wire):
    """One resource block of `/v1/context` (§4: `cores`, `memoryGB`, `gpus`)."""

    default: float | None = None
    default_request: float | None = Field(default=None, alias="defaultRequest")
    default_limit: float | None = Field(default=None, alias="defaultLimit")
    options: list[int] = Field(default_factory=list)


class SkahaContext(_Wire):
    """`GET /v1/context`: the site's resource options and the interactive-session cap (§4)."""

    cores: ResourceOptions = Field(default_factory=ResourceOptions)
    memory_gb: ResourceOptions = Field(default_factory=ResourceOptions, alias="memoryGB")
    gpus: ResourceOptions = Field(default_factory=ResourceOptions)
    max_interactive_sessions: int | None = Field(default=None, alias="maxInteractiveSessions")


class Capabilities(_Wire):
    """What VOSI `/capabilities` told us: the standardIDs seen and the API version (§1)."""

    standard_ids: list[str] = Field(default_factory=list)
    api_version: ApiVersion | None = None


class SessionParams(_Wire):
    """Launch parameters of `POST /v1/session` (§2); `type` absent means headless server-side."""

    name: str
    image: str
    type: SessionType | None = None
    cores: int | None = None
    ram: int | None = None
    gpus: int | None = None
    cmd: str | None = None
    args: str | None = None
    env: dict[str, str] = Field(default_factory=dict)

    def to_form(self) -> list[tuple[str, str]]:
        """The form fields in wire order; `env` repeats once per `KEY=VALUE` (§2)."""
        fields: list[tuple[str, str]] = [("name", self.name), ("image", self.image)]
        optional: list[tuple[str, object]] = [
            ("type", self.type),
            ("cores", self.cores),
            ("ram", self.ram),
            ("gpus", self.gpus),
            ("cmd", self.cmd),
            ("args", self.args),
        ]
        fields.extend((key, str(value)) for key, value in optional if value is not None)
        fields.extend(("env", f"{key}={value}") for key, value in self.env.items())
        return fields


def parse_capabilities(xml_text: str) -> Capabilities:
    """Read the standardIDs of a VOSI capabilities document and derive the API version (§1)."""
    root = ET.fromstring(xml_text)
    ids = [
        element.attrib["standardID"]
        for element in root.iter()
        if _local(element.tag) == "capability" and "standardID" in element.attrib
    ]
    version = None
    if STANDARD_ID_V1 in ids:
        version = ApiVersion.V1
    elif STANDARD_ID_V0 in ids:
        version = ApiVersion.V0
    return Capabilities(standard_ids=ids, api_version=version)


# ---------------------------------------------------------------- Cavern (§7)

VOS_NS = "http://www.ivoa.net/xml/VOSpace/v2.0"
XSI_NS = "http://www.w3.org/2001/XMLSchema-instance"


class NodeKind(StrEnum):
    """The VOSpace node type, from `xsi:type` (§7)."""

    CONTAINER = "ContainerNode"
    DATA = "DataNode"
    LINK = "LinkNode"
    UNKNOWN = "Unknown"

    @classmethod
    def _missing_(cls, value: object) -> NodeKind:
        return cls.UNKNOWN


class CavernNode(_Wire):
    """A VOSpace node: its URI, kind, properties and (for containers) children (§7)."""

    uri: str
    kind: NodeKind = NodeKind.UNKNOWN
    properties: dict[str, str] = Field(default_factory=dict)
    children: list[CavernNode] = Field(default_factory=list)

    @property
    def name(self) -> str:
        """The last path segment of the node URI."""
        return self.uri.rstrip("/").rsplit("/", 1)[-1]


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _node_from_element(element: ET.Element) -> CavernNode:
    xsi_type = element.attrib.get(f"{{{XSI_NS}}}type", "")
    props: dict[str, str] = {}
    children: list[CavernNode] = []
    for part in element:
        if _local(part.tag) == "properties":
            for prop in part:
                if "uri" in prop.attrib:
                    props[prop.attrib["uri"]] = (prop.text or "").strip()
        elif _local(part.tag) == "nodes":
            children.extend(_node_from_element(child) for child in part)
    return CavernNode(
        uri=element.attrib.get("uri", ""),
        kind=NodeKind(xsi_type.rsplit(":", 1)[-1]),
        properties=props,
        children=children,
    )


def parse_node(xml_text: str) -> CavernNode:
    """Parse a `vos:node` document (§7, VOSpace 2.x namespace)."""
    return _node_from_element(ET.fromstring(xml_text))


def container_node_xml(uri: str) -> str:
    """The minimal container-node body a Cavern `PUT /nodes/...` accepts (§7)."""
    root = ET.Element(
        "vos:node",
        {
            "xmlns:vos": VOS_NS,
            "xmlns:xsi": XSI_NS,
            "uri": uri,
            "xsi:type": "vos:ContainerNode",
        },
    )
    ET.SubElement(root, "vos:properties")
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode")


# ---------------------------------------------------------------- Rucio (§8)


class RuleState(StrEnum):
    """Rucio rule states, serialised by enum name (§8); unknown names map to `UNKNOWN`."""

    REPLICATING = "REPLICATING"
    OK = "OK"
    STUCK = "STUCK"
    SUSPENDED = "SUSPENDED"
    WAITING_APPROVAL = "WAITING_APPROVAL"
    INJECT = "INJECT"
    UNKNOWN = "UNKNOWN"

    @classmethod
    def _missing_(cls, value: object) -> RuleState:
        return cls.UNKNOWN


class Did(_Wire):
    """A Rucio data identifier."""

    scope: str
    name: str


class RuleSpec(_Wire):
    """The body of `POST /rules/` (§8); None fields are left out of the request."""

    dids: list[Did]
    copies: int = 1
    rse_expression: str
    lifetime: int | None = None
    grouping: str = "DATASET"
    activity: str | None = None
    notify: str = "N"
    asynchronous: bool = False
    ask_approval: bool = False
    priority: int = 3
    comment: str | None = None

    def to_json(self) -> dict[str, Any]:
        """The JSON body, without null fields."""
        return self.model_dump(mode="json", exclude_none=True)


class RucioRule(_Wire):
    """A replication rule as `GET /rules/{id}` returns it (§8)."""

    id: str
    account: str = ""
    scope: str = ""
    name: str = ""
    did_type: str | None = None
    state: RuleState = RuleState.UNKNOWN
    error: str | None = None
    rse_expression: str = ""
    copies: int = 1
    expires_at: LenientDatetime = None
    locks_ok_cnt: int = 0
    locks_replicating_cnt: int = 0
    locks_stuck_cnt: int = 0
    grouping: str | None = None
    activity: str | None = None
    created_at: LenientDatetime = None
    updated_at: LenientDatetime = None
    comments: str | None = None
