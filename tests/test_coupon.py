"""The coupon plugin: spec rules with located errors, pages, blocks, and the claim flow
run for real in Node against a scripted `my` API."""

from __future__ import annotations

import copy
import json
from datetime import date, timedelta

import pytest

from builder.errors import UserError
from builder.pipeline import prepare
from builder.testing import page_spec

APPID = "2021004123456789"

TODAY = date.today()

COUPONS = {
    "backend": {"base_url": "https://api.example.com/shop"},
    "coupons": [
        {"id": "new-5", "kind": "cash", "title": "新人立减", "value": 5, "min_spend": 20,
         "validity": {"days_after_claim": 7}, "stock": 100, "activity_id": "ACT-NEW", "stores": ["main"]},
        {"id": "latte-85", "kind": "discount", "title": "拿铁 8.5 折", "rate": 0.85,
         "validity": {"start": str(TODAY - timedelta(days=1)), "end": str(TODAY + timedelta(days=30))},
         "stock": 50, "per_user_limit": 2, "audience": "members", "activity_id": "ACT-LATTE"},
        {"id": "cake", "kind": "exchange", "title": "送蛋糕", "item": "芝士蛋糕", "min_spend": 30,
         "validity": {"days_after_claim": 3}, "stock": 10, "activity_id": "ACT-CAKE", "terms": "限周末"},
    ],
}


def coupon_spec(blocks=None, **coupon_changes):
    section = copy.deepcopy(COUPONS)
    section.update(coupon_changes)
    spec = page_spec(blocks if blocks is not None else [{"type": "coupon-list"}], coupon=section)
    spec["app"]["appid"] = APPID
    return spec


def located(project, spec) -> list[str]:
    with pytest.raises(UserError) as info:
        prepare(project(spec))
    return [str(p) for p in info.value.problems]


def test_pages_blocks_and_files(project):
    prepared = prepare(project(coupon_spec([{"type": "coupon-banner", "coupon": "new-5"}])))
    app = json.loads(prepared.tree.text("app.json"))
    assert app["pages"] == ["pages/home/home", "pages/coupons/coupons", "pages/my-coupons/my-coupons",
                            "pages/privacy/privacy"]  # claiming collects the user id: a policy page
    assert {"services/coupon.js", "utils/backend.js", "docs/backend.md"} <= set(prepared.tree)
    data = prepared.plan.pages[0].data["b0"]["coupons"]
    assert data == [{"id": "new-5", "title": "新人立减", "kind": "cash", "value_text": "¥5", "item": None,
                     "threshold_text": "满20元可用", "validity_text": "领取后7天内有效", "terms": None,
                     "state": "available", "state_text": "立即领取"}]
    centre = prepared.plan.pages[1].data["b0"]["coupons"]
    # An exchange coupon's item goes on the detail line; the big slot says what it is.
    assert [c["value_text"] for c in centre] == ["¥5", "8.5折", "兑换券"]
    assert (centre[2]["item"], centre[2]["threshold_text"]) == ("芝士蛋糕", "满30元可用")
    assert prepared.tree.text("app.acss").count(".mf-coupons {") == 1  # shared stylesheet, once
    assert prepared.plan.pages[0].data["b0"]["plugin"] is False  # no coupon goes through Alipay's plugin


def test_pages_are_configurable_and_linkable(project):
    spec = coupon_spec([{"type": "button", "text": "mine", "link": "wallet"}],
                       pages={"centre": None, "mine": {"id": "wallet", "title": "卡包"}})
    prepared = prepare(project(spec))
    assert json.loads(prepared.tree.text("app.json"))["pages"] == ["pages/home/home", "pages/wallet/wallet",
                                                                   "pages/privacy/privacy"]
    assert prepared.plan.pages[1].data["b0"]["more"] is None  # no centre to send people to


def test_plugin_page_id_taken_by_a_spec_page_points_at_that_page(project):
    spec = coupon_spec()
    spec["pages"].append({"id": "coupons", "title": "Mine", "blocks": [{"type": "divider"}]})
    assert located(project, spec) == [
        "mpforge.yaml:20:7: pages[1].id: a plugin adds page 'coupons', which this page already uses "
        "(rename this page, or change the plugin page's id in its section)"]


def test_list_filters(project):
    blocks = [{"type": "coupon-list", "kinds": ["cash", "exchange"]},
              {"type": "coupon-list", "audience": ["members"]},
              {"type": "coupon-list", "store": "main"},
              {"type": "coupon-list", "coupons": ["cake", "new-5"]}]
    pages = prepare(project(coupon_spec(blocks))).plan.pages[0].data
    ids = [[c["id"] for c in pages[f"b{i}"]["coupons"]] for i in range(4)]
    assert ids == [["new-5", "cake"], ["latte-85"], ["new-5", "latte-85", "cake"], ["cake", "new-5"]]


# Each validation rule, with the spec path it must point at.
@pytest.mark.parametrize("change, path, message", [
    (lambda c: c[1].update(rate=1.5), "coupon.coupons[1].rate", "input should be less than 1"),
    (lambda c: c[0].update(min_spend=3), "coupon.coupons[0]", "'min_spend' (3) must not be below the cash value (5)"),
    (lambda c: c[1].update(validity={"start": "2027-03-01", "end": "2027-02-01"}), "coupon.coupons[1].validity",
     "'end' (2027-02-01) must be after 'start' (2027-03-01)"),
    (lambda c: c[2].update(per_user_limit=11), "coupon.coupons[2]", "'per_user_limit' (11) must not exceed 'stock' (10)"),
    (lambda c: c[2].update(id="new-5"), "coupon.coupons[2].id", "duplicate coupon id 'new-5'"),
    (lambda c: c[0].update(stores=["mian"]), "coupon.coupons[0].stores[0]", "no store with id 'mian' in merchant.stores"),
    (lambda c: c[0].pop("value"), "coupon.coupons[0]", "a cash coupon needs 'value'"),
    (lambda c: c[0].update(validity={"days_after_claim": 3, "end": "2027-01-01"}), "coupon.coupons[0].validity",
     "give either 'start' and 'end', or 'days_after_claim'"),
    (lambda c: c[0].update(validity={"start": "2027-01-01"}), "coupon.coupons[0].validity",
     "fixed validity needs both 'start' and 'end'"),
    (lambda c: c[0].update(rate=0.5), "coupon.coupons[0]", "a cash coupon takes 'value', not 'rate'"),
    (lambda c: c[0].update(activity_id="has space"), "coupon.coupons[0].activity_id", "is not in the expected format"),
    (lambda c: c[0].update(stock=0), "coupon.coupons[0].stock", "input should be greater than or equal to 1"),
    (lambda c: c[0].update(audience="vips"), "coupon.coupons[0].audience", "input should be 'everyone'"),
    (lambda c: c[0].update(titel="x"), "coupon.coupons[0].titel", "unknown key 'titel' (did you mean 'title'?)"),
])
def test_every_rule_has_a_located_error(project, change, path, message):
    spec = coupon_spec()
    change(spec["coupon"]["coupons"])
    found = located(project, spec)
    assert len(found) == 1, found
    assert f": {path}: " in found[0] and message in found[0]
    assert found[0].startswith("mpforge.yaml:")


def test_backend_must_be_https(project):
    found = located(project, coupon_spec(backend={"base_url": "http://api.example.com"}))
    assert "coupon.backend.base_url: 'http://api.example.com' is not in the expected format" in found[0]


def test_block_references_unknown_coupon(project):
    spec = coupon_spec([{"type": "coupon-card", "coupon": "new5"}])
    found = located(project, spec)
    lines = (project(spec)).read_text().splitlines()
    line = next(i for i, text in enumerate(lines, 1) if "coupon: new5" in text)
    column = lines[line - 1].index("new5") + 1
    assert found == [f"mpforge.yaml:{line}:{column}: pages[0].blocks[0].coupon: "
                     "no coupon with id 'new5' in coupon.coupons (did you mean 'new-5'?)"]


def test_expired_coupon_is_a_warning_and_shows_expired(project, cli):
    spec = coupon_spec()
    spec["coupon"]["coupons"][1]["validity"] = {"start": "2020-01-01", "end": "2020-02-01"}
    path = project(spec)
    result = cli("check", path)
    assert result.exit_code == 0
    assert "warning: mpforge.yaml:" in result.stderr
    assert "coupon.coupons[1].validity.end: coupon 'latte-85' expired on 2020-02-01" in result.stderr
    centre = prepare(path).plan.pages[1].data["b0"]["coupons"]
    assert [c["state"] for c in centre] == ["available", "expired", "available"]


def test_source_date_epoch_fixes_the_build_date(project, monkeypatch):
    spec = coupon_spec()
    spec["coupon"]["coupons"][1]["validity"] = {"start": "2030-01-01", "end": "2030-02-01"}
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1956528000")  # 2032-01-01
    centre = prepare(project(spec)).plan.pages[1].data["b0"]["coupons"]
    assert centre[1]["state"] == "expired"


# --- the back end, the coupon plugin route (the flows themselves run in test_app_flows.py) ---

def test_coupons_need_a_back_end_and_an_app_id(project, mpforge_problems):
    spec = coupon_spec()
    del spec["coupon"]["backend"]
    found = located(project, spec)
    assert len(found) == 1 and ": coupon: coupons are claimed through the merchant back end, and none is set" in found[0]
    spec["backend"] = {"base_url": "https://api.example.com/shop/"}
    del spec["app"]["appid"]
    problems = mpforge_problems(spec)
    warnings = [p for p in problems if p.path == "app"]
    assert len(warnings) == 1, problems
    warning = warnings[0]
    assert "the back end serves this app under its app id" in warning.message and warning.severity == "warning"


def test_the_back_end_moved_to_the_top_level_and_the_old_place_still_builds(project):
    legacy = coupon_spec(backend={"base_url": "https://api.example.com/shop/", "claim_path": "/v2/claim"})
    prepared = prepare(project(legacy))
    assert prepared.spec.backend_api == f"https://api.example.com/shop/api/v1/{APPID}"
    assert [(w.path, w.message) for w in prepared.warnings if w.path.startswith("coupon.backend")] == [
        ("coupon.backend.claim_path", "claim_path is no longer used")]
    assert f'const BASE = "https://api.example.com/shop/api/v1/{APPID}";' in prepared.tree.text("utils/backend.js")
    moved = coupon_spec()
    moved["backend"] = moved["coupon"].pop("backend")
    assert prepare(project(moved)).tree.text("utils/backend.js") == prepared.tree.text("utils/backend.js")


def test_the_plugin_route_declares_alipays_coupon_plugin_where_it_is_used(project):
    spec = coupon_spec([{"type": "coupon-card", "coupon": "new-5"}, {"type": "coupon-card", "coupon": "cake"}])
    spec["coupon"]["coupons"][2]["claim_route"] = "plugin"  # cake
    spec["pages"].append({"id": "plain", "title": "Plain", "blocks": [{"type": "coupon-card", "coupon": "new-5"}]})
    prepared = prepare(project(spec))
    tree = prepared.tree
    assert json.loads(tree.text("app.json"))["plugins"] == {
        "couponPlugin": {"version": "*", "provider": "2021002172680015"}}
    component = {"get-coupon": "plugin://couponPlugin/get-coupon"}
    uses = {path: json.loads(tree.text(path))["usingComponents"] for path in tree if path.endswith(".json")
            and path.startswith("pages/")}
    # home shows cake; the centre lists it; my coupons may hold a reservation of it; plain does not show it.
    assert uses == {"pages/home/home.json": component, "pages/coupons/coupons.json": component,
                    "pages/my-coupons/my-coupons.json": component, "pages/plain/plain.json": {},
                    "pages/privacy/privacy.json": {}}
    home = tree.text("pages/home/home.axml")
    assert home.count("<get-coupon a:if=\"{{item.state === 'reserved'}}\" params=\"{{item.plugin_params}}\"") == 1
    assert "<get-coupon" not in tree.text("pages/plain/plain.axml")
    assert "claim_route" not in tree.text("services/coupon.js")  # the back end knows the route, not the app
    spec["coupon"]["coupons"][2]["claim_route"] = "send"
    assert "plugins" not in json.loads(prepare(project(spec)).tree.text("app.json"))


def test_docs_say_where_the_back_end_is_and_no_device_keeps_claims(project):
    tree = prepare(project(coupon_spec())).tree
    doc = tree.text("docs/backend.md")
    assert f"https://api.example.com/shop/api/v1/{APPID}" in doc
    assert "https://api.example.com/shop/api/v1/openapi.json" in doc
    assert "| `cake` | `ACT-CAKE` | the back end (alipay.marketing.activity.ordervoucher.send) | 1 | 10 |" in doc
    assert "docs/**" in json.loads(tree.text("mini.project.json"))["uploadExclude"]
    service = tree.text("services/coupon.js")
    assert "mpforge.coupon.claims" not in service and "/me/claims" in service


def test_follow_rewards_stay_out_of_public_lists_and_exchange_coupons_link_their_page(project, mpforge_problems):
    spec = coupon_spec()
    spec["coupon"]["coupons"].append({"id": "fan", "kind": "cash", "title": "关注礼", "value": 3, "stock": 10,
                                      "validity": {"days_after_claim": 7}, "activity_id": "ACT-FAN",
                                      "audience": "followers"})
    prepared = prepare(project(spec))
    centre = [c["id"] for c in prepared.plan.pages[1].data["b0"]["coupons"]]
    assert "fan" not in centre and len(centre) == 3
    spec["pages"][0]["blocks"].append({"type": "coupon-card", "coupon": "fan"})
    rules = {(p.rule, p.path) for p in mpforge_problems(spec)}
    assert ("review/reward-coupon-public", "pages[0].blocks[1]") in rules
    assert ("review/exchange-detail", "coupon.coupons[2].kind") in rules  # cake has no detail_page


def test_an_exchange_coupon_names_its_page_for_alipay(project):
    from plugins.coupon.models import Coupon

    spec = coupon_spec()
    spec["coupon"]["coupons"][2]["detail_page"] = "home"
    spec["app"]["appid"] = "2021004123456789"
    prepared = prepare(project(spec))
    assert not [w for w in prepared.warnings if w.rule == "review/exchange-detail"]
    cake = next(c for c in prepared.spec.section("coupon").coupons if c.id == "cake")
    assert isinstance(cake, Coupon)
    assert cake.merchant_order_url("2021004123456789") == (
        "alipays://platformapi/startapp?appId=2021004123456789&page=pages%2Fhome%2Fhome")
