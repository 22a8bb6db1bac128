"""The pydantic base classes every kind is built from, and the CRD metadata each kind declares.

Owns the wire conventions: snake_case in Python, camelCase on the wire (an alias generator),
`model_validate` takes the dict the API server returns and `to_wire()` gives it back.
CEL rules live next to the models (`cel_rules` on a class, `json_schema_extra` on a field),
so the models stay the single source of the CRD schemas. Pure: no kopf, kubernetes or httpx.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field, GetJsonSchemaHandler, model_validator
from pydantic.alias_generators import to_camel
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import CoreSchema

from skaha_operator import GROUP, VERSION

API_VERSION = f"{GROUP}/{VERSION}"


@dataclass(frozen=True)
class Rule:
    """One CEL `x-kubernetes-validations` entry (docs/kubernetes-notes.md §5)."""

    rule: str
    message: str
    field_path: str | None = None
    reason: str | None = None

    def to_schema(self) -> dict[str, str]:
        """The rule as it appears in the CRD schema."""
        out = {"rule": self.rule, "message": self.message}
        if self.field_path is not None:
            out["fieldPath"] = self.field_path
        if self.reason is not None:
            out["reason"] = self.reason
        return out


def cel(*rules: Rule) -> dict[str, Any]:
    """A `json_schema_extra` dict carrying field-level CEL rules."""
    return {"x-kubernetes-validations": [r.to_schema() for r in rules]}


def immutable(what: str) -> Rule:
    """A transition rule forbidding any change after creation."""
    return Rule(
        rule="self == oldSelf",
        message=f"{what} is immutable: create a new object instead",
        reason="FieldValueForbidden",
    )


def frozen(field: str, instead: str = "create a new object instead") -> Rule:
    """A rule on the enclosing object: `field` may not be set, changed or removed after creation.

    A field-level `self == oldSelf` is not evaluated when an optional field is added or removed;
    this one is (docs/design.md §4.10: every edit is applied or refused).
    """
    return Rule(
        rule=f"has(self.{field}) == has(oldSelf.{field}) && "
        f"(!has(self.{field}) || self.{field} == oldSelf.{field})",
        message=f"{field} cannot change after creation: {instead}",
        field_path=f".{field}",
        reason="FieldValueForbidden",
    )


def start_frozen_unless(condition: str, when: str) -> Rule:
    """A rule on the whole object: spec.schedule.start changes only while `condition` holds."""
    start = "spec.schedule.start"
    same = (
        f"(has(self.spec.schedule) && has(self.{start})) == "
        f"(has(oldSelf.spec.schedule) && has(oldSelf.{start})) && "
        f"(!has(self.spec.schedule) || !has(self.{start}) || self.{start} == oldSelf.{start})"
    )
    return Rule(
        rule=f"({same}) || ({condition})",
        message=f"spec.schedule.start can change only {when}",
        field_path=".spec.schedule.start",
        reason="FieldValueForbidden",
    )


class WireModel(BaseModel):
    """Base of every model: camelCase aliases, unknown fields refused, class-level CEL rules."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        validate_by_name=True,
        validate_by_alias=True,
        serialize_by_alias=True,
        extra="forbid",
    )

    # CEL rules on this object's schema; collected along the class hierarchy so that a
    # spec built on a template keeps the template's rules.
    cel_rules: ClassVar[tuple[Rule, ...]] = ()

    @classmethod
    def __get_pydantic_json_schema__(
        cls, core_schema: CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        """Attach the class's CEL rules (and its ancestors') to its JSON schema."""
        schema = handler(core_schema)
        rules: list[dict[str, str]] = []
        for klass in reversed(cls.__mro__):
            for r in klass.__dict__.get("cel_rules", ()):
                rules.append(r.to_schema())
        if rules:
            target = handler.resolve_ref_schema(schema)
            target["x-kubernetes-validations"] = rules
        return schema

    def to_wire(self) -> dict[str, Any]:
        """The dict to send to the API server (camelCase, no nulls, JSON types)."""
        return self.model_dump(by_alias=True, exclude_none=True, mode="json")


@dataclass(frozen=True)
class PrinterColumn:
    """One `additionalPrinterColumns` entry."""

    name: str
    type: str
    json_path: str
    description: str
    priority: int = 0
    format: str | None = None

    def to_schema(self) -> dict[str, Any]:
        """The column as it appears in the CRD."""
        out: dict[str, Any] = {
            "name": self.name,
            "type": self.type,
            "jsonPath": self.json_path,
            "description": self.description,
        }
        if self.format is not None:
            out["format"] = self.format
        if self.priority:
            out["priority"] = self.priority
        return out


PHASE_COLUMN = PrinterColumn("Phase", "string", ".status.phase", "Lifecycle phase")
READY_COLUMN = PrinterColumn(
    "Ready", "string", '.status.conditions[?(@.type=="Ready")].status', "Ready condition"
)
AGE_COLUMN = PrinterColumn("Age", "date", ".metadata.creationTimestamp", "Time since creation")
# Priority 0: the reason is in the default `kubectl get` view, where people look first.
REASON_COLUMN = PrinterColumn(
    "Reason", "string", ".status.reason", "Why the object is in its phase"
)


@dataclass(frozen=True)
class CrdInfo:
    """Names and table columns of one kind's CRD."""

    kind: str
    plural: str
    short_names: tuple[str, ...]
    columns: tuple[PrinterColumn, ...]
    categories: tuple[str, ...] = field(default=("skaha",))

    @property
    def singular(self) -> str:
        """The lower-case singular name."""
        return self.kind.lower()

    @property
    def name(self) -> str:
        """The CRD's metadata.name, `<plural>.<group>`."""
        return f"{self.plural}.{GROUP}"


class KindModel(WireModel):
    """A whole object: apiVersion, kind, metadata (a plain dict), spec and status."""

    crd: ClassVar[CrdInfo]

    api_version: str = Field(API_VERSION, description="Always skaha.broker.dev/v1alpha1.")
    kind: str = Field(description="The kind's name.")
    metadata: dict[str, Any] = Field(
        default_factory=dict, description="Standard object metadata, kept as a plain dict."
    )

    @model_validator(mode="before")
    @classmethod
    def _check_identity(cls, data: Any) -> Any:
        """Refuse another group, version or kind; fill `kind` when built in Python."""
        if not isinstance(data, dict):
            return data
        api_version = data.get("apiVersion", data.get("api_version", API_VERSION))
        if api_version != API_VERSION:
            raise ValueError(f"apiVersion must be {API_VERSION}, got {api_version}")
        kind = data.get("kind", cls.crd.kind)
        if kind != cls.crd.kind:
            raise ValueError(f"kind must be {cls.crd.kind}, got {kind}")
        return {**data, "kind": kind}
