"""Turn a pydantic v2 JSON schema into a Kubernetes structural schema.

Each rewrite answers a shape listed in docs/kubernetes-notes.md §6: `$ref`s are inlined (a CRD has
no references), `anyOf` with null collapses to the plain type (an absent field; the API server
prunes nulls of non-nullable fields), `integer | string` becomes x-kubernetes-int-or-string,
`const` becomes a one-value `enum`, `uniqueItems` becomes `x-kubernetes-list-type: set`,
`additionalProperties: false` and `title` are dropped, and `propertyNames` (enum-keyed maps)
becomes a CEL rule on the keys.
"""

from __future__ import annotations

from typing import Any

Schema = dict[str, Any]

_RULES = "x-kubernetes-validations"
_NULL = {"type": "null"}


class SchemaError(ValueError):
    """A pydantic schema shape the generator cannot express in a CRD."""


_FIRST = ("type", "description")


def to_structural(schema: Schema) -> Schema:
    """Return a structural copy of a pydantic `model_json_schema()` output."""
    defs = schema.get("$defs", {})
    tidy: Schema = _tidy(_convert(schema, defs))
    return tidy


def _tidy(node: Any) -> Any:
    """Drop titles and order keys (type, description, then alphabetical) for readable YAML."""
    if isinstance(node, list):
        return [_tidy(v) for v in node]
    if not isinstance(node, dict):
        return node
    keys = [k for k in _FIRST if k in node] + sorted(k for k in node if k not in _FIRST)
    out = {}
    for key in keys:
        if key == "title" and isinstance(node[key], str):
            continue
        # Property maps keep the model's field order (kubectl explain shows it).
        out[key] = (
            {name: _tidy(sub) for name, sub in node[key].items()}
            if key == "properties"
            else _tidy(node[key])
        )
    return out


def _merge(base: Schema, over: Schema) -> Schema:
    """Overlay `over` on `base`, concatenating CEL rules instead of replacing them."""
    merged = {**base, **over}
    rules = list(base.get(_RULES, [])) + list(over.get(_RULES, []))
    if rules:
        merged[_RULES] = rules
    return merged


def _resolve(node: Schema, defs: Schema) -> Schema:
    """Inline a `$ref` (with its siblings overriding the referenced definition)."""
    ref = node["$ref"]
    prefix = "#/$defs/"
    if not ref.startswith(prefix):
        raise SchemaError(f"unsupported reference {ref}")
    target = defs[ref[len(prefix) :]]
    siblings = _rewrite_keys({k: v for k, v in node.items() if k != "$ref"}, defs)
    return _merge(_convert(target, defs), siblings)


def _collapse_any_of(node: Schema, defs: Schema) -> Schema:
    """Rewrite `anyOf` into one structural node."""
    branches = [b for b in node["anyOf"] if b != _NULL]
    # _rewrite_keys also drops the `default: null` that comes with an Optional field.
    rest = _rewrite_keys({k: v for k, v in node.items() if k != "anyOf"}, defs)
    if len(branches) == 1:
        return _merge(_convert(branches[0], defs), rest)
    converted = [_convert(b, defs) for b in branches]
    types = sorted(b.get("type", "") for b in converted)
    if types != ["integer", "string"]:
        raise SchemaError(f"cannot express a union of {types} in a CRD")
    # int-or-string: type-less anyOf branches, constraints hoisted (each applies to its type).
    out: Schema = {"x-kubernetes-int-or-string": True}
    for branch in converted:
        out.update({k: v for k, v in branch.items() if k != "type"})
    return _merge(out, rest)


def _key_rule(names: Schema, defs: Schema) -> Schema:
    """A CEL rule standing in for `propertyNames` (enum-keyed maps)."""
    names = _convert(names, defs)
    allowed = names.get("enum")
    if not allowed:
        raise SchemaError("propertyNames without an enum cannot be expressed in a CRD")
    listed = ", ".join(f"'{v}'" for v in allowed)
    return {
        "rule": f"self.all(k, k in [{listed}])",
        "message": "keys must be one of " + ", ".join(allowed),
    }


def _convert(node: Schema, defs: Schema) -> Schema:
    """Convert one schema node, recursively."""
    if "$ref" in node:
        return _resolve(node, defs)
    if "anyOf" in node:
        return _collapse_any_of(node, defs)
    if "oneOf" in node or "allOf" in node:
        raise SchemaError("oneOf/allOf are not generated; use flat fields and a CEL rule")
    out = _rewrite_keys(node, defs)
    if out == {} or ("type" not in out and not _typeless_ok(out)):
        out["x-kubernetes-preserve-unknown-fields"] = True
        out.setdefault("type", "object")
    return out


def _rewrite_keys(node: Schema, defs: Schema) -> Schema:
    """Rewrite the keywords of one node that a structural schema forbids or spells otherwise."""
    out: Schema = {}
    for key, value in node.items():
        match key:
            case "$defs" | "title":
                continue
            case "default" if value is None:
                continue
            case "additionalProperties":
                out.update(_additional(value, defs))
            case "const":
                out["enum"] = [value]
            case "uniqueItems":
                if value:
                    out["x-kubernetes-list-type"] = "set"
            case "properties":
                out[key] = {name: _convert(sub, defs) for name, sub in value.items()}
            case "items":
                out[key] = _convert(value, defs)
            case "x-kubernetes-validations" | "propertyNames":
                out[_RULES] = [*out.get(_RULES, []), *_rules_of(key, value, defs)]
            case _:
                out[key] = value
    if "propertyNames" in node:
        out.setdefault("maxProperties", len(_convert(node["propertyNames"], defs)["enum"]))
    return out


def _additional(value: Any, defs: Schema) -> Schema:
    """`additionalProperties`: false is dropped, true keeps unknown fields, a schema is a map."""
    if value is True:
        return {"x-kubernetes-preserve-unknown-fields": True}
    if isinstance(value, dict):
        return {"additionalProperties": _convert(value, defs)}
    return {}


def _rules_of(key: str, value: Any, defs: Schema) -> list[Schema]:
    """CEL rules carried by a keyword: the rules themselves, or a rule for `propertyNames`."""
    return [_key_rule(value, defs)] if key == "propertyNames" else list(value)


def _typeless_ok(node: Schema) -> bool:
    """Whether a node may lack `type` in a structural schema."""
    return bool(
        node.get("x-kubernetes-int-or-string") or node.get("x-kubernetes-preserve-unknown-fields")
    )
