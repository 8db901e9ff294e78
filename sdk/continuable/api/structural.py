"""Turns pydantic's JSON Schema into a Kubernetes structural schema.

`model_json_schema()` output is not valid in a CRD as it is (see DESIGN.md, "Generating the CRD
from pydantic"): references must be inlined, `anyOf [X, null]` becomes `X` + `nullable`, and a
few keywords are spelt the OpenAPI v3.0 / Kubernetes way. `forbidden_keys` is the walk the unit
tests run over the result; the API server stays the final judge.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

Schema = dict[str, Any]

_DROPPED = {"title", "$defs"}
_COMBINATORS = ("anyOf", "allOf", "oneOf", "not")
# Keys the API server refuses anywhere in a structural schema.
_FORBIDDEN_ANYWHERE = {"$ref", "$defs", "definitions", "const", "title", "uniqueItems", "examples"}
# Keys the API server refuses inside anyOf/allOf/oneOf/not.
_FORBIDDEN_IN_COMBINATOR = {"type", "nullable", "default", "additionalProperties"}


def structural(schema: Schema) -> Schema:
    """The structural form of a top-level pydantic JSON schema (with its `$defs`)."""
    definitions = schema.get("$defs", {})
    return _convert(schema, definitions)


def _resolve(node: Schema, definitions: Schema) -> Schema:
    if "$ref" not in node:
        return node
    name = node["$ref"].rsplit("/", 1)[-1]
    siblings = {k: v for k, v in node.items() if k != "$ref"}
    # The field's own description and default are more specific than the model's.
    return {**_resolve(definitions[name], definitions), **siblings}


def _convert(node: Schema, definitions: Schema) -> Schema:
    node = _resolve(node, definitions)
    variants = node.get("anyOf")
    if variants is not None:
        non_null = [v for v in variants if v.get("type") != "null"]
        if len(non_null) != len(variants) and len(non_null) == 1:
            outer = {k: v for k, v in node.items() if k != "anyOf"}
            node = {**_resolve(non_null[0], definitions), **outer, "nullable": True}
    out: Schema = {}
    for key, value in node.items():
        if key in _DROPPED or (key == "default" and value is None):
            continue
        if key == "const":
            out["enum"] = [value]
        elif key == "uniqueItems":
            if value:
                out["x-kubernetes-list-type"] = "set"
        elif key == "exclusiveMinimum" and not isinstance(value, bool):
            out["minimum"] = value
            out["exclusiveMinimum"] = True
        elif key == "exclusiveMaximum" and not isinstance(value, bool):
            out["maximum"] = value
            out["exclusiveMaximum"] = True
        elif key == "additionalProperties":
            if value is True or value == {}:
                out["x-kubernetes-preserve-unknown-fields"] = True
            elif value is not False:
                out[key] = _convert(value, definitions)
        elif key == "properties":
            out[key] = {name: _convert(sub, definitions) for name, sub in value.items()}
        elif key == "items":
            out[key] = _convert(value, definitions)
        elif key == "description":
            # Docstrings wrap at the source's width; kubectl explain wraps on its own.
            out[key] = " ".join(value.split())
        elif key == "not":
            out[key] = _convert(value, definitions)
        elif key in _COMBINATORS:
            out[key] = [_convert(sub, definitions) for sub in value]
        else:
            out[key] = value
    if "enum" in out and "type" not in out:
        out["type"] = _json_type(out["enum"][0])
    if "type" not in out and not _has_structure(out):
        # A free JSON value (a cursor, a result): any type, kept as it is.
        out["x-kubernetes-preserve-unknown-fields"] = True
    return out


def _has_structure(node: Schema) -> bool:
    return any(k in node for k in ("properties", "items", *_COMBINATORS))


def _json_type(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    return "string"


def forbidden_keys(schema: Schema, path: str = "") -> Iterator[str]:
    """Every place where `schema` breaks a rule of structural schemas, as `path: problem`."""
    for key in _FORBIDDEN_ANYWHERE & schema.keys():
        yield f"{path or '.'}: {key} is not allowed"
    untyped_allowed = ("x-kubernetes-preserve-unknown-fields", "x-kubernetes-int-or-string")
    if "type" not in schema and not any(schema.get(k) for k in untyped_allowed):
        yield f"{path or '.'}: type is missing"
    if schema.get("additionalProperties") is False:
        yield f"{path or '.'}: additionalProperties false is not allowed"
    if "properties" in schema and "additionalProperties" in schema:
        yield f"{path or '.'}: properties and additionalProperties are exclusive"
    for name, sub in schema.get("properties", {}).items():
        yield from forbidden_keys(sub, f"{path}.{name}")
    if isinstance(schema.get("items"), dict):
        yield from forbidden_keys(schema["items"], f"{path}[]")
    if isinstance(schema.get("additionalProperties"), dict):
        yield from forbidden_keys(schema["additionalProperties"], f"{path}{{}}")
    for combinator in _COMBINATORS:
        subs = schema.get(combinator, [])
        for index, sub in enumerate(subs if isinstance(subs, list) else [subs]):
            where = f"{path}.{combinator}[{index}]"
            for key in sorted(_FORBIDDEN_IN_COMBINATOR & sub.keys()):
                yield f"{where}: {key} is not allowed inside {combinator}"
            if any(k.startswith("x-kubernetes-") for k in sub):
                yield f"{where}: x-kubernetes-* is not allowed inside {combinator}"
