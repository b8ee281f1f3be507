"""Generated docs must match the code (regenerate with `python -m builder.docs_gen`)."""

from __future__ import annotations

import json

import jsonschema
import yaml
from helpers import SAMPLES

from builder.docs_gen import generated_files


def test_generated_docs_are_current():
    for path, text in generated_files().items():
        assert path.read_text(encoding="utf-8") == text, f"{path.name} is stale: run python -m builder.docs_gen"


def test_every_block_type_is_documented():
    text = next(t for p, t in generated_files().items() if p.name == "spec.md")
    for name in ("banner", "heading", "text", "image", "button", "icon-grid", "product-list",
                 "store-info", "notice-bar", "divider", "spacer", "web-view"):
        assert f"### `{name}`" in text


def test_samples_validate_against_the_published_schema():
    schema = json.loads(next(t for p, t in generated_files().items() if p.suffix == ".json"))
    validator = jsonschema.Draft202012Validator(schema)
    for spec in SAMPLES.glob("*/mpforge.yaml"):
        # Editors see YAML dates (2026-11-01) as strings; PyYAML makes them date objects.
        data = json.loads(json.dumps(yaml.safe_load(spec.read_text("utf-8")), default=str))
        assert list(validator.iter_errors(data)) == [], spec
    bad = yaml.safe_load((SAMPLES / "linli-fresh/mpforge.yaml").read_text("utf-8"))
    bad["pages"][0]["blocks"][0]["type"] = "banerr"
    assert list(validator.iter_errors(bad))
