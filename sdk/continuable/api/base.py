"""The base every API model derives from.

Field names are snake_case in Python and camelCase on the wire, as Kubernetes spells them.
Cross-field rules are declared once as `Rule`s: the CRD generator renders them as CEL
`x-kubernetes-validations`, and the same model refuses them in Python, so the operator and the
API server agree on what is valid.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any, ClassVar, Self, TypeVar

from pydantic import AfterValidator, BaseModel, ConfigDict, GetJsonSchemaHandler, model_validator
from pydantic.alias_generators import to_camel
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import CoreSchema

T = TypeVar("T")


@dataclass(frozen=True)
class Rule:
    """A cross-field check: `cel` for the API server, `holds` for Python, one message for both."""

    cel: str
    message: str
    holds: Callable[[Any], bool]
    # The field the message is about, so the API server names it (CEL `fieldPath`).
    field_path: str | None = None

    def to_validation(self) -> dict[str, str]:
        validation = {"rule": self.cel, "message": self.message}
        if self.field_path is not None:
            validation["fieldPath"] = self.field_path
        return validation


def _no_repeats(values: list[Any]) -> list[Any]:
    seen: set[Any] = set()
    repeated = []
    for value in values:
        if value in seen and value not in repeated:
            repeated.append(value)
        seen.add(value)
    if repeated:
        raise ValueError(f"must not repeat a value, repeated: {repeated}")
    return values


class _MarkUnique:
    """Renders `uniqueItems`, which the CRD generator turns into `x-kubernetes-list-type: set`
    (the API server then refuses duplicates itself)."""

    def __get_pydantic_json_schema__(
        self, core_schema: CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        schema = handler(core_schema)
        schema["uniqueItems"] = True
        return schema


UniqueList = Annotated[list[T], AfterValidator(_no_repeats), _MarkUnique()]


class ApiModel(BaseModel):
    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="forbid",
        validate_assignment=True,
    )

    cross_field_rules: ClassVar[tuple[Rule, ...]] = ()

    @classmethod
    def __get_pydantic_json_schema__(
        cls, core_schema: CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        schema = super().__get_pydantic_json_schema__(core_schema, handler)
        if cls.cross_field_rules:
            target = handler.resolve_ref_schema(schema)
            target["x-kubernetes-validations"] = [r.to_validation() for r in cls.cross_field_rules]
        return schema

    @model_validator(mode="after")
    def _check_rules(self) -> Self:
        for rule in type(self).cross_field_rules:
            if not rule.holds(self):
                where = f"{rule.field_path}: " if rule.field_path else ""
                raise ValueError(f"{where}{rule.message}")
        return self

    def to_wire(self) -> dict[str, Any]:
        """The object as the API server stores it: camelCase, unset optionals left out."""
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)


class OpenApiModel(ApiModel):
    """A model for an embedded Kubernetes object we only partly describe: unknown fields kept."""

    model_config = ConfigDict(extra="allow")
