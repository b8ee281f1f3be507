"""Property tests (hypothesis): any valid spec builds, passes the checks, is deterministic,
and merchant text of any kind reaches the output literally and never the AXML."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import yaml
from helpers import write_project
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from builder.pipeline import prepare
from builder.preview.model import read_page_data

# Text a merchant might type, edge cases included: braces, tags, quotes, entities, emoji,
# CJK, newlines. Excluded: control characters and the line breaks YAML itself rewrites
# (\r, U+0085, U+2028, U+2029) - those cannot survive any YAML file.
TEXT_CHARS = st.characters(blacklist_categories=("Cs", "Cc", "Zl", "Zp"), blacklist_characters="\x85\ufeff")
FRAGMENTS = st.one_of(TEXT_CHARS, st.sampled_from(["\n", "\t", "{{", "}}", "</view>", "<script>", "&amp;", "'", '"', "店", "🎉"]))
# At most 10 fragments of at most 8 characters: within the 80-character limit of short texts.
TEXT = st.lists(FRAGMENTS, min_size=1, max_size=10).map("".join).filter(lambda s: s.strip() != "")
TAG = TEXT.filter(lambda s: len(s.strip()) <= 10)  # product tags hold at most 10 characters
IDS = st.from_regex(r"[a-z][a-z0-9-]{0,10}", fullmatch=True)


def blocks(page_ids: list[str]) -> st.SearchStrategy:
    link = st.sampled_from(page_ids)
    return st.one_of(
        st.builds(lambda t, s: {"type": "heading", "text": t, "subtitle": s}, TEXT, TEXT),
        st.builds(lambda t: {"type": "text", "text": t}, TEXT),
        st.builds(lambda t, to: {"type": "button", "text": t, "link": to}, TEXT, link),
        st.builds(lambda t: {"type": "notice-bar", "text": t}, TEXT),
        st.builds(lambda n, p, tag: {"type": "product-list", "items": [{"name": n, "price": p, "tag": tag}]},
                  TEXT, st.integers(0, 999_999).map(lambda cents: cents / 100), TAG),
        st.builds(lambda t: {"type": "store-info", "title": t}, TEXT),
        st.just({"type": "divider"}),
        st.builds(lambda h: {"type": "spacer", "height": h}, st.integers(4, 400)),
    )


@st.composite
def specs(draw) -> dict:
    page_ids = draw(st.lists(IDS.filter(lambda i: i != "webview"), min_size=1, max_size=4, unique=True))
    pages = [{"id": pid, "title": draw(TEXT), "blocks": draw(st.lists(blocks(page_ids), max_size=5))}
             for pid in page_ids]
    return {"spec_version": 1,
            "app": {"name": draw(TEXT)},
            "merchant": {"name": draw(TEXT), "stores": [
                {"id": "s1", "name": draw(TEXT), "address": draw(TEXT), "lat": 31.2, "lng": 121.4, "hours": draw(TEXT)}]},
            "pages": pages}


def texts_in(spec: dict) -> list[str]:
    """Every merchant-text value placed in blocks (what must round-trip)."""
    keys = {"text", "subtitle", "title", "name", "tag"}
    found = []
    for page in spec["pages"]:
        for block in page["blocks"]:
            for key, value in block.items():
                if key in keys and isinstance(value, str):
                    found.append(value)
            for item in block.get("items", []):
                found.extend(v for k, v in item.items() if k in keys)
    return found




@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(specs())
def test_valid_specs_build_deterministically_and_text_round_trips(spec):
    with tempfile.TemporaryDirectory() as tmp:
        path = write_project(Path(tmp), spec, with_assets=False)
        first = prepare(path)
        second = prepare(path)
        assert list(first.tree.items()) == list(second.tree.items())
        emitted = []
        for page in spec["pages"]:
            js = first.tree.text(f"pages/{page['id']}/{page['id']}.js")
            data = read_page_data(js)
            assert data is not None
            emitted.append(json.dumps(data, ensure_ascii=False))
            axml = first.tree.text(f"pages/{page['id']}/{page['id']}.axml")
            assert "&amp;amp;" not in axml and "<script" not in axml
        everything = "\n".join(emitted)
        for text in texts_in(spec):
            expected = text.strip()  # models strip surrounding whitespace, on purpose
            assert json.dumps(expected, ensure_ascii=False)[1:-1] in everything


@settings(max_examples=50, deadline=None)
@given(TEXT)
def test_any_heading_text_is_bound_never_printed(text):
    spec = {"spec_version": 1, "app": {"name": "Shop"}, "merchant": {"name": "Shop"},
            "pages": [{"id": "home", "title": "Home", "blocks": [{"type": "heading", "text": text}]}]}
    with tempfile.TemporaryDirectory() as tmp:
        prepared = prepare(write_project(Path(tmp), spec, with_assets=False))
    axml = prepared.tree.text("pages/home/home.axml")
    assert "{{b0.text}}" in axml
    data = read_page_data(prepared.tree.text("pages/home/home.js"))
    assert data["b0"]["text"] == text.strip()
    assert yaml.safe_load(yaml.safe_dump(text)) == text  # the strategy only draws YAML-safe text
