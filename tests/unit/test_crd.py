"""The CRD generator: structural output, CEL rules, names, columns, and drift against crds/."""

from __future__ import annotations

from collections.abc import Iterator
from enum import StrEnum
from pathlib import Path
from typing import Any, Literal

import pytest
import yaml
from pydantic import Field

from skaha_operator import GROUP
from skaha_operator.domain import crd
from skaha_operator.domain.base import WireModel
from skaha_operator.domain.kinds import KINDS
from skaha_operator.domain.schema import SchemaError, to_structural

ROOT = Path(__file__).resolve().parents[2]
FORBIDDEN = {"$ref", "$defs", "title", "const", "uniqueItems", "oneOf", "allOf", "propertyNames"}


def nodes(schema: Any, path: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
    """Every schema node with its dotted path."""
    if not isinstance(schema, dict):
        return
    yield path, schema
    for name, sub in schema.get("properties", {}).items():
        yield from nodes(sub, f"{path}.{name}")
    if "items" in schema:
        yield from nodes(schema["items"], f"{path}[]")
    if isinstance(schema.get("additionalProperties"), dict):
        yield from nodes(schema["additionalProperties"], f"{path}{{}}")


def manifests() -> list[dict[str, Any]]:
    """The generated CRDs, parsed back from YAML."""
    return [yaml.safe_load(text) for text in crd.generate().values()]


def open_api(manifest: dict[str, Any]) -> dict[str, Any]:
    """The openAPIV3Schema of a CRD."""
    schema: dict[str, Any] = manifest["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    return schema


def rules_at(schema: dict[str, Any], *path: str) -> list[str]:
    """The CEL rules of the node at `path` (property names)."""
    node = schema
    for name in path:
        node = node["properties"][name]
    return [r["rule"] for r in node.get("x-kubernetes-validations", [])]


def test_committed_crds_match_the_models() -> None:
    """Drift test: regenerate with `make crds` when this fails."""
    assert crd.diff(ROOT / "crds") == ""
    assert len(list((ROOT / "crds").glob(f"{GROUP}_*.yaml"))) == len(KINDS)


@pytest.mark.parametrize("manifest", manifests(), ids=lambda m: m["spec"]["names"]["kind"])
def test_schema_is_structural(manifest: dict[str, Any]) -> None:
    for path, node in nodes(open_api(manifest)):
        assert not FORBIDDEN & node.keys(), path
        assert node.get("additionalProperties") is not False, path
        has_type = "type" in node or node.get("x-kubernetes-int-or-string")
        assert has_type, path
        assert not ("properties" in node and "additionalProperties" in node), path
        if "anyOf" in node:
            assert node["x-kubernetes-int-or-string"] is True, path
            assert [b["type"] for b in node["anyOf"]] == ["integer", "string"], path


@pytest.mark.parametrize("manifest", manifests(), ids=lambda m: m["spec"]["names"]["kind"])
def test_every_field_is_described_and_bounded(manifest: dict[str, Any]) -> None:
    schema = open_api(manifest)
    for part in ("spec", "status"):
        for path, node in nodes(schema["properties"][part], part):
            is_map_or_item = path.endswith(("[]", "{}"))
            if not is_map_or_item:
                assert node.get("description"), f"{path} has no description"
            # Bounds keep the estimated CEL cost within the API server's budget.
            if node.get("type") == "array":
                assert "maxItems" in node, path
            if node.get("type") == "string" and "enum" not in node and "format" not in node:
                assert "maxLength" in node, path


def test_names_columns_and_subresources() -> None:
    seen_short: set[str] = set()
    for manifest in manifests():
        names = manifest["spec"]["names"]
        version = manifest["spec"]["versions"][0]
        assert manifest["metadata"]["name"] == f"{names['plural']}.{GROUP}"
        assert names["categories"] == ["skaha"]
        assert names["singular"] == names["kind"].lower()
        assert not seen_short & set(names["shortNames"])
        seen_short |= set(names["shortNames"])
        assert manifest["spec"]["scope"] == "Namespaced"
        assert version["subresources"] == {"status": {}}
        columns = [c["name"] for c in version["additionalPrinterColumns"]]
        assert {"Phase", "Ready", "Age"} <= set(columns)
    plurals = {m["spec"]["names"]["kind"]: m["spec"]["names"]["plural"] for m in manifests()}
    assert plurals == {
        "SkahaPlatform": "skahaplatforms",
        "DockerContainer": "dockercontainers",
        "JupyterNotebook": "jupyternotebooks",
        "Storage": "storages",
        "Data": "data",
        "Compute": "computes",
        "Session": "sessions",
    }


def by_kind(kind: str) -> dict[str, Any]:
    """The openAPIV3Schema of one generated kind."""
    (found,) = [m for m in manifests() if m["spec"]["names"]["kind"] == kind]
    return open_api(found)


def test_terminal_phase_rule_on_every_lifecycle_status() -> None:
    for kind in ("DockerContainer", "JupyterNotebook", "Storage", "Data", "Compute"):
        (rule,) = rules_at(by_kind(kind), "status")
        assert "oldSelf.phase in ['Completed', 'Failed', 'Cancelled']" in rule
    (session_rule,) = rules_at(by_kind("Session"), "status")
    assert "['Completed', 'Failed', 'Cancelled', 'Expired']" in session_rule
    # The platform's phase is a probe result and may recover.
    assert rules_at(by_kind("SkahaPlatform"), "status") == []


def test_cross_field_and_immutability_rules() -> None:
    compute = by_kind("Compute")
    assert "self.type == 'headless' || !has(self.command)" in rules_at(compute, "spec")
    assert rules_at(compute, "spec", "type") == ["self == oldSelf"]
    data = by_kind("Data")
    assert any(".filter(x, x).size() == 1" in r for r in rules_at(data, "spec"))
    assert "self.allowInsecure || self.url.startsWith('https://')" in rules_at(data, "spec", "http")
    session = by_kind("Session")
    assert rules_at(session, "spec", "executable") == ["has(self.template) != has(self.ref)"]
    storages = session["properties"]["spec"]["properties"]["storages"]
    assert storages["x-kubernetes-list-type"] == "map"
    assert storages["x-kubernetes-list-map-keys"] == ["name"]
    schedule = session["properties"]["spec"]["properties"]["schedule"]
    (positive,) = rules_at(schedule, "duration")
    assert positive.endswith("|| duration(self) > duration('0s')")


def test_quantities_are_int_or_string_and_sets_are_list_types() -> None:
    size = by_kind("Storage")["properties"]["spec"]["properties"]["size"]
    assert size["x-kubernetes-int-or-string"] is True
    assert size["pattern"].startswith("^(\\+|-)?")
    refs = by_kind("Compute")["properties"]["spec"]["properties"]["storageRefs"]
    assert refs["x-kubernetes-list-type"] == "set"
    phase_times = by_kind("Compute")["properties"]["status"]["properties"]["phaseTimes"]
    assert phase_times["maxProperties"] == 9
    assert phase_times["x-kubernetes-validations"][0]["rule"].startswith("self.all(k, k in [")


class Colour(StrEnum):
    RED = "red"
    BLUE = "blue"


class Inner(WireModel):
    """An inner object."""

    size: int | str | None = Field(None, description="A quantity.")


class Outer(WireModel):
    """An outer object."""

    inner: Inner | None = Field(None, description="Overrides the inner docstring.")
    colour: Colour = Field(Colour.RED, description="A colour.")
    fixed: Literal["only"] = Field("only", description="One value.")
    tags: list[str] | None = Field(
        None, description="Tags.", json_schema_extra={"uniqueItems": True}
    )
    times: dict[Colour, str] | None = Field(None, description="Keyed by colour.")
    free: dict[str, Any] | None = Field(None, description="Anything.")


def test_to_structural_rewrites_each_pydantic_shape() -> None:
    schema = to_structural(Outer.model_json_schema(by_alias=True))
    props = schema["properties"]
    assert "additionalProperties" not in schema
    assert props["inner"] == {
        "type": "object",
        "description": "Overrides the inner docstring.",
        "properties": {
            "size": {
                "description": "A quantity.",
                "x-kubernetes-int-or-string": True,
            }
        },
    }
    assert props["colour"] == {
        "type": "string",
        "description": "A colour.",
        "default": "red",
        "enum": ["red", "blue"],
    }
    assert props["fixed"]["enum"] == ["only"]
    assert props["tags"]["x-kubernetes-list-type"] == "set"
    assert props["times"]["x-kubernetes-validations"] == [
        {"rule": "self.all(k, k in ['red', 'blue'])", "message": "keys must be one of red, blue"}
    ]
    assert props["times"]["maxProperties"] == 2
    assert props["free"]["x-kubernetes-preserve-unknown-fields"] is True


def test_to_structural_refuses_unions_a_crd_cannot_express() -> None:
    class Bad(WireModel):
        value: int | float | bool = Field(description="Ambiguous.")

    with pytest.raises(SchemaError, match="cannot express a union"):
        to_structural(Bad.model_json_schema())


def test_check_mode_reports_drift_and_write_mode_fixes_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert crd.main(["--out", str(tmp_path), "--check"]) == 1
    assert f"{GROUP}_sessions.yaml (generated)" in capsys.readouterr().out
    assert crd.main(["--out", str(tmp_path)]) == 0
    assert len(list(tmp_path.glob("*.yaml"))) == len(KINDS)
    assert crd.main(["--out", str(tmp_path), "--check"]) == 0
    target = tmp_path / f"{GROUP}_computes.yaml"
    target.write_text(target.read_text().replace("plural: computes", "plural: computers"))
    (tmp_path / f"{GROUP}_gone.yaml").write_text("stale\n")
    capsys.readouterr()
    assert crd.main(["--out", str(tmp_path), "--check"]) == 1
    out = capsys.readouterr().out
    assert "-    plural: computers\n+    plural: computes" in out
    assert "-stale" in out
    assert crd.main(["--out", str(tmp_path)]) == 0
    assert not (tmp_path / f"{GROUP}_gone.yaml").exists()


def test_every_kind_shows_its_reason_in_the_default_view() -> None:
    # `kubectl get` without -o wide shows priority-0 columns only: the reason must be one.
    for manifest in manifests():
        version = manifest["spec"]["versions"][0]
        (reason,) = [c for c in version["additionalPrinterColumns"] if c["name"] == "Reason"]
        assert reason["jsonPath"] == ".status.reason", manifest["metadata"]["name"]
        assert reason.get("priority", 0) == 0, manifest["metadata"]["name"]
