"""Merchant text is data, never code: every free-text field of every block and section,
found from the models, carries braces, tags, quotes, entities, emoji and CJK, and comes
out literally in the mini-program (page data and share info evaluated by Node, JSON and
CSV outputs) while the AXML and ACSS stay byte-identical to a build with plain text.

Text fields are discovered from the installed models: a `str` field without a pattern
or validator (ids, URLs, asset paths and references have those). A new block type fails
`test_every_block_type_is_in_the_spec` until it is added to `base_spec`; a new text field
on any model is filled automatically.
"""

from __future__ import annotations

import copy
import csv
import io
import json
import re
import shutil
import subprocess
import typing
from collections.abc import Callable
from html.parser import HTMLParser
from pathlib import Path
from typing import Annotated, Any, Union

import pytest
from helpers import MINIMAL_SPEC, write_project
from pydantic import AfterValidator, BaseModel, BeforeValidator, PlainValidator, WrapValidator
from pydantic.fields import FieldInfo

from builder.pipeline import load_plugins, prepare
from builder.validate import spec_model

NASTY = "{{ x }} </view> <script>alert(1)</script> \"q\" 'q' & &amp; 😀 港湾 }}"
PAYLOADS = {
    "everything": NASTY,
    "binding": "{{ x }}",
    "binding-lookalike": "{{b0.text}}",
    "closing-tag": "</view>",
    "script": "<script>",
    "quotes-entity": "\"'&amp;&",
    "emoji-cjk": "😀港湾",
    "newline": "a\nb",
}
PLAIN = "plain"
# Fields this spec overrides, so their text has nowhere to show; tested without the override.
SHADOWED = {("app", "description"): "promotion.share.desc replaces it as the share description",
            ("merchant", "name"): "app.description replaces it as the share description"}
# Text the app never shows: the back end's alone (its merchant pages escape it themselves).
BACKEND_ONLY = {("membership", "segments"): "segments are the merchant's customer view (mpforge serve)"}
# Text-typed fields that are not free text: they have rules of their own.
NOT_FREE_TEXT = {("EntryPoint", "query"): "a URL query string: URL-safe key=value pairs only",
                 ("Spec", "plugins"): "plugin modules or .py paths to load"}
_VALIDATORS = (AfterValidator, BeforeValidator, PlainValidator, WrapValidator)


def base_spec() -> dict[str, Any]:
    """A valid spec using every block type and every section, optional parts included."""
    spec = copy.deepcopy(MINIMAL_SPEC)
    spec["app"].update(appid="2021004123456789", description="About the shop")
    spec["merchant"]["stores"][0]["phone"] = "400-000-0001"
    spec["pages"] = [
        {"id": "home", "title": "Home", "blocks": [
            {"type": "banner", "slides": [{"image": "banner.png", "alt": "a", "link": "about"}]},
            {"type": "heading", "text": "t", "subtitle": "s"},
            {"type": "text", "text": "t"},
            {"type": "image", "image": "banner.png", "link": {"url": "https://example.com/x?a=1&b=2"}},
            {"type": "button", "text": "t", "link": {"phone": "400-000-0000"}},
            {"type": "icon-grid", "items": [{"icon": "tab/home.png", "text": "t", "link": {"store": "main"}}]},
            {"type": "product-list", "title": "t", "items": [
                {"name": "n", "price": 9.5, "original_price": 12, "image": "banner.png", "tag": "t",
                 "description": "d", "link": "about"}]},
            {"type": "store-info", "title": "t"},
            {"type": "notice-bar", "text": "t", "link": "about"},
            {"type": "divider", "inset": True},
            {"type": "spacer", "height": 40},
            {"type": "coupon-list", "title": "t"},
            {"type": "coupon-card", "coupon": "cash-5"},
            {"type": "coupon-banner", "coupon": "cash-5", "image": "banner.png", "subtitle": "s"},
            {"type": "my-coupons", "empty_text": "e", "more": "about"},
            {"type": "life-account-follow"},
            {"type": "life-account-feed", "title": "t"},
            {"type": "privacy-policy"},
            {"type": "campaign-banner", "campaign": "spring"},
            {"type": "countdown", "campaign": "spring", "label": "l"},
        ]},
        # The card on a page of its own: Alipay allows one <lifestyle> per page.
        {"id": "about", "title": "About", "blocks": [{"type": "store-info"}, {"type": "life-account-card"}]},
        {"id": "site", "title": "Site", "blocks": [{"type": "web-view", "url": "https://example.com/site"}]},
        {"id": "item", "title": "Item", "blocks": [
            {"type": "product-detail", "missing_text": "m"},
            {"type": "product-list", "title": "t", "products": ["p1"]},
            {"type": "product-list", "category": "c1"}]},
        # The ordering blocks, each on a page of its own as the plugin's pages have them.
        {"id": "o-menu", "title": "t", "blocks": [{"type": "order-menu", "notice": "n"}]},
        {"id": "o-confirm", "title": "t", "blocks": [{"type": "order-confirm", "note": "n"}]},
        {"id": "o-detail", "title": "t", "blocks": [{"type": "order-detail", "missing_text": "m"}]},
        {"id": "o-mine", "title": "t", "blocks": [{"type": "my-orders", "empty_text": "e"}]},
        {"id": "club", "title": "t", "blocks": [
            {"type": "favorite-guide", "text": "t", "close_text": "c"},
            {"type": "member-card", "claim_text": "c", "intro": "i"},
            {"type": "stamp-card", "scan_text": "s", "hint": "h"},
            {"type": "points-rewards", "title": "t"},
            {"type": "contact-button", "tnt_inst_id": "inst", "scene": "scene", "label": "l"}]},
    ]
    spec["ordering"] = {"hours": [{"store": "main", "mon": ["08:00-20:00"]}], "order_prefix": "A"}
    spec["backend"] = {"base_url": "https://api.example.com"}
    spec["catalogue"] = {
        "detail_page": "item",
        "categories": [{"id": "c1", "name": "n", "icon": "banner.png"}],
        "products": [{"id": "p1", "name": "n", "category": "c1", "price": 9.5, "original_price": 12,
                      "image": "banner.png", "tag": "t", "description": "d",
                      "options": [{"id": "o1", "name": "n", "choices": [{"id": "x", "name": "n", "price": 1}]}]}]}
    spec["coupon"] = {
        "pages": {"centre": {"id": "coupons", "title": "c"}, "mine": {"id": "mine", "title": "m"}},
        "coupons": [
            {"id": "cash-5", "kind": "cash", "title": "t", "value": 5, "validity": {"days_after_claim": 7},
             "stock": 100, "activity_id": "ACT-1", "terms": "t", "audience": "followers"},
            {"id": "gift", "kind": "exchange", "title": "t", "item": "i", "validity": {"days_after_claim": 7},
             "stock": 10, "activity_id": "ACT-2"},
        ]}
    spec["membership"] = {
        "card": {"title": "t", "logo": "banner.png", "background": "banner.png", "plugin_provider": "2021001139681234"},
        "levels": [{"id": "l1", "name": "n", "min_points": 0, "benefits": ["b"]},
                   {"id": "l2", "name": "n", "min_points": 10, "benefits": ["b"]}],
        "points": {"rewards": [{"coupon": "gift", "points": 5}]},
        "stamp_card": {"title": "t", "stamps": 5, "reward": "gift"},
        "messages": {"templates": [{"id": "m1", "template_id": "TPL1", "event": "order_ready",
                                    "ask_after": "order_paid", "fields": ["order_no"]}]},
        "segments": [{"id": "s1", "name": "n", "description": "d"}]}
    spec["life_account"] = {
        "public_id": "2019041263887654", "name": "n", "avatar": "banner.png", "description": "d", "memo": "m",
        "follow_reward": "cash-5", "page": {"id": "life", "title": "t"},
        "articles": [{"title": "t", "cover": "banner.png", "summary": "s", "date": "2026-03-04",
                      "url": "https://example.com/a"}]}
    spec["promotion"] = {
        "share": {"title": "t", "desc": "d", "image": "banner.png", "pages": {"about": {"title": "t", "desc": "d"}}},
        "campaigns": [{"id": "spring", "name": "n", "start": "2020-01-01T00:00:00+08:00",
                       "end": "2099-12-31T23:59:59+08:00", "banner": "banner.png", "landing": "about",
                       "coupons": ["cash-5"]}],
        "entry_points": [{"id": "table-1", "name": "n", "description": "d", "page": "about", "query": "table=1",
                          "channel": "table"}],
        "search_keywords": ["k"]}
    return spec


# --- finding the text fields ----------------------------------------------------------------


def _unwrap(annotation: Any, metadata: list) -> tuple[Any, list]:
    """Strip Annotated and Optional, collecting constraints and validators on the way."""
    while True:
        origin = typing.get_origin(annotation)
        if origin is Annotated:
            annotation, *extra = typing.get_args(annotation)
            for item in extra:
                metadata = [*metadata, *(item.metadata if isinstance(item, FieldInfo) else [item])]
        elif origin in (Union, __import__("types").UnionType):
            options = [a for a in typing.get_args(annotation) if a is not type(None)]
            if len(options) != 1:
                return annotation, metadata  # a real union: the block union
            annotation = options[0]
        else:
            return annotation, metadata


def _free_text(annotation: Any, metadata: list) -> int | None:
    """The max length of a free-text str field, or None when the field is not one."""
    annotation, metadata = _unwrap(annotation, metadata)
    if annotation is not str:
        return None
    if any(getattr(m, "pattern", None) or isinstance(m, _VALIDATORS) for m in metadata):
        return None
    return min([m.max_length for m in metadata if getattr(m, "max_length", None)] or [2000])


def fill(model: type[BaseModel], data: dict, value: Callable[[tuple, int], str], blocks: dict,
         path: tuple = ()) -> list[tuple[str, str, tuple]]:
    """Set every free-text field `data` has for `model` (and the models nested in it) to
    `value(path, max_length)`; returns (model name, field, path) of each one filled."""
    filled = []
    for name, info in model.model_fields.items():
        where = (*path, name)
        if (model.__name__, name) in NOT_FREE_TEXT or name not in data:
            continue
        limit = _free_text(info.annotation, list(info.metadata))
        annotation, _ = _unwrap(info.annotation, list(info.metadata))
        origin, args = typing.get_origin(annotation), typing.get_args(annotation)
        if limit is not None:
            data[name] = value(where, limit)
            filled.append((model.__name__, name, where))
        elif origin is list and _free_text(args[0], []) is not None:
            data[name] = [value((*where, 0), _free_text(args[0], []))]
            filled.append((model.__name__, name, (*where, 0)))
        elif origin is list and isinstance(data.get(name), list):
            item_type, _ = _unwrap(args[0], [])
            for i, item in enumerate(data[name]):
                if not isinstance(item, dict):
                    continue
                if isinstance(item_type, type) and issubclass(item_type, BaseModel):
                    filled += fill(item_type, item, value, blocks, (*where, i))
                else:  # the union of block types, picked by 'type'
                    filled += fill(blocks[item["type"]], item, value, blocks, (*where, i))
        elif origin is dict and isinstance(data.get(name), dict):
            item_type, _ = _unwrap(args[1], [])
            for key, item in data[name].items():
                filled += fill(item_type, item, value, blocks, (*where, key))
        elif isinstance(annotation, type) and issubclass(annotation, BaseModel) and isinstance(data.get(name), dict):
            filled += fill(annotation, data[name], value, blocks, where)
    return filled


def all_text_fields(model: type[BaseModel], blocks: dict, seen: set | None = None) -> set[tuple[str, str]]:
    """(model name, field) of every free-text field reachable from `model`, from the types
    alone (block lists reach every registered block type)."""
    seen = set() if seen is None else seen
    if model in seen:
        return set()
    seen.add(model)
    found = set()
    for name, info in model.model_fields.items():
        if (model.__name__, name) in NOT_FREE_TEXT:
            continue
        annotation, _ = _unwrap(info.annotation, list(info.metadata))
        origin, args = typing.get_origin(annotation), typing.get_args(annotation)
        if _free_text(info.annotation, list(info.metadata)) is not None or (
                origin is list and _free_text(args[0], []) is not None):
            found.add((model.__name__, name))
            continue
        inner = _unwrap(args[-1], [])[0] if origin in (list, dict) else annotation
        if isinstance(inner, type) and issubclass(inner, BaseModel):
            found |= all_text_fields(inner, blocks, seen)
        elif origin is list:  # the union of block types
            for block_model in blocks.values():
                found |= all_text_fields(block_model, blocks, seen)
    return found


def markers(paths: list[tuple]) -> dict[tuple, str]:
    """One CJK character per field, so each value says which field it came from; from
    CJK Extension A (U+3400...), which no template's own text uses (U+4E00... holds
    common characters such as 不 and 与)."""
    return {path: chr(0x3400 + i) for i, path in enumerate(sorted(paths, key=repr))}


def _models() -> tuple[type[BaseModel], dict[str, type[BaseModel]]]:
    plugins = load_plugins()
    model = spec_model(tuple(plugins.block_types.values()), tuple(sorted(plugins.sections.items())))
    return model, {name: bt.model for name, bt in plugins.block_types.items()}


def injected(payload: str) -> tuple[dict, dict[tuple, str]]:
    """The spec with every free-text field set to `payload` plus the field's marker."""
    model, blocks = _models()
    paths = [path for _, _, path in fill(model, copy.deepcopy(base_spec()), lambda path, limit: "x", blocks)]
    marks = markers(paths)
    values: dict[tuple, str] = {}

    def value(path: tuple, limit: int) -> str:
        text = payload if len(payload) < limit else payload[: limit - 1].rstrip()
        values[path] = text + marks[path]
        return values[path]

    spec = base_spec()
    fill(model, spec, value, blocks)
    return spec, values


# --- reading the output --------------------------------------------------------------------------

NODE_PAGES = r"""
// Load every generated page with stub globals; print its initial data and share info.
const path = require('path');
global.my = {getStorageSync: () => ({data: null}), setStorageSync() {}, getSystemInfoSync: () => ({})};
global.getApp = () => ({globalData: {}});
const out = {};
for (const page of process.argv.slice(1)) {  // node -e: no script path in argv
  let captured = null;
  global.Page = (options) => { captured = options; };
  require(path.resolve(page + '.js'));
  const share = captured.onShareAppMessage.call(Object.assign({}, captured, {mfQuery: {}}));
  out[page] = {data: captured.data, share};
}
process.stdout.write(JSON.stringify(out));
"""


def strings_in(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for v in value.values() for s in strings_in(v)]
    if isinstance(value, list):
        return [s for v in value for s in strings_in(v)]
    return []


def emitted_strings(out: Path, tree) -> list[str]:
    """Every string the mini-program holds at run time (page data and share info, as Node
    evaluates the page scripts), plus the JSON and CSV outputs."""
    if shutil.which("node") is None:
        pytest.fail("node is required for this test (.ci/run installs it)")
    pages = json.loads(tree.text("app.json"))["pages"]
    result = subprocess.run(["node", "-e", NODE_PAGES, *[str(out / p) for p in pages]],
                            capture_output=True, text=True, check=True)
    found = strings_in(json.loads(result.stdout))
    for path in tree:
        if path.endswith(".json"):
            found += strings_in(json.loads(tree.text(path)))
        elif path.endswith(".csv"):
            found += [cell for row in csv.reader(io.StringIO(tree.text(path))) for cell in row]
    return found


def build(tmp_path: Path, name: str, spec: dict):
    from builder.write import write_tree

    prepared = prepare(write_project(tmp_path / name, spec))
    write_tree(prepared.tree, tmp_path / f"{name}-out")
    return prepared.tree, tmp_path / f"{name}-out"


def markup(tree) -> dict[str, bytes]:
    return {path: data for path, data in tree.items() if path.endswith((".axml", ".acss"))}


# --- the tests ------------------------------------------------------------------------------------


def test_every_block_type_and_text_field_is_in_the_spec():
    used = {b["type"] for page in base_spec()["pages"] for b in page["blocks"]}
    assert used == set(load_plugins().block_types), "add the new block type to base_spec()"
    assert set(load_plugins().sections) <= set(base_spec()), "add the new section to base_spec()"
    model, blocks = _models()
    filled = {(m, f) for m, f, _ in fill(model, base_spec(), lambda path, limit: "x", blocks)}
    missing = all_text_fields(model, blocks) - filled
    assert not missing, f"give these text fields a value in base_spec(): {sorted(missing)}"


def test_text_fields_are_found_in_every_part_of_the_spec():
    _, values = injected("x")
    found = {tuple(p for p in path if not isinstance(p, int)) for path in values}
    for expected in [("app", "name"), ("app", "description"), ("merchant", "stores", "hours"),
                     ("pages", "title"), ("pages", "blocks", "slides", "alt"), ("pages", "blocks", "items", "tag"),
                     ("pages", "blocks", "label"), ("pages", "blocks", "empty_text"), ("tabbar", "items", "text"),
                     ("coupon", "coupons", "terms"), ("coupon", "pages", "centre", "title"),
                     ("life_account", "articles", "summary"), ("life_account", "memo"),
                     ("promotion", "share", "pages", "about", "desc"), ("promotion", "search_keywords"),
                     ("promotion", "entry_points", "description")]:
        assert expected in found
    assert len(values) >= 45
    assert not any(path[-1] in ("id", "image", "icon", "url", "query", "page", "coupon") for path in values)


@pytest.mark.parametrize("name", PAYLOADS)
def test_merchant_text_is_data_in_every_text_field(tmp_path, name):
    plain_tree, _ = build(tmp_path, "plain", injected(PLAIN)[0])
    spec, values = injected(PAYLOADS[name])
    tree, out = build(tmp_path, "nasty", spec)

    # AXML and ACSS do not depend on merchant text at all: it is bound, never printed.
    assert markup(tree) == markup(plain_tree)

    emitted = emitted_strings(out, tree)
    exact = set(emitted)
    missing = {".".join(map(str, path)): text for path, text in values.items()
               if text not in exact and path not in SHADOWED and tuple(path[:2]) not in BACKEND_ONLY}
    assert not missing, f"not found literally in the output: {missing}"
    # Each value arrives whole: no copy of its marker without the rest of the text.
    for path, text in values.items():
        for s in emitted:
            if text[-1] in s:
                assert text in s, (path, text, s)


@pytest.mark.parametrize("field", SHADOWED)
def test_overridden_fields_show_without_their_override(tmp_path, field):
    spec, values = injected(NASTY)
    del spec["promotion"]["share"]["desc"]
    if field == ("merchant", "name"):
        del spec["app"]["description"]
    tree, out = build(tmp_path, "nasty", spec)
    assert values[field] in set(emitted_strings(out, tree))


def test_the_page_script_holds_text_as_json_not_code(tmp_path):
    spec, values = injected(NASTY)
    tree, _ = build(tmp_path, "nasty", spec)
    heading = next(v for p, v in values.items() if p[:4] == ("pages", 0, "blocks", 1) and p[-1] == "text")
    for page in json.loads(tree.text("app.json"))["pages"]:
        js = tree.text(f"{page}.js")
        if page == "pages/home/home":
            assert json.dumps(heading, ensure_ascii=False) in js
        # Outside string literals the script has none of the merchant's text.
        code = re.sub(r'"(?:[^"\\\n]|\\.)*"', '""', js)
        for fragment in ("alert(1)", "<script", "</view>", "😀", "港湾", "{{ x }}"):
            assert fragment not in code, (page, fragment)


# --- the preview (builder/preview, built alongside) ------------------------------------------


class _Visible(HTMLParser):
    """Text and attribute values of rendered HTML, entities decoded; the tags seen."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.text: list[str] = []
        self.tags: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        self.text += [v for _, v in attrs if v]

    def handle_data(self, data):
        self.text.append(data)


def check_preview(tree, values: dict[tuple, str]) -> None:
    """The hook for the browser preview: every page renders, merchant text never becomes a
    tag, and a field's text that shows in the preview shows whole and literally."""
    preview = pytest.importorskip("builder.preview")
    app = preview.PreviewApp(tree)
    shown, titles = [], []
    for page in app.pages:
        model = app.page_model(page.path)
        titles.append(model["title"])  # shown by the preview shell as text
        parser = _Visible()
        parser.feed(model["html"])
        parser.close()
        assert "script" not in parser.tags, page.path
        shown += parser.text
    visible = "\u0000".join(shown)
    seen = 0
    for path, text in values.items():
        if text[-1] in visible:
            seen += 1
            assert text in visible, (path, text)
    assert seen >= 10, "the preview shows hardly any merchant text"
    page_titles = [text for path, text in values.items() if path[0] == "pages" and path[-1] == "title" and len(path) == 3]
    assert page_titles and all(title in titles for title in page_titles)


@pytest.mark.parametrize("name", ["everything", "binding-lookalike"])
def test_merchant_text_is_literal_in_the_preview(tmp_path, name):
    spec, values = injected(PAYLOADS[name])
    tree, _ = build(tmp_path, "nasty", spec)
    check_preview(tree, values)
