"""The back end's routes described once (`Operation`), and the OpenAPI 3.1 document made
from those descriptions and the pydantic models' JSON schemas. `app.create_app` mounts
the same `Operation`s, so a route cannot be served without being documented: the core's,
and each plugin's `Endpoint` (an `Operation` and its handler, from the
`mpforge_serve_routes` hook).
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel
from pydantic.json_schema import JsonSchemaMode, models_json_schema
from starlette.requests import Request
from starlette.responses import Response

from builder.serve.api_models import ErrorReply

SCHEMAS = "#/components/schemas/{model}"
# The path parameters every route may use; a route's own are in Operation.parameters.
PATH_PARAMETERS: Mapping[str, Mapping[str, Any]] = {
    "appid": {"description": "the mini-program's Alipay app id", "schema": {"type": "string",
                                                                              "pattern": "^20[0-9]{14}$"}},
    "version": {"description": "a content version number (0: the spec's own content)",
                "schema": {"type": "string", "pattern": "^[0-9]{1,9}$"}},
}


@dataclass(frozen=True)
class Operation:
    """One route. `responses`: status -> (description, body models: none, one, or one of
    several); `session`: whether `Authorization: Bearer <token>` is required, optional or
    not used, and `security` which token: a user's session or the app's publish token."""

    name: str  # the operationId
    method: Literal["GET", "POST", "DELETE"]
    path: str
    summary: str
    responses: Mapping[int, tuple[str, tuple[type[BaseModel], ...]]]
    request: type[BaseModel] | None = None
    request_required: bool = True
    session: Literal["required", "optional", "none"] = "none"
    security: Literal["session", "publish"] = "session"
    # A required request header -> its description and the pattern its value matches.
    headers: Mapping[str, tuple[str, str]] = field(default_factory=dict)
    response_headers: Mapping[int, Mapping[str, str]] = field(default_factory=dict)
    # A path parameter of this route's own -> its OpenAPI parameter fields (description, schema).
    parameters: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        unknown = [name for name in self.path_parameters if name not in {**PATH_PARAMETERS, **self.parameters}]
        if unknown:
            raise ValueError(f"operation {self.name}: path parameter {', '.join(unknown)} is not described; "
                             "describe it in Operation(parameters={name: {'description': ..., 'schema': ...}})")

    @property
    def path_parameters(self) -> list[str]:
        return re.findall(r"{(\w+)}", self.path)


Handler = Callable[[Request], Awaitable[Response]]


@dataclass(frozen=True)
class Endpoint:
    """A route and what answers it: `handler(request)`, which finds the state it shares
    with the other routes with `builder.serve.app.serve_api(request)`."""

    operation: Operation
    handler: Handler


def _models(operations: Iterable[Operation]) -> list[tuple[type[BaseModel], JsonSchemaMode]]:
    found: dict[tuple[type[BaseModel], JsonSchemaMode], None] = {}
    for op in operations:
        if op.request is not None:
            found[(op.request, "validation")] = None
        for _, models in op.responses.values():
            for model in models:
                found[(model, "serialization")] = None
    return list(found)


Refs = Mapping[tuple[Any, JsonSchemaMode], Any]  # (model, mode) -> its {"$ref": ...}


def _operation(op: Operation, refs: Refs) -> dict[str, Any]:
    described = {**PATH_PARAMETERS, **op.parameters}
    parameters: list[dict[str, Any]] = [{"name": name, "in": "path", "required": True, **described[name]}
                                        for name in op.path_parameters]
    parameters += [{"name": name, "in": "header", "required": True, "description": text,
                    "schema": {"type": "string", "pattern": pattern}} for name, (text, pattern) in op.headers.items()]
    spec: dict[str, Any] = {"summary": op.summary, "operationId": op.name,
                            "parameters": parameters, "responses": {}}
    if op.request is not None:
        spec["requestBody"] = {"required": op.request_required,
                               "content": {"application/json": {"schema": refs[(op.request, "validation")]}}}
    if op.session == "required":
        spec["security"] = [{op.security: []}]
    elif op.session == "optional":
        spec["security"] = [{op.security: []}, {}]
    for status, (description, models) in sorted(op.responses.items()):
        response: dict[str, Any] = {"description": description}
        schemas = [refs[(model, "serialization")] for model in models]
        if schemas:
            schema = schemas[0] if len(schemas) == 1 else {"oneOf": schemas}
            response["content"] = {"application/json": {"schema": schema}}
        if status in op.response_headers:
            response["headers"] = {name: {"description": text, "schema": {"type": "string"}}
                                   for name, text in op.response_headers[status].items()}
        spec["responses"][str(status)] = response
    return spec


def document(operations: Iterable[Operation], *, title: str, version: str) -> dict[str, Any]:
    """The OpenAPI 3.1 document of `operations`; every error body is an ErrorReply."""
    operations = list(operations)
    refs, schemas = models_json_schema([*_models(operations), (ErrorReply, "serialization")],
                                       ref_template=SCHEMAS)
    paths: dict[str, dict[str, Any]] = {}
    for op in operations:
        paths.setdefault(op.path, {})[op.method.lower()] = _operation(op, refs)
    return {
        "openapi": "3.1.0",
        "info": {"title": title, "version": version},
        "paths": paths,
        "components": {
            "schemas": schemas.get("$defs", {}),
            "securitySchemes": {"session": {"type": "http", "scheme": "bearer",
                                            "description": "the token POST /session returns"},
                                "publish": {"type": "http", "scheme": "bearer",
                                            "description": "the app's publish token: the value of "
                                                           "MPFORGE_PUBLISH_TOKEN_<appid> where the server runs"}},
        },
    }
