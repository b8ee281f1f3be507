"""The spec's JSON Schema, for editors (`# yaml-language-server: $schema=...`)."""

from __future__ import annotations

from typing import Any

from . import __version__
from .hooks import Hooks
from .validate import spec_model


def spec_json_schema(plugins: Hooks) -> dict[str, Any]:
    model = spec_model(tuple(plugins.block_types.values()), tuple(sorted(plugins.sections.items())))
    schema = model.model_json_schema()
    return {"$schema": "https://json-schema.org/draft/2020-12/schema",
            **schema, "title": f"mpforge spec (mpforge {__version__})"}
