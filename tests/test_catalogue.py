"""The catalogue: products with categories and options, lists that read it, and the
product page that shows the product its ?item= names (run in Node)."""

from __future__ import annotations

import copy
import json
import shutil
import subprocess
from typing import Any

import pytest

from builder.api import build
from builder.errors import UserError
from builder.pipeline import prepare
from builder.testing import page_spec

CATALOGUE = {
    "detail_page": "product",
    "categories": [{"id": "coffee", "name": "咖啡"}, {"id": "bakery", "name": "烘焙"}],
    "products": [
        {"id": "latte", "name": "拿铁", "category": "coffee", "price": 28, "tag": "招牌",
         "options": [{"id": "size", "name": "杯型", "default": "m",
                      "choices": [{"id": "m", "name": "中杯"}, {"id": "l", "name": "大杯", "price": 4}]}]},
        {"id": "mocha", "name": "摩卡", "category": "coffee", "price": 30, "original_price": 34, "sold_out": True},
        {"id": "croissant", "name": "可颂", "category": "bakery", "price": 18, "description": "黄油"},
    ],
}
PRODUCT_PAGE = {"id": "product", "title": "商品", "blocks": [{"type": "product-detail"}]}


def catalogue_spec(blocks: list[dict[str, Any]], **changes: Any) -> dict[str, Any]:
    spec = page_spec(blocks, catalogue={**copy.deepcopy(CATALOGUE), **changes})
    spec["pages"].append(copy.deepcopy(PRODUCT_PAGE))
    return spec


def located(project, spec) -> list[str]:
    with pytest.raises(UserError) as info:
        prepare(project(spec))
    return [str(p) for p in info.value.problems]


def test_lists_take_chosen_products_or_a_category_and_link_the_product_page(project):
    spec = catalogue_spec([{"type": "product-list", "products": ["mocha", "latte"]},
                           {"type": "product-list", "category": "bakery", "layout": "grid", "title": "面包"},
                           {"type": "product-list", "category": "coffee"}])
    data = prepare(project(spec)).plan.pages[0].data
    chosen = data["b0"]["items"]
    assert [(i["name"], i["price"], i["original_price"], i["sold_out"]) for i in chosen] == [
        ("摩卡", "¥30.00", "¥34.00", True), ("拿铁", "¥28.00", None, False)]
    assert chosen[1]["link"] == {"kind": "page", "url": "/pages/product/product?item=latte"}
    assert data["b1"]["title"] == "面包" and [i["name"] for i in data["b1"]["items"]] == ["可颂"]
    assert data["b2"]["title"] == "咖啡"  # a category's list is titled with its name by default
    assert [i["name"] for i in data["b2"]["items"]] == ["拿铁", "摩卡"]


def test_the_product_page_shows_the_first_product_until_a_query_names_one(project):
    prepared = prepare(project(catalogue_spec([{"type": "text", "text": "hi"}])))
    detail = prepared.plan.pages[1].data["b0"]
    assert sorted(detail["products"]) == ["croissant", "latte", "mocha"]
    assert detail["current"]["name"] == "拿铁"  # never a blank page, even opened without ?item=
    assert detail["current"]["options"] == [{"id": "size", "name": "杯型", "multiple": False, "choices": [
        {"id": "m", "name": "中杯", "price_text": ""}, {"id": "l", "name": "大杯", "price_text": "+¥4.00"}]}]


PAGE_HARNESS = r"""
// Loads a built page with a query; prints what it shows and the navigation bar title.
const path = require('path');
const calls = [];
global.my = { setNavigationBar: (o) => calls.push(o.title) };
global.getApp = () => ({});
let page;
global.Page = (o) => { page = o; };
require(path.resolve(process.argv[1]));
page.setData = function (update) { for (const [k, v] of Object.entries(update)) { this.data[k.split('.')[0]][k.split('.')[1]] = v; } };
page.onLoad(JSON.parse(process.argv[2]));
const current = page.data.b0.current;
process.stdout.write(JSON.stringify([current && current.name, calls]));
"""


@pytest.mark.parametrize("query, shown", [
    ({"item": "croissant"}, ["可颂", ["可颂"]]),
    ({}, ["拿铁", []]),
    ({"item": "gone"}, [None, []]),  # an old share of a removed product: the missing text, not another product
    ({"item": "__proto__"}, [None, []]),
])
def test_the_product_page_honours_its_query(project, tmp_path, query, shown):
    if shutil.which("node") is None:
        pytest.fail("node is required for this test (.ci/run installs it)")
    out = tmp_path / "out"
    build(project(catalogue_spec([{"type": "text", "text": "hi"}])), out)
    result = subprocess.run(["node", "-e", PAGE_HARNESS, str(out / "pages/product/product.js"), json.dumps(query)],
                            capture_output=True, text=True, check=True)
    assert json.loads(result.stdout) == shown
    axml = (out / "pages/product/product.axml").read_text("utf-8")
    assert '<view a:else class="mf-product-detail-missing">' in axml


@pytest.mark.parametrize("change, expected", [
    (lambda s: s["catalogue"]["products"][0].update(category="tea"),
     "catalogue.products[0].category: no category with id 'tea' in catalogue.categories"),
    (lambda s: s["catalogue"]["products"][1].update(id="latte"), "catalogue.products[1].id: duplicate product id"),
    (lambda s: s["catalogue"]["products"][0]["options"][0].update(default="xl"),
     "catalogue.products[0].options[0]: 'default' ('xl') is not one of the choices (m, l)"),
    (lambda s: s["catalogue"]["products"][0]["options"][0].update(multiple=True, required=True),
     "catalogue.products[0].options[0]: an option with 'multiple' choices cannot be 'required'"),
    (lambda s: s["catalogue"].update(detail_page="home"),
     "catalogue.detail_page: page 'home' has no product-detail block"),
    (lambda s: s["pages"][0]["blocks"].append({"type": "button", "text": "看看",
                                               "link": {"page": "product", "query": "item=lattee"}}),
     "pages[0].blocks[1].link.query: opens product 'lattee', which catalogue.products does not have "
     "(did you mean 'latte'?)"),
    (lambda s: s["pages"][0]["blocks"].append({"type": "product-list", "products": ["latte"], "category": "coffee"}),
     "pages[0].blocks[1]: give one of 'items' (products written here), 'products' (catalogue ids) or "
     "'category' (a catalogue category); not products and category"),
    (lambda s: s["pages"][0]["blocks"].append({"type": "product-list", "products": ["latee"]}),
     "pages[0].blocks[1].products[0]: no product with id 'latee' in catalogue.products (did you mean 'latte'?)"),
])
def test_catalogue_mistakes_are_located(project, change, expected):
    spec = catalogue_spec([{"type": "text", "text": "hi"}])
    change(spec)
    found = located(project, spec)
    assert len(found) == 1 and expected in found[0], found


def test_the_product_page_needs_a_catalogue(project):
    spec = page_spec([{"type": "product-detail"}])
    assert any("pages[0].blocks[0].type: block 'product-detail' needs a 'catalogue' section" in e
               for e in located(project, spec))
