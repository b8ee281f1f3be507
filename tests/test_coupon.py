"""The coupon plugin: spec rules with located errors, pages, blocks, and the claim flow
run for real in Node against a scripted `my` API."""

from __future__ import annotations

import copy
import json
import shutil
import subprocess
from datetime import date, timedelta

import pytest

from builder.api import build
from builder.errors import UserError
from builder.pipeline import prepare
from builder.testing import page_spec

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
    return page_spec(blocks if blocks is not None else [{"type": "coupon-list"}], coupon=section)


def located(project, spec) -> list[str]:
    with pytest.raises(UserError) as info:
        prepare(project(spec))
    return [str(p) for p in info.value.problems]


def test_pages_blocks_and_files(project):
    prepared = prepare(project(coupon_spec([{"type": "coupon-banner", "coupon": "new-5"}])))
    app = json.loads(prepared.tree.text("app.json"))
    assert app["pages"] == ["pages/home/home", "pages/coupons/coupons", "pages/my-coupons/my-coupons",
                            "pages/privacy/privacy"]  # claiming collects the user id: a policy page
    assert {"services/coupon.js", "docs/backend-contract.md"} <= set(prepared.tree)
    data = prepared.plan.pages[0].data["b0"]["coupons"]
    assert data == [{"id": "new-5", "title": "新人立减", "kind": "cash", "value_text": "¥5", "item": None,
                     "threshold_text": "满20元可用", "validity_text": "领取后7天内有效", "terms": None,
                     "state": "available", "state_text": "立即领取"}]
    centre = prepared.plan.pages[1].data["b0"]["coupons"]
    # An exchange coupon's item goes on the detail line; the big slot says what it is.
    assert [c["value_text"] for c in centre] == ["¥5", "8.5折", "兑换券"]
    assert (centre[2]["item"], centre[2]["threshold_text"]) == ("芝士蛋糕", "满30元可用")
    assert prepared.tree.text("app.acss").count(".mf-coupons {") == 1  # shared stylesheet, once
    contract = prepared.tree.text("docs/backend-contract.md")
    assert "## POST https://api.example.com/shop/mpforge/coupons/claim" in contract
    assert "| `latte-85` | `ACT-LATTE` | discount | 2 | 50 |" in contract


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
        "mpforge.yaml:19:7: pages[1].id: a plugin adds page 'coupons', which this page already uses "
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


# --- the claim flow, executed -----------------------------------------------------

CLAIM_HARNESS = r"""
// Runs services/coupon.js with a fake `my`: SCENARIO says how auth and the backend answer.
const path = require('path');
const scenario = JSON.parse(process.argv[2]);
const storage = {};
const log = { toasts: [], requests: [], updates: [] };
global.getApp = () => ({ globalData: { channel: 'poster-spring', entryPoint: 'table-12' } });
global.my = {
  getStorageSync: ({ key }) => ({ data: storage[key] }),
  setStorageSync: ({ key, data }) => { storage[key] = JSON.parse(JSON.stringify(data)); },
  showLoading: () => {}, hideLoading: () => {},
  showToast: (t) => log.toasts.push(t.content),
  getAuthCode: (o) => scenario.auth === 'cancel' ? o.fail({ error: 11 }) : o.success({ authCode: 'AUTH-1' }),
  request: (o) => {
    log.requests.push({ url: o.url, method: o.method, data: o.data });
    const answer = scenario.answers.shift();
    if (answer === 'network') { o.fail({ error: 12 }); } else { o.success({ data: answer }); }
  },
};
const coupon = require(path.resolve(process.argv[1]));
const pageData = JSON.parse(process.argv[3]);
const page = { data: pageData, setData(update) { log.updates.push(update); Object.assign(page.data, update); } };
for (const id of scenario.claims) { coupon.claim(page, ['b0'], id); }
log.states = Object.fromEntries(Object.keys(scenario.states || {}).map((id) => [id, coupon.stateOf(id, storage[coupon.STORAGE_KEY] || {})]));
log.storage = storage[coupon.STORAGE_KEY] || {};
process.stdout.write(JSON.stringify(log));
"""


@pytest.fixture
def run_claims(project, tmp_path):
    if shutil.which("node") is None:
        pytest.fail("node is required for this test (.ci/run installs it)")
    out = tmp_path / "out"
    build(project(coupon_spec()), out)

    def run(claims, answers, auth="ok"):
        page_data = json.loads(json.dumps({"b0": {"coupons": [{"id": "new-5"}, {"id": "latte-85"}, {"id": "cake"}]}}))
        scenario = {"claims": claims, "answers": answers, "auth": auth,
                    "states": {"new-5": 1, "latte-85": 1, "cake": 1}}
        result = subprocess.run(["node", "-e", CLAIM_HARNESS, str(out / "services/coupon.js"),
                                 json.dumps(scenario), json.dumps(page_data)],
                                capture_output=True, text=True, check=True)
        return json.loads(result.stdout)

    return run


def test_claim_success_posts_auth_code_and_caches(run_claims):
    log = run_claims(["new-5"], [{"result": "CLAIMED", "voucherId": "V1"}])
    assert log["requests"] == [{"url": "https://api.example.com/shop/mpforge/coupons/claim", "method": "POST",
                                "data": {"authCode": "AUTH-1", "couponId": "new-5", "activityId": "ACT-NEW",
                                         "channel": "poster-spring", "entryPoint": "table-12"}}]
    assert log["toasts"] == ["领取成功"]
    assert log["storage"]["new-5"]["count"] == 1 and log["storage"]["new-5"]["voucherId"] == "V1"
    assert log["states"] == {"new-5": "claimed", "latte-85": "available", "cake": "available"}
    states = {c["id"]: (c["state"], c["state_text"]) for c in log["updates"][-1]["b0.coupons"]}
    assert states["new-5"] == ("claimed", "已领取")


def test_per_user_limit_then_limit_reached(run_claims):
    log = run_claims(["latte-85", "latte-85", "latte-85"], [{"result": "CLAIMED"}, {"result": "CLAIMED"}])
    assert len(log["requests"]) == 2  # the third tap is refused on the device
    assert log["states"]["latte-85"] == "limit_reached"


@pytest.mark.parametrize("answer, toast, state", [
    ({"result": "SOLD_OUT"}, "来晚了，券已抢光", "sold_out"),
    ({"result": "LIMIT_REACHED"}, "已达到领取上限", "claimed"),
    ({"result": "EXPIRED"}, "该券已过期", "expired"),
    ({"result": "ERROR", "message": "活动太火爆"}, "活动太火爆", "available"),
    ("network", "网络异常，请稍后重试", "available"),
])
def test_every_backend_outcome_is_shown(run_claims, answer, toast, state):
    log = run_claims(["new-5"], [answer])
    assert log["toasts"] == [toast]
    assert log["states"]["new-5"] == state


def test_cancelled_auth_sends_nothing(run_claims):
    log = run_claims(["new-5"], [], auth="cancel")
    assert log["requests"] == [] and log["toasts"] == ["需要授权后才能领券"]
    assert log["states"]["new-5"] == "available"


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
