"""Each output rule of the check stage fires on a tree that breaks it, and passes a good one."""

from __future__ import annotations

import json

import pytest
from helpers import REPO, SAMPLES

from builder import check
from builder.errors import UserError
from builder.filetree import FileTree
from builder.pipeline import prepare


def good_tree() -> FileTree:
    tree = FileTree()
    tree.add_json("app.json", {"pages": ["pages/home/home", "pages/about/about"],
                               "tabBar": {"items": [{"pagePath": "pages/home/home", "name": "a"},
                                                    {"pagePath": "pages/about/about", "name": "b"}]}})
    for page in ("home", "about"):
        tree.add(f"pages/{page}/{page}.axml", '<view a:if="{{b0.show}}"><text>{{b0.text}}</text></view>\n')
        tree.add(f"pages/{page}/{page}.acss", ".x {}\n")
        tree.add(f"pages/{page}/{page}.js", "Page({ data: {} });\n")
        tree.add_json(f"pages/{page}/{page}.json", {"defaultTitle": page})
    return tree


def problems(tree: FileTree) -> list[str]:
    return [str(p) for rule in check.CORE_CHECKS for p in rule(tree)]


def replace(tree: FileTree, path: str, content: str) -> FileTree:
    new = FileTree()
    for p, data in tree.items():
        new.add(p, content if p == path else data)
    if path not in tree:
        new.add(path, content)
    return new


def test_good_tree_and_samples_pass():
    assert problems(good_tree()) == []
    for sample in ("harbour-coffee", "linli-fresh", "lao-jie-noodles"):
        assert problems(prepare(SAMPLES / sample).tree) == []


def test_page_missing_a_file():
    tree = good_tree()
    pruned = FileTree()
    for path, data in tree.items():
        if path != "pages/about/about.acss":
            pruned.add(path, data)
    assert problems(pruned) == ["app.json: page 'pages/about/about' has no .acss file"]


@pytest.mark.parametrize("count", [1, 6])
def test_tabbar_item_count(count):
    pages = [f"pages/p{i}/p{i}" for i in range(count)]
    tree = replace(good_tree(), "app.json", json.dumps(
        {"pages": ["pages/home/home", "pages/about/about", *pages],
         "tabBar": {"items": [{"pagePath": p, "name": "x"} for p in pages]}}))
    found = check.tabbar_valid(tree)
    assert [str(p) for p in found] == [f"app.json: tabBar has {count} items; Alipay needs 2 to 5"]


def test_tab_to_missing_page():
    tree = replace(good_tree(), "app.json", json.dumps(
        {"pages": ["pages/home/home", "pages/about/about"],
         "tabBar": {"items": [{"pagePath": "pages/home/home", "name": "a"},
                              {"pagePath": "pages/gone/gone", "name": "b"}]}}))
    assert [str(p) for p in check.tabbar_valid(tree)] == [
        "app.json: tabBar item 'b' points at missing page 'pages/gone/gone'"]


def test_invalid_json():
    found = problems(replace(good_tree(), "pages/home/home.json", "{ nope"))
    assert len(found) == 1 and found[0].startswith("pages/home/home.json: invalid JSON")


@pytest.mark.parametrize("axml, message", [
    ("<view><text>a</view>\n", "pages/home/home.axml:1:14: </view> closes <text> opened at 1:7"),
    ("<view>\n  <text>a</text>\n", "pages/home/home.axml:1:1: <view> is never closed"),
    ("<view></view></text>\n", "pages/home/home.axml:1:14: stray closing tag </text>"),
])
def test_axml_well_formed(axml, message):
    assert problems(replace(good_tree(), "pages/home/home.axml", axml)) == [message]


@pytest.mark.parametrize("axml, message", [
    ("<view>\n  <text class='a>b</text>\n</view>\n",
     "pages/home/home.axml:2:3: tag <text has no closing '>' (or one of its quotes is never closed)"),
    ("<view></view>\n<!-- <view>\n", "pages/home/home.axml:2:1: comment <!-- is never closed with -->"),
])
def test_tags_and_comments_that_never_end(axml, message):
    assert message in problems(replace(good_tree(), "pages/home/home.axml", axml))


@pytest.mark.parametrize("axml", [
    '<view a:if="{{b0.title.length > 3}}"><text>{{b0.n < 2 ? \'<2\' : \'>=2\'}}</text></view>\n',
    "<view a:if='{{a<b && c>d}}'><text>{{a<b}}</text></view>\n",
    "<view><!-- {{ a comment, not a binding }} --><text>{{b0.text}}</text></view>\n",
])
def test_relational_bindings_and_comments_pass(axml):
    assert problems(replace(good_tree(), "pages/home/home.axml", axml)) == []


@pytest.mark.parametrize("axml, column", [
    ("<view><text>{{ say <b>hi</b> }}</text></view>\n", 13),  # text leaked into a binding
    ("<view><text>{{b0.text}} }}</text></view>\n", 25),  # unmatched close
    ("<view><text>{{b0.text</text></view>\n", 13),  # never closed
])
def test_stray_braces(axml, column):
    found = check.bindings_clean(replace(good_tree(), "pages/home/home.axml", axml))
    assert len(found) == 1
    assert (found[0].file, found[0].line, found[0].column) == ("pages/home/home.axml", 1, column)


def test_every_require_resolves_to_a_file_of_the_output():
    js = ("const mpforge = require('../../utils/mpforge.js');\n"
          "Page({ data: {}, onTap() {\n"
          "    require('../../services/coupon.js').claim(this);\n"
          '    require("/utils/format").day(); require("path"); x.require("./not-a-module");\n'
          "  } });\n")
    tree = replace(replace(good_tree(), "pages/home/home.js", js), "utils/mpforge.js", "module.exports = {};\n")
    assert problems(tree) == [
        "pages/home/home.js:3:5: require('../../services/coupon.js'): services/coupon.js is not in the output",
        "pages/home/home.js:4:5: require('/utils/format'): utils/format.js is not in the output"]
    tree = replace(replace(tree, "services/coupon.js", "x"), "utils/format.js", "x")
    assert problems(tree) == []
    escaping = replace(tree, "app.js", "require('../outside.js');\n")
    assert problems(escaping) == [
        "app.js:1:1: require('../outside.js'): the path leads out of the mini-program's folder"]


def test_a_page_script_requiring_a_module_never_generated_fails_the_build(project):
    page_js = (REPO / "templates" / "page" / "page.js").read_text("utf-8")
    override = {"templates/page/page.js": page_js.replace("'../../utils/mpforge.js'", "'../../services/coupon.js'")}
    with pytest.raises(UserError) as info:
        prepare(project(files=override))
    assert "pages/home/home.js:2:17: require('../../services/coupon.js'): services/coupon.js is not in the output" \
        in [str(p) for p in info.value.problems]


def test_unsafe_output_paths():
    tree = replace(good_tree(), "assets/menu 1.png", "x")
    tree = replace(tree, "assets/咖啡.png", "x")
    assert sorted(p.file for p in check.paths_safe(tree)) == ["assets/menu 1.png", "assets/咖啡.png"]


def test_referenced_asset_missing():
    tree = replace(good_tree(), "pages/home/home.js", 'Page({ data: {"b0": {"image": "/assets/gone.png"}} });\n')
    assert problems(tree) == ["pages/home/home.js: references missing asset assets/gone.png"]
    assert problems(replace(tree, "assets/gone.png", "png")) == []
