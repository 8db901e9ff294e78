"""The generated CRD: structural, documented, and in step with the models."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from continuable.api import ContinuableJob, ContinuableJobSpec
from continuable.api.crd import PRINTER_COLUMNS, custom_resource_definition, open_api_schema, render
from continuable.api.structural import Schema, forbidden_keys, structural


def _walk(schema: Schema, path: str = "") -> list[tuple[str, Schema]]:
    nodes = [(path, schema)]
    for name, sub in schema.get("properties", {}).items():
        nodes += _walk(sub, f"{path}.{name}")
    if isinstance(schema.get("items"), dict):
        nodes += _walk(schema["items"], f"{path}[]")
    return nodes


def test_generated_schema_is_structural() -> None:
    assert list(forbidden_keys(open_api_schema())) == []


@pytest.mark.parametrize(
    ("bad", "problem"),
    [
        ({"$ref": "#/$defs/X"}, "$ref is not allowed"),
        ({"type": "string", "const": "a"}, "const is not allowed"),
        ({"type": "string", "title": "A"}, "title is not allowed"),
        ({"description": "no type"}, "type is missing"),
        ({"type": "object", "additionalProperties": False}, "additionalProperties false"),
        (
            {"type": "object", "properties": {}, "additionalProperties": {"type": "string"}},
            "exclusive",
        ),
        ({"type": "string", "anyOf": [{"type": "string"}]}, "type is not allowed inside anyOf"),
        ({"type": "string", "anyOf": [{"nullable": True}]}, "nullable is not allowed inside"),
        (
            {"type": "object", "properties": {"a": {"type": "array", "uniqueItems": True}}},
            ".a: uniqueItems",
        ),
    ],
)
def test_the_walk_finds_what_the_api_server_refuses(bad: Schema, problem: str) -> None:
    assert any(problem in found for found in forbidden_keys(bad))


def test_conversion_of_pydantic_idioms() -> None:
    converted = structural(
        {
            "type": "object",
            "properties": {
                "a": {"anyOf": [{"type": "integer", "exclusiveMinimum": 0}, {"type": "null"}]},
                "b": {"const": "x"},
                "c": {},
                "d": {"$ref": "#/$defs/D", "description": "field doc"},
            },
            "$defs": {"D": {"type": "object", "title": "D", "description": "model doc"}},
        }
    )
    props = converted["properties"]
    assert props["a"] == {
        "type": "integer",
        "minimum": 0,
        "exclusiveMinimum": True,
        "nullable": True,
    }
    assert props["b"] == {"enum": ["x"], "type": "string"}
    assert props["c"] == {"x-kubernetes-preserve-unknown-fields": True}
    assert props["d"] == {"type": "object", "description": "field doc"}


def test_every_field_has_a_description() -> None:
    undocumented = [
        path
        for path, node in _walk(open_api_schema()["properties"]["spec"], "spec")
        + _walk(open_api_schema()["properties"]["status"], "status")
        if "description" not in node and not path.endswith("[]")
    ]
    assert undocumented == []


def test_printer_columns_point_at_schema_fields() -> None:
    paths = {path for path, _ in _walk(open_api_schema())}
    names = [column["name"] for column in PRINTER_COLUMNS]
    assert names == ["Phase", "Step", "Progress", "Attempt", "Age"]
    for column in PRINTER_COLUMNS:
        if column["jsonPath"] != ".metadata.creationTimestamp":
            assert column["jsonPath"] in paths


def test_crd_names_and_subresources() -> None:
    spec = custom_resource_definition()["spec"]
    assert spec["names"]["shortNames"] == ["cjob"]
    assert spec["names"]["categories"] == ["all"]
    assert spec["versions"][0]["subresources"] == {"status": {}}


def _schema_node(path: str) -> Schema:
    node = open_api_schema()
    for name in path.split("."):
        node = node["properties"][name]
    return node


def test_cross_field_rules_are_rendered_as_cel() -> None:
    assert "self.metadata.name" in open_api_schema()["x-kubernetes-validations"][0]["rule"]
    assert _schema_node("spec.backoff")["x-kubernetes-validations"][0]["rule"] == (
        "!has(self.maxSeconds) || self.maxSeconds >= self.initialSeconds"
    )
    rules = _schema_node("spec")["x-kubernetes-validations"]
    assert any("activeDeadlineSeconds" in rule["rule"] for rule in rules)


def _defaults(schema: Schema) -> dict[str, Any]:
    return {name: sub["default"] for name, sub in schema["properties"].items() if "default" in sub}


def test_schema_defaults_equal_model_defaults() -> None:
    spec = ContinuableJobSpec.model_validate(
        {"template": {"spec": {"containers": [{"name": "c"}]}}}
    )
    wire = spec.to_wire()
    schema = _schema_node("spec")
    assert _defaults(schema) == {k: wire[k] for k in _defaults(schema)}
    for nested in ("backoff", "checkpoint"):
        assert schema["properties"][nested]["default"] == wire[nested]
        assert _defaults(schema["properties"][nested]) == wire[nested]


def test_rendered_yaml_parses_back() -> None:
    text = render()
    assert text.startswith("# Generated by `make crds`")
    assert yaml.safe_load(text) == custom_resource_definition()


def test_status_checkpoint_cursor_accepts_any_json() -> None:
    cursor = _schema_node("status.checkpoint.steps")["items"]["properties"]["cursor"]
    assert cursor == {
        "description": cursor["description"],
        "x-kubernetes-preserve-unknown-fields": True,
    }
    assert ContinuableJob.model_fields["status"].is_required() is False


def test_max_seconds_has_no_schema_default() -> None:
    """Its effective value when omitted, max(360, initialSeconds), is no constant: a schema
    default of 360 would break the CEL rule for `initialSeconds: 600` alone."""
    backoff = _schema_node("spec.backoff")
    assert "default" not in backoff["properties"]["maxSeconds"]
    assert "maxSeconds" not in backoff["default"]
    assert "max(360, initialSeconds)" in backoff["properties"]["maxSeconds"]["description"]


def test_max_resumptions_names_every_interruption_it_counts() -> None:
    """`kubectl explain cjob.spec.maxResumptions` is where a user learns what counts."""
    description = _schema_node("spec.maxResumptions")["description"]
    counted = [
        "preemption",
        "eviction",
        "node drain",
        "deletion of its pod",
        "rollout of a new template",
        "suspend",
        "continuable interrupt",
        "exit 75",
        "podFailurePolicy Ignore rule",
        "Lost",
    ]
    not_counted = ["isolated step", "continuable restart"]
    assert [w for w in counted + not_counted if w not in description] == []
    assert "ResumeLimitExceeded" in description


def test_status_enums_hold_the_new_outcome_and_condition_types() -> None:
    attempts = _schema_node("status.attempts")["items"]["properties"]
    assert attempts["outcome"]["enum"] == [
        "Running",
        "Succeeded",
        "Interrupted",
        "Isolated",
        "Failed",
        "Lost",
    ]
    condition = _schema_node("status.conditions")["items"]["properties"]
    new = {"NameConflict", "ServiceAccountShared", "RestartRefused"}
    assert new <= set(condition["type"]["enum"])
    description = _schema_node("status.conditions")["description"]
    assert [t for t in condition["type"]["enum"] if t not in description] == []


def test_condition_reasons_are_checked_as_metav1_condition_checks_them() -> None:
    reason = _schema_node("status.conditions")["items"]["properties"]["reason"]
    assert reason["pattern"] == "^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$"
    assert (reason["minLength"], reason["maxLength"]) == (1, 1024)
