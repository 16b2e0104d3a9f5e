"""Validate JSON against the service's generated OpenAPI document (Draft 2020-12, the
document's components as the registry, formats checked), so that a test compares what
the service really answers with what the document promises."""

from __future__ import annotations

import re
from functools import cache
from typing import Any

import jsonschema
from referencing import Registry
from referencing.jsonschema import DRAFT202012

from pbx_bridge.api.openapi import build_document

JSON = "application/json"
_DOC_URI = "urn:pbx-bridge:openapi"
# /uapi/phoneCalls/{userId}/{extension}[/{phoneCallId}] and the singular alias.
_PHONE_CALLS = re.compile(r"(/uapi/phoneCalls?)/[^/]+/[^/]+(/[^/]+)?/?")


@cache
def document() -> dict[str, Any]:
    return build_document()


@cache
def _registry() -> Registry:
    return Registry().with_resource(_DOC_URI, DRAFT202012.create_resource(document()))


def validator(schema: dict[str, Any]) -> jsonschema.Draft202012Validator:
    """A validator for ``schema``: one of the document's, or one that references its
    ``#/components/schemas``."""
    return jsonschema.Draft202012Validator(
        _rebased(schema),
        registry=_registry(),
        format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER,
    )


def _rebased(node: Any) -> Any:
    """``schema`` with its document-relative ``$ref``s pointing into the registry."""
    if isinstance(node, dict):
        return {
            key: (_DOC_URI + value if key == "$ref" and value.startswith("#/") else
                  _rebased(value))
            for key, value in node.items()
        }
    if isinstance(node, list):
        return [_rebased(item) for item in node]
    return node


def component(name: str) -> jsonschema.Draft202012Validator:
    """A validator for ``components.schemas[name]``."""
    return validator({"$ref": f"#/components/schemas/{name}"})


def answer_schema(method: str, path: str, status: int) -> dict[str, Any] | None:
    """The documented JSON schema of a PhoneCalls answer (None: not a PhoneCalls route)."""
    match = _PHONE_CALLS.fullmatch(path)
    if match is None:
        return None
    template = match[1] + "/{userId}/{extension}" + ("/{phoneCallId}" if match[2] else "")
    response = document()["paths"][template][method.lower()]["responses"][str(status)]
    return response["content"][JSON]["schema"]
