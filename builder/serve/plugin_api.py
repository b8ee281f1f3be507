"""The back-end API for plugin authors: what a plugin's `serve.py` imports to implement
`mpforge_serve_routes`, `mpforge_serve_pages` (web pages outside the API: starlette
routes whose handlers may use `serve_api` and raise `ApiError` too), `mpforge_serve_tasks`,
`mpforge_serve_sold_out`, `mpforge_sandbox_methods`, `mpforge_sandbox_routes` and
`mpforge_serve_migrations` (builder.hookspecs documents them).

    from builder.serve.plugin_api import ApiError, Endpoint, Operation, reply, serve_api

Separate from `builder.plugin_api`, which a build imports: this one loads Starlette,
SQLAlchemy and the rest of the back end, which a build never needs. A plugin's hook
imports its `serve.py` when called, so building with the plugin stays as light.
"""

from builder.serve.api_models import ErrorReply, FieldError
from builder.serve.app import (
    CLIENT_ERRORS,
    ERROR,
    PREFIX,
    UNAVAILABLE,
    Api,
    serve_api,
)
from builder.serve.business_events import BusinessEvent
from builder.serve.jobs import PeriodicTask, TaskContext
from builder.serve.openapi import Endpoint, Handler, Operation
from builder.serve.replies import ApiError, read_json, reply, validated
from builder.serve.sandbox_methods import (
    SandboxMethod,
    SandboxRefusal,
    biz_content,
    invalid_parameter,
    succeeded,
    text_field,
    user_id_of,
)
from builder.serve.sandbox_state import SandboxState

__all__ = [
    "CLIENT_ERRORS", "ERROR", "PREFIX", "UNAVAILABLE", "Api", "ApiError", "BusinessEvent", "Endpoint",
    "ErrorReply", "FieldError", "Handler", "Operation", "PeriodicTask", "SandboxMethod", "SandboxRefusal",
    "SandboxState", "TaskContext", "biz_content", "invalid_parameter", "read_json", "reply", "serve_api",
    "succeeded", "text_field", "user_id_of", "validated",
]
