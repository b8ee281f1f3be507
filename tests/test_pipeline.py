"""End-to-end behaviour of the pipeline: output shape, links, determinism, injection safety."""

from __future__ import annotations

import copy
import json
import os
import shutil
import subprocess

import pytest
from helpers import MINIMAL_SPEC, SAMPLES, tree_hashes

from builder.api import build
from builder.errors import UserError
from builder.pipeline import prepare

NASTY = "{{ x }} </view> <script>alert(1)</script> \"q\" 'q' & &amp; 😀 港湾 }}"

NODE_RUNNER = r"""
// Load a generated page with stub App/Page/my globals and print its initial data.
const path = require('path');
let captured = null;
global.my = {};
global.getApp = () => ({});
global.Page = (options) => { captured = options; };
require(path.resolve(process.argv[1]));
// setData takes Alipay's path keys ('b0.url'): set the nested value.
captured.setData = (update) => {
  for (const [key, value] of Object.entries(update)) {
    const parts = key.split('.');
    const last = parts.pop();
    parts.reduce((node, part) => node[part], captured.data)[last] = value;
  }
};
captured.onLoad(JSON.parse(process.argv[2] || "{}"));
process.stdout.write(JSON.stringify({data: captured.data, share: captured.onShareAppMessage()}));
"""


def node_page(out_dir, page_id, query=None):
    """Load a generated page in Node, call onLoad(query); return (data, share)."""
    if shutil.which("node") is None:
        pytest.fail("node is required for this test (.ci/run installs it)")
    result = subprocess.run(["node", "-e", NODE_RUNNER, str(out_dir / f"pages/{page_id}/{page_id}.js"),
                             json.dumps(query or {})], capture_output=True, text=True, check=True)
    loaded = json.loads(result.stdout)
    return loaded["data"], loaded["share"]


def every_core_block(text: str) -> list[dict]:
    """One block of every core type, with `text` in every free-text field."""
    return [
        {"type": "banner", "slides": [{"image": "banner.png", "alt": text, "link": "about"}]},
        {"type": "heading", "text": text, "subtitle": text},
        {"type": "text", "text": text},
        {"type": "image", "image": "banner.png", "link": {"url": "https://example.com/a?b=1&c=2"}},
        {"type": "button", "text": text, "link": {"phone": "400-000-0000"}},
        {"type": "icon-grid", "items": [{"icon": "tab/home.png", "text": "😀港湾{{x}}", "link": {"store": "main"}}]},
        {"type": "product-list", "title": text, "items": [
            {"name": text, "price": 9.5, "original_price": 12, "tag": "{{t}}<b>", "description": text}]},
        {"type": "store-info", "title": text},
        {"type": "notice-bar", "text": text},
        {"type": "divider", "inset": True},
        {"type": "spacer", "height": 40},
    ]


def spec_with(blocks: list[dict], **changes) -> dict:
    spec = copy.deepcopy(MINIMAL_SPEC)
    spec["pages"][0]["blocks"] = blocks
    spec.update(changes)
    return spec


def test_output_has_every_alipay_file(project, tmp_path):
    spec_path = project()
    build(spec_path, tmp_path / "out")
    files = set(tree_hashes(tmp_path / "out"))
    for page in ("home", "about"):
        for ext in ("axml", "acss", "js", "json"):
            assert f"pages/{page}/{page}.{ext}" in files
    assert {"app.json", "app.js", "app.acss", "mini.project.json", "utils/mpforge.js",
            "assets/banner.png", "assets/tab/home.png"} <= files
    app = json.loads((tmp_path / "out/app.json").read_text())
    assert app["pages"] == ["pages/home/home", "pages/about/about"]
    assert app["tabBar"]["items"][1] == {"pagePath": "pages/about/about", "name": "About",
                                         "icon": "assets/tab/about.png", "activeIcon": "assets/tab/about-active.png"}
    assert app["tabBar"]["selectedColor"] == "#1677ff"  # theme primary by default
    assert app["window"] == {"defaultTitle": "Test Shop"}


def test_window_options_map_to_alipay_keys(project):
    spec = spec_with(MINIMAL_SPEC["pages"][0]["blocks"])
    spec["app"]["window"] = {"title_bar_color": "#112233", "pull_refresh": True, "bounce": False,
                             "transparent_title": "auto"}
    spec["pages"][1]["window"] = {"background_color": "#abcdef"}
    prepared = prepare(project(spec))
    app = json.loads(prepared.tree.text("app.json"))
    assert app["window"] == {"defaultTitle": "Test Shop", "titleBarColor": "#112233", "pullRefresh": True,
                             "allowsBounceVertical": "NO", "transparentTitle": "auto"}
    page_json = json.loads(prepared.tree.text("pages/about/about.json"))
    assert page_json == {"defaultTitle": "About", "backgroundColor": "#abcdef", "usingComponents": {}}
    assert "background-color: #abcdef;" in prepared.tree.text("pages/about/about.acss")


def test_links_resolve_to_runtime_actions(project, tmp_path):
    spec = spec_with([
        {"type": "button", "text": "tab", "link": "about"},
        {"type": "button", "text": "page", "link": {"page": "detail", "query": "id=7&x=y"}},
        {"type": "button", "text": "call", "link": {"phone": "400-123-4567"}},
        {"type": "button", "text": "web", "link": {"url": "https://example.com/p?x=1"}},
        {"type": "button", "text": "map", "link": {"store": "main"}},
    ])
    spec["pages"].append({"id": "detail", "title": "Detail"})
    build(project(spec), tmp_path / "out")
    data, _ = node_page(tmp_path / "out", "home")
    links = [data[f"b{i}"]["link"] for i in range(5)]
    assert links[0] == {"kind": "tab", "url": "/pages/about/about"}
    assert links[1] == {"kind": "page", "url": "/pages/detail/detail?id=7&x=y"}
    assert links[2] == {"kind": "phone", "number": "400-123-4567"}
    assert links[3] == {"kind": "page", "url": "/pages/webview/webview?url=https%3A%2F%2Fexample.com%2Fp%3Fx%3D1"}
    # Numbers, as my.openLocation documents them (the typings still say string).
    assert links[4] == {"kind": "map", "latitude": 31.2, "longitude": 121.4, "name": "Main", "address": "1 Road"}
    # The shared web-view page exists only because a link needs it.
    app = json.loads((tmp_path / "out/app.json").read_text())
    assert app["pages"][-1] == "pages/webview/webview"
    axml = (tmp_path / "out/pages/webview/webview.axml").read_text()
    assert '<web-view a:if="{{b0.url}}" src="{{b0.url}}" />' in axml
    assert "链接已失效" in axml  # opened without a url (review crawls every page): not a blank page


def test_web_view_page_shows_the_url_from_its_query(project, tmp_path):
    spec = spec_with([{"type": "button", "text": "web", "link": {"url": "https://example.com/p?x=1"}}])
    build(project(spec), tmp_path / "out")
    data, _ = node_page(tmp_path / "out", "webview", {"url": "https%3A%2F%2Fexample.com%2Fp%3Fx%3D1"})
    assert data["b0"]["url"] == "https://example.com/p?x=1"


def test_share_carries_the_page_query(project, tmp_path):
    build(project(), tmp_path / "out")
    _, share = node_page(tmp_path / "out", "about", {"store": "sh 01", "table": "12"})
    assert share == {"title": "About", "desc": "Test Shop", "path": "pages/about/about?store=sh%2001&table=12"}
    _, share = node_page(tmp_path / "out", "about")
    assert share["path"] == "pages/about/about"  # relative: Alipay refuses a leading /


def test_the_merchant_logo_is_the_share_picture(project, tmp_path):
    from helpers import MINIMAL_SPEC

    spec = {**MINIMAL_SPEC, "merchant": {**MINIMAL_SPEC["merchant"], "logo": "banner.png"}}
    build(project(spec), tmp_path / "out")
    _, share = node_page(tmp_path / "out", "about")
    assert share["imageUrl"] == "/assets/banner.png"


def test_no_webview_page_without_web_links(project):
    prepared = prepare(project())
    assert "pages/webview/webview.axml" not in prepared.tree


def test_build_is_byte_identical_and_rebuild_writes_nothing(tmp_path):
    sample = SAMPLES / "harbour-coffee"
    first = build(sample, tmp_path / "a").result
    again = build(sample, tmp_path / "a", force=True).result
    build(sample, tmp_path / "b")
    assert first.written and not again.written and not again.removed
    assert len(again.unchanged) == len(first.written)
    # The lock and the build cache (which records modification times) are bookkeeping.
    bookkeeping = {".mpforge.lock", ".mpforge-cache.json"}
    hashes_a = {k: v for k, v in tree_hashes(tmp_path / "a").items() if k not in bookkeeping}
    hashes_b = {k: v for k, v in tree_hashes(tmp_path / "b").items() if k not in bookkeeping}
    assert hashes_a == hashes_b


def test_merchant_text_reaches_output_literally_and_never_the_axml(project, tmp_path):
    spec = spec_with(every_core_block(NASTY))
    spec["app"]["description"] = NASTY
    build(project(spec), tmp_path / "out")
    data, share = node_page(tmp_path / "out", "home")
    assert data["b0"]["slides"][0]["alt"] == NASTY
    assert data["b1"]["text"] == NASTY and data["b1"]["subtitle"] == NASTY
    assert data["b2"]["text"] == NASTY
    assert data["b4"]["text"] == NASTY
    assert data["b5"]["items"][0]["text"] == "😀港湾{{x}}"
    product = data["b6"]["items"][0]
    assert (data["b6"]["title"], product["name"], product["description"], product["tag"]) == (NASTY, NASTY, NASTY, "{{t}}<b>")
    assert (product["price"], product["original_price"]) == ("¥9.50", "¥12.00")
    assert data["b7"]["title"] == NASTY
    assert data["b8"]["text"] == NASTY
    assert share["desc"] == NASTY
    axml = (tmp_path / "out/pages/home/home.axml").read_text()
    for fragment in ("{{ x }}", "<script>", "alert", "😀", "港湾", "&amp;"):
        assert fragment not in axml


def test_template_printing_braced_text_is_refused(project):
    """A project override that prints text into AXML instead of binding it must fail."""
    spec = spec_with([{"type": "heading", "text": "{{ secret }}"}])
    override = {"templates/blocks/heading.axml": "<view>[[ block.text ]]</view>\n"}
    with pytest.raises(UserError) as info:
        prepare(project(spec, files=override))
    assert "blocks/heading.axml printed text containing '{{'" in str(info.value)


def test_template_printing_a_python_list_is_refused(project):
    """`[[[ key ]]]` reads as `[[ [key] ]]`: the build must fail, not emit a Python repr."""
    override = {"templates/page/page.js": "Page({ data: {}, x: this.data[[[ page.id | tojson ]]] });\n"}
    with pytest.raises(UserError) as info:
        prepare(project(files=override))
    assert "page/page.js printed a Python list" in str(info.value)


def test_template_override_is_used(project):
    override = {"templates/blocks/heading.axml": '<view class="my-heading"><text>{{[[ key ]].text}}</text></view>\n'}
    prepared = prepare(project(files=override))
    assert '<view class="my-heading"><text>{{b0.text}}</text></view>' in prepared.tree.text("pages/home/home.axml")


def test_only_used_block_styles_reach_app_acss(project):
    prepared = prepare(project(spec_with([{"type": "heading", "text": "Hi"}])))
    acss = prepared.tree.text("app.acss")
    assert ".mf-heading" in acss and ".mf-store" in acss  # about page uses store-info
    assert ".mf-banner" not in acss and ".mf-product" not in acss


def test_only_the_assets_the_spec_uses_are_copied(project):
    files = {"assets/.DS_Store": b"junk", "assets/menu/latte.png": b"\x89PNGfake", "assets/menu/unused.png": b"x"}
    prepared = prepare(project(spec_with([{"type": "image", "image": "menu/latte.png"}]), files=files))
    assert prepared.tree["assets/menu/latte.png"] == b"\x89PNGfake"
    assert sorted(p for p in prepared.tree if p.startswith("assets/")) == [
        "assets/menu/latte.png", "assets/tab/about-active.png", "assets/tab/about.png",
        "assets/tab/home-active.png", "assets/tab/home.png"]  # not banner.png: spec_with replaced the banner


def test_https_images_are_kept_as_urls(project):
    spec = spec_with([{"type": "image", "image": "https://cdn.example.com/a.png"}])
    prepared = prepare(project(spec))
    assert "https://cdn.example.com/a.png" in prepared.tree.text("pages/home/home.js")


def test_json_spec_builds_like_yaml(project, tmp_path):
    spec_path = project()
    json_path = spec_path.with_name("shop.json")
    import yaml

    json_path.write_text(json.dumps(yaml.safe_load(spec_path.read_text())), encoding="utf-8")
    assert prepare(json_path).tree.text("app.json") == prepare(spec_path).tree.text("app.json")


def test_large_images_warn_at_the_spec_line_that_uses_them(project, cli):
    spec = spec_with([{"type": "image", "image": "big.png"}], limits={"image_kb": 50})
    path = project(spec, files={"assets/big.png": b"\x89PNG" + b"0" * 80 * 1024})
    result = cli("build", path)
    assert result.exit_code == 0
    line = next(i for i, text in enumerate(path.read_text().splitlines(), 1) if "image: big.png" in text)
    assert f"warning: mpforge.yaml:{line}:" in result.stderr
    assert "pages[0].blocks[0].image: image big.png is 80 KiB, over the 50 KiB limit" in result.stderr


def test_one_process_sees_template_edits_and_new_overrides(project):
    """Compiled templates are reused between builds in a process (mpforge dev), never stale."""
    spec = project()
    assert "mf-heading-text" in prepare(spec).tree.text("pages/home/home.axml")
    override = spec.parent / "templates" / "blocks" / "heading.axml"
    override.parent.mkdir(parents=True)
    override.write_text('<view class="first">{{[[ key ]].text}}</view>\n', encoding="utf-8")
    assert '<view class="first">' in prepare(spec).tree.text("pages/home/home.axml")
    override.write_text('<view class="second">{{[[ key ]].text}}</view>\n', encoding="utf-8")
    stat = override.stat()
    os.utime(override, ns=(stat.st_atime_ns, stat.st_mtime_ns + 2_000_000_000))  # a later save
    assert '<view class="second">' in prepare(spec).tree.text("pages/home/home.axml")
    override.unlink()
    assert "mf-heading-text" in prepare(spec).tree.text("pages/home/home.axml")
