"""The membership plugin's mini-program side: the spec's rules (located errors), the
generated files (the member page, app.json's alipassToolKit plugin, services/membership.js),
the pages' own JavaScript run in Node on an emulated `my`, and harbour-coffee's member page
in `mpforge dev`'s preview, in Chromium.

The back end's membership routes (card_api.py, points.py, stamps_api.py) are other parts of
issue 18 and are placeholders in this tree: the Node harness answers the mini-program's API
(GET membership/me, POST membership/card, stamps, rewards, subscriptions) as the design's
contract says, and records what the pages sent, so what is tested here is the pages' side of
that contract.
"""

from __future__ import annotations

import http.client
import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from helpers import DevProcess, copy_sample, shown_text, wait_until

from builder.api import build
from builder.devserver import DevServer
from builder.errors import UserError
from builder.pipeline import prepare

REPO = Path(__file__).resolve().parent.parent
SAMPLE = REPO / "sample_projects" / "harbour-coffee" / "mpforge.yaml"
MEMBER = "pages/member/member"
HOME = "pages/home/home"


def sample_spec() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(SAMPLE.read_text("utf-8"))
    return data


def sample_project(tmp_path: Path, data: dict[str, Any]) -> Path:
    """The sample's spec (changed) beside a copy of its assets."""
    root = tmp_path / "project"
    shutil.copytree(SAMPLE.parent / "assets", root / "assets")
    (root / "mpforge.yaml").write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False), "utf-8")
    return root / "mpforge.yaml"


# --- the spec ------------------------------------------------------------------------------

def _coupon(data: dict[str, Any], coupon_id: str) -> dict[str, Any]:
    found: dict[str, Any] = next(c for c in data["coupon"]["coupons"] if c["id"] == coupon_id)
    return found


@pytest.mark.parametrize(("change", "expected"), [
    (lambda d: _coupon(d, "points-10").update(claim_route="plugin"),
     "membership.points.rewards[1].coupon: coupon 'points-10' is a reward the back end issues, but its claim_route "
     "is plugin"),
    (lambda d: _coupon(d, "stamp-coffee").update(claim_route="plugin"),
     "membership.stamp_card.reward: coupon 'stamp-coffee' is a reward the back end issues"),
    (lambda d: _coupon(d, "latte-85").update(audience="segment", segment="nobody"),
     "coupon.coupons[1].segment: coupon 'latte-85' is for segment 'nobody', which membership.segments does not have"),
    (lambda d: d["membership"]["segments"][1]["rule"].update(levels=["gold", "diamond"]),
     "membership.segments[1].rule.levels[1]: segment 'regulars' names level 'diamond'"),
    (lambda d: d["membership"]["messages"]["templates"][0].update(page="nowhere"),
     "membership.messages.templates[0].page: no page with id 'nowhere'"),
    (lambda d: d["membership"].pop("stamp_card") and d["pages"][0]["blocks"].append({"type": "stamp-card"}),
     "pages[0].blocks[14]: the stamp-card block shows membership.stamp_card, and the spec has none"),
    (lambda d: d.pop("membership") and _coupon(d, "latte-85").update(audience="segment", segment="lapsed"),
     "coupon.coupons[1].segment: coupon 'latte-85' is for segment 'lapsed', which membership.segments does not have"),
    (lambda d: d.pop("backend"),
     "membership: members, points and stamps are kept by the merchant back end"),
    (lambda d: d["pages"][0]["blocks"].append({"type": "coupon-list", "coupons": ["latte-85", "points-10"]}),
     "pages[0].blocks[14]: shows reward coupon points-10, which is given only for points or a full stamp card"),
])
def test_membership_mistakes_are_located(tmp_path: Path, change: Any, expected: str) -> None:
    data = sample_spec()
    change(data)
    with pytest.raises(UserError) as info:
        prepare(sample_project(tmp_path, data))
    problems = [str(p) for p in info.value.problems]
    assert any(expected in p for p in problems), problems


def test_a_reward_anyone_could_claim_is_warned_and_lists_leave_rewards_out(tmp_path: Path) -> None:
    data = sample_spec()
    _coupon(data, "points-10").update(audience="everyone")
    prepared = prepare(sample_project(tmp_path, data))
    [warning] = [w for w in prepared.warnings if "is a reward, but its audience" in w.message]
    assert warning.path == "membership.points.rewards[1].coupon"
    assert "it can be claimed for nothing" in warning.message and "audience: reward" in (warning.hint or "")
    # A coupon list without `coupons:` shows every coupon but the rewards (points-croissant stays a reward).
    data["pages"][0]["blocks"].append({"type": "coupon-list"})
    listed = prepare(sample_project(tmp_path / "listed", data)).plan.pages[0].data["b14"]["coupons"]
    shown = {c["id"] for c in listed}
    assert "points-croissant" not in shown and "stamp-coffee" not in shown and "follow-gift" not in shown
    assert {"latte-85", "points-10"} <= shown


def test_the_contact_button_is_warned_as_enterprise_only(tmp_path: Path) -> None:
    data = sample_spec()
    data["pages"][4]["blocks"].append({"type": "contact-button", "tnt_inst_id": "ABC123", "scene": "SCE01"})  # stores
    warnings = [w for w in prepare(sample_project(tmp_path, data)).warnings
                if w.rule == "review/contact-button-enterprise"]
    assert [w.path for w in warnings] == ["pages[4].blocks[2]"]
    assert "enterprise (企业) Alipay accounts only" in warnings[0].message


def test_card_pictures_alipay_would_refuse_are_warned(tmp_path: Path) -> None:
    data = sample_spec()
    data["membership"]["card"].update(logo="logo.png", background="card/background.jpg")
    project = sample_project(tmp_path, data)
    # A JPEG of 1000×600 (a start-of-frame segment after an APP0 one): too low for the card.
    jpeg = (b"\xff\xd8" + b"\xff\xe0\x00\x10" + b"JFIF\x00" + bytes(9)
            + b"\xff\xc0\x00\x11\x08" + (600).to_bytes(2, "big") + (1000).to_bytes(2, "big") + bytes(12))
    (project.parent / "assets" / "card" / "background.jpg").write_bytes(jpeg)
    warnings = [(w.path, w.message) for w in prepare(project).warnings if w.rule == "review/card-image"]
    assert warnings == [
        ("membership.card.logo", "logo.png is 120×120 px; Alipay's card needs at least 500×500"),
        ("membership.card.background", "card/background.jpg is 1000×600 px; Alipay's card needs at least 1020×643")]
    (project.parent / "assets" / "card" / "background.jpg").write_bytes(b"GIF89a" + bytes(20))
    warnings = [w.message for w in prepare(project).warnings if w.rule == "review/card-image"]
    assert "card/background.jpg is not a png or jpg image, which is what Alipay takes for a card" in warnings
    assert not [w for w in prepare(SAMPLE).warnings if w.rule == "review/card-image"]  # the sample's fit


def test_the_member_page_plugin_and_service_are_generated(tmp_path: Path) -> None:
    tree = prepare(SAMPLE).tree
    app = json.loads(tree.text("app.json"))
    assert app["plugins"]["alipassToolKit"] == {"version": "*", "provider": "2021001139681234"}
    assert MEMBER in app["pages"]
    member = tree.text(f"{MEMBER}.js")
    data = json.loads(member.split("data: ", 1)[1].split(",\n  // The query", 1)[0])
    assert data["b0"]["title"] == "港湾咖啡会员卡" and data["b0"]["level_name"] == "银卡"
    assert data["b0"]["next_text"] == "再得 500 积分升级金卡"
    assert data["b1"]["per_card"] == 8 and len(data["b1"]["slots"]) == 8
    assert data["b1"]["reward_title"] == "集点卡奖励 · 免费咖啡"
    assert [(r["coupon"], r["points"]) for r in data["b2"]["rewards"]] == [("points-croissant", 150), ("points-10", 300)]
    assert "mfMemberCardShow();" in member and "mfStampCardShow();" in member and "mfRewardsShow();" in member
    service = tree.text("services/membership.js")
    config = json.loads(service.split("const CONFIG = ", 1)[1].split(";\n", 1)[0])
    assert config == {"appid": "2021004123456789",
                      "levels": [{"id": "silver", "minPoints": 0}, {"id": "gold", "minPoints": 500},
                                 {"id": "black", "minPoints": 2000}],
                      "subscriptions": {"order_paid": [], "coupon_claimed": ["TPL_HC_COUPON_EXPIRE"],
                                        "card_opened": ["TPL_HC_POINTS"]},
                      "followPoints": True}
    assert "港湾" not in service and "金卡" not in service  # the merchant's words stay page data
    assert "mfMoment(moment)" in tree.text("app.js")
    policy = tree.text("pages/privacy/privacy.js")
    assert "SHA-256 哈希值（不保存号码本身" in policy and "集点记录" in policy


def test_without_stamps_or_rewards_the_member_page_has_the_card_alone(tmp_path: Path) -> None:
    data = sample_spec()
    del data["membership"]["stamp_card"], data["membership"]["points"]["rewards"]
    data["membership"]["pages"] = {"member": {"id": "vip", "title": "会员"}}
    for page in data["pages"]:
        for block in page["blocks"]:
            if block.get("link") == "member":
                block["link"] = "vip"
    data["membership"]["messages"]["templates"][1]["page"] = "vip"
    tree = prepare(sample_project(tmp_path, data)).tree
    axml = tree.text("pages/vip/vip.axml")
    assert "mf-member" in axml and "mf-stamps" not in axml and "mf-rewards" not in axml


# --- the pages in Node -------------------------------------------------------------------

HARNESS = r"""
// Loads built pages (and app.js, whose App.mfMoment the coupon service calls) with an
// emulated `my`. The back end is scripted: ANSWERS maps "METHOD /path" to a list of
// {status, body} taken in turn (the last repeats); every request is logged.
const path = require('path');
const [out, stepsJson, answersJson, storageJson] = process.argv.slice(1);
const steps = JSON.parse(stepsJson);
const answers = JSON.parse(answersJson);
const storage = JSON.parse(storageJson);
const log = { toasts: [], alerts: [], requests: [], openCard: [], subscribe: [], snapshots: {} };
let pending = 0;
let scanned = '';
let subscribeAnswer = 'accept';
let cardAnswer = null;
const later = (fn) => { pending += 1; setTimeout(() => { try { fn(); } finally { pending -= 1; } }, 0); };
let app = null;
global.App = (o) => { app = o; };
global.getApp = () => app;
global.requirePlugin = (name) => {
  if (name !== 'alipassToolKit') throw new Error('no plugin ' + name);
  return { openCard: (o) => { log.openCard.push(o.url); later(() => o.callback(cardAnswer)); } };
};
global.my = {
  canIUse: () => true,
  getStorageSync: ({ key }) => ({ data: storage[key] === undefined ? null : JSON.parse(storage[key]) }),
  setStorageSync: ({ key, data }) => { storage[key] = JSON.stringify(data); },
  removeStorageSync: ({ key }) => { delete storage[key]; },
  getStorage: (o) => later(() => (storage[o.key] === undefined ? o.fail({ error: 11 }) : o.success({ data: JSON.parse(storage[o.key]) }))),
  setStorage: (o) => { storage[o.key] = JSON.stringify(o.data); later(() => o.success && o.success({})); },
  showLoading: () => {}, hideLoading: () => {},
  showToast: (t) => log.toasts.push(t.content),
  alert: (a) => log.alerts.push({ title: a.title, content: a.content }),
  getAuthCode: (o) => later(() => o.success({ authCode: 'sandbox-user-7' })),
  scan: (o) => later(() => (scanned ? o.success({ code: scanned }) : o.fail({ error: 10 }))),
  requestSubscribeMessage: (o) => {
    log.subscribe.push(o.entityIds);
    const res = { behavior: 'subscribe', show: true };
    o.entityIds.forEach((id) => { res[id] = subscribeAnswer; });
    later(() => o.success(res));
  },
  request: (o) => {
    const url = new URL(o.url);
    const route = o.method + ' ' + url.pathname.replace(/^.*\/api\/v1\/[0-9]+/, '');
    log.requests.push({ route: route, body: o.data || null, key: (o.headers || {})['Idempotency-Key'] || null });
    const list = answers[route] || [{ status: 404, body: { error: { code: 'not_found' } } }];
    const answer = list.length > 1 ? list.shift() : list[0];
    later(() => {
      if (answer.status === 0) o.fail({ error: 12 });
      else if (answer.status < 300) o.success({ status: answer.status, data: answer.body, headers: {} });
      else o.fail({ error: 19, status: answer.status, data: answer.body, headers: {} });
    });
  },
};
require(path.join(out, 'app.js'));
let definition = null;
global.Page = (o) => { definition = o; };
function open(route) {
  require(path.join(out, route + '.js'));
  const page = Object.assign({}, definition, { route: route, data: JSON.parse(JSON.stringify(definition.data)) });
  page.setData = function (update) {
    for (const [k, v] of Object.entries(update)) {
      const parts = k.split('.');
      let target = this.data;
      parts.slice(0, -1).forEach((p) => { target = target[p]; });
      target[parts[parts.length - 1]] = v;
    }
  };
  page.onLoad({});
  if (page.onShow) page.onShow();
  return page;
}
const idle = () => new Promise((resolve) => { const tick = () => (pending ? setTimeout(tick, 5) : resolve()); setTimeout(tick, 5); });
(async () => {
  let page = null;
  for (const step of steps) {
    if (step.scan !== undefined) scanned = step.scan;
    if (step.subscribe !== undefined) subscribeAnswer = step.subscribe;
    if (step.card !== undefined) cardAnswer = step.card;
    if (step.do === 'open') page = open(step.route);
    if (step.do === 'tap') page[step.handler]({ currentTarget: { dataset: step.dataset || {} } });
    if (step.do === 'show') page.onShow();
    if (step.do === 'moment') app.mfMoment(step.moment);
    await idle();
    if (step.as) log.snapshots[step.as] = JSON.parse(JSON.stringify(page.data[step.block || 'b0']));
  }
  log.storage = storage;
  process.stdout.write(JSON.stringify(log));
  process.exit(0);
})();
"""

NOT_MEMBER = {"member": False, "cardNo": None, "level": {"id": "silver", "name": "银卡"},
              "nextLevel": {"id": "gold", "name": "金卡", "minPoints": 500}, "points": 0, "earned": 0, "stamps": 3,
              "stampsPerCard": 8, "cardsFilled": 0, "applyCardUrl": "https://memberprod.alipay.com/apply?x=1",
              "rewards": [{"coupon": "points-croissant", "title": "c", "points": 150, "affordable": False},
                          {"coupon": "points-10", "title": "t", "points": 300, "affordable": False}],
              "followed": False}
MEMBER_NOW = {**NOT_MEMBER, "member": True, "cardNo": "HC0000123", "points": 620, "earned": 620,
              "level": {"id": "gold", "name": "金卡"}, "nextLevel": {"id": "black", "name": "黑金", "minPoints": 2000},
              "applyCardUrl": None,
              "rewards": [{"coupon": "points-croissant", "title": "c", "points": 150, "affordable": True},
                          {"coupon": "points-10", "title": "t", "points": 300, "affordable": True}]}
SESSION = {"POST /session": [{"status": 200, "body": {"token": "t", "expiresIn": 3600}}]}


def error(status: int, code: str) -> dict[str, Any]:
    return {"status": status, "body": {"error": {"code": code, "message": "for developers"}}}


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if shutil.which("node") is None:
        pytest.fail("node is required for this test (.ci/run installs it)")
    data = sample_spec()
    # Four templates asked after a claim: two calls of at most 3 ids.
    extra = [{"id": f"extra-{n}", "template_id": f"TPL_EXTRA_{n}", "event": "coupon_expiring",
              "ask_after": "coupon_claimed", "fields": ["coupon"]} for n in range(3)]
    data["membership"]["messages"]["templates"] += extra
    out = tmp_path_factory.mktemp("membership") / "out"
    build(sample_project(out.parent, data), out)
    return out


# A device that has used the app: it holds a session, so pages shown ask the back end.
SIGNED_IN = {"mpforge.session": json.dumps({"token": "t", "expiresAt": 4102444800000})}


def run(out: Path, steps: list[dict[str, Any]], answers: dict[str, list[dict[str, Any]]],
        storage: dict[str, str] | None = None) -> dict[str, Any]:
    result = subprocess.run(["node", "-e", HARNESS, str(out), json.dumps(steps), json.dumps({**SESSION, **answers}),
                             json.dumps(SIGNED_IN if storage is None else storage)],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    log: dict[str, Any] = json.loads(result.stdout)
    return log


def test_a_customer_claims_the_card_and_subscribes(built: Path) -> None:
    card = {"success": True, "auth_code": "AC-1", "request_id": "REQ-9", "template_id": "TPL-CARD"}
    log = run(built, [
        {"do": "open", "route": MEMBER, "as": "before"},
        {"card": card, "do": "tap", "handler": "onMemberCardClaim", "as": "after"},
        {"do": "open", "route": MEMBER, "block": "b2", "as": "rewards"},
    ], {"GET /membership/me": [{"status": 200, "body": NOT_MEMBER}, {"status": 200, "body": MEMBER_NOW}],
        "POST /membership/card": [{"status": 200, "body": MEMBER_NOW}],
        "POST /membership/subscriptions": [{"status": 204, "body": ""}]}, storage={})  # a new device: no session
    before, after = log["snapshots"]["before"], log["snapshots"]["after"]
    assert log["requests"][0]["route"] == "POST /session"  # showing the page asked nothing; the tap logs in
    assert (before["member"], before["level_name"]) == (False, "银卡")
    assert log["openCard"] == ["https://memberprod.alipay.com/apply?x=1"]
    posted = [r for r in log["requests"] if r["route"] == "POST /membership/card"]
    assert [r["body"] for r in posted] == [{"authCode": "AC-1", "requestId": "REQ-9", "templateId": "TPL-CARD"}]
    assert (after["member"], after["card_no"], after["points"], after["level_name"]) == (True, "HC0000123", 620, "金卡")
    assert after["benefits"] == ["饮品 95 折", "生日免费中杯咖啡一杯", "新品优先品尝"]
    assert after["next_text"] == "再得 1380 积分升级黑金" and after["progress"] == 8  # (620-500)/(2000-500)
    assert "开卡成功" in log["toasts"]
    # card_opened: its template asked, and the answer sent to the back end
    assert log["subscribe"] == [["TPL_HC_POINTS"]]
    sent = [r["body"] for r in log["requests"] if r["route"] == "POST /membership/subscriptions"]
    assert sent == [{"accepted": ["TPL_HC_POINTS"], "rejected": []}]
    assert all(r["affordable"] for r in log["snapshots"]["rewards"]["rewards"])


def test_a_claim_page_left_unfinished_opens_no_card(built: Path) -> None:
    log = run(built, [{"do": "open", "route": MEMBER},
                      {"card": {"success": False}, "do": "tap", "handler": "onMemberCardClaim", "as": "after"}],
              {"GET /membership/me": [{"status": 200, "body": NOT_MEMBER}]})
    assert not [r for r in log["requests"] if r["route"] == "POST /membership/card"]
    assert log["snapshots"]["after"]["member"] is False and log["snapshots"]["after"]["busy"] is False
    assert "未完成开卡" in log["toasts"]


def test_a_card_template_not_made_yet_is_said_in_words(built: Path) -> None:
    log = run(built, [{"do": "open", "route": MEMBER},
                      {"card": {"success": True, "auth_code": "A", "request_id": "R"}, "do": "tap",
                       "handler": "onMemberCardClaim"}],
              {"GET /membership/me": [{"status": 200, "body": NOT_MEMBER}],
               "POST /membership/card": [error(409, "card_not_ready")]})
    assert "会员卡还在准备中，请稍后再试" in log["toasts"]


@pytest.mark.parametrize(("status", "code", "words"), [
    (409, "code_used", "这个码已经用过了"),
    (410, "code_expired", "码已过期，请让店员刷新"),
    (429, "daily_limit", "今天已经集过点了"),
    (400, "invalid_code", "不是本店的集点码"),
])
def test_a_refused_stamp_is_said_in_words(built: Path, status: int, code: str, words: str) -> None:
    log = run(built, [{"do": "open", "route": MEMBER, "block": "b1", "as": "before"},
                      {"scan": "mpforge-stamp:v1.x.y", "do": "tap", "handler": "onStampScan", "block": "b1",
                       "as": "after"}],
              {"GET /membership/me": [{"status": 200, "body": MEMBER_NOW}],
               "POST /membership/stamps": [error(status, code)]})
    assert log["toasts"] == [words]
    assert log["snapshots"]["after"]["stamps"] == 3 and log["snapshots"]["after"]["busy"] is False


def test_a_stamp_fills_the_grid_and_a_full_card_says_the_coupon_was_issued(built: Path) -> None:
    stamped = {"stamps": 4, "stampsPerCard": 8, "cardsFilled": 0, "filled": False, "reward": None, "points": 625}
    full = {"stamps": 0, "stampsPerCard": 8, "cardsFilled": 1, "filled": True, "reward": {"result": "CLAIMED"},
            "points": 630}
    log = run(built, [
        {"do": "open", "route": MEMBER, "block": "b1", "as": "before"},
        {"scan": "mpforge-stamp:v1.a.b", "do": "tap", "handler": "onStampScan", "block": "b1", "as": "one"},
        {"scan": "mpforge-stamp:v1.c.d", "do": "tap", "handler": "onStampScan", "block": "b1", "as": "full"},
        {"scan": "", "do": "tap", "handler": "onStampScan", "block": "b1", "as": "cancelled"},
    ], {"GET /membership/me": [{"status": 200, "body": MEMBER_NOW}],
        "POST /membership/stamps": [{"status": 200, "body": stamped}, {"status": 200, "body": full}],
        "POST /membership/subscriptions": [{"status": 204, "body": ""}]})
    on = [[slot["on"] for slot in log["snapshots"][name]["slots"]] for name in ("before", "one", "full")]
    assert on == [[True] * 3 + [False] * 5, [True] * 4 + [False] * 4, [False] * 8]
    assert log["snapshots"]["full"]["cards_filled"] == 1
    codes = [r["body"]["code"] for r in log["requests"] if r["route"] == "POST /membership/stamps"]
    assert codes == ["mpforge-stamp:v1.a.b", "mpforge-stamp:v1.c.d"]  # a cancelled scan sends nothing
    assert log["toasts"] == ["集点成功"]
    assert log["alerts"] == [{"title": "集点卡已集满", "content": "奖励券已发放，请在「我的券」中查看"}]
    assert log["snapshots"]["cancelled"]["busy"] is False
    # a reward coupon issued: the claim moment's templates, 3 ids a call
    assert log["subscribe"] == [["TPL_HC_COUPON_EXPIRE", "TPL_EXTRA_0", "TPL_EXTRA_1"], ["TPL_EXTRA_2"]]


def test_a_redemption_keeps_its_key_until_answered(built: Path) -> None:
    log = run(built, [
        {"do": "open", "route": MEMBER, "block": "b2"},
        {"do": "tap", "handler": "onRewardRedeem", "dataset": {"coupon": "points-10"}},  # the answer is lost
        {"do": "tap", "handler": "onRewardRedeem", "dataset": {"coupon": "points-10"}},  # the retry: same key
        {"do": "tap", "handler": "onRewardRedeem", "dataset": {"coupon": "points-10"}, "block": "b2",
         "as": "after"},  # answered before: a new key
    ], {"GET /membership/me": [{"status": 200, "body": MEMBER_NOW}],
        "POST /membership/rewards/points-10": [{"status": 0, "body": ""}, {"status": 200, "body": {"points": 320}},
                                               error(409, "not_enough_points")],
        "POST /membership/subscriptions": [{"status": 204, "body": ""}]})
    keys = [r["key"] for r in log["requests"] if r["route"] == "POST /membership/rewards/points-10"]
    assert len(keys) == 3 and keys[0] == keys[1] != keys[2] and all(keys)
    assert log["toasts"] == ["网络异常，请再点一次兑换", "兑换成功，券已放入「我的券」", "积分不足"]
    after = log["snapshots"]["after"]
    assert after["busy"] == "" and after["points"] == 620 and after["member"] is True


def test_rejected_subscriptions_are_sent_as_rejected(built: Path) -> None:
    log = run(built, [{"do": "open", "route": HOME}, {"subscribe": "reject", "do": "moment", "moment": "card_opened"},
                      {"do": "moment", "moment": "order_paid"}],
              {"POST /membership/subscriptions": [{"status": 204, "body": ""}]})
    assert log["subscribe"] == [["TPL_HC_POINTS"]]  # order_paid: no template asks after it
    sent = [r["body"] for r in log["requests"] if r["route"] == "POST /membership/subscriptions"]
    assert sent == [{"accepted": [], "rejected": ["TPL_HC_POINTS"]}]


def test_a_claimed_coupon_asks_through_the_app_hook(built: Path) -> None:
    claimed = {"status": 200, "body": {"result": "CLAIMED"}}
    log = run(built, [{"do": "open", "route": "pages/coupons/coupons"},
                      {"do": "tap", "handler": "onClaimCoupon", "dataset": {"coupon": "welcome-5"}}],
              {"POST /coupons/welcome-5/claims": [claimed], "GET /content": [{"status": 304, "body": ""}],
               "GET /me/claims": [{"status": 200, "body": {"claims": []}}],
               "POST /membership/subscriptions": [{"status": 204, "body": ""}]})
    assert "领取成功" in log["toasts"]
    assert log["subscribe"] == [["TPL_HC_COUPON_EXPIRE", "TPL_EXTRA_0", "TPL_EXTRA_1"], ["TPL_EXTRA_2"]]


def test_following_the_life_account_asks_for_the_follow_points(built: Path) -> None:
    log = run(built, [{"do": "open", "route": "pages/life/life"},
                      {"do": "tap", "handler": "onFollowLifeAccount"}],
              {"POST /membership/follow-points": [{"status": 200, "body": {**NOT_MEMBER, "points": 20,
                                                                            "followed": True}}],
               "POST /coupons/follow-gift/claims": [{"status": 200, "body": {"result": "CLAIMED"}}],
               "GET /content": [{"status": 304, "body": ""}], "GET /me/claims": [{"status": 200, "body": {"claims": []}}],
               "POST /membership/subscriptions": [{"status": 204, "body": ""}]})
    assert "POST /membership/follow-points" in [r["route"] for r in log["requests"]]
    assert "关注成功，关注积分已到账" in log["toasts"]
    # Alipay does not know of the follow yet (403 not_following): nothing is said.
    quiet = run(built, [{"do": "open", "route": "pages/life/life"}, {"do": "tap", "handler": "onFollowLifeAccount"}],
                {"POST /membership/follow-points": [error(403, "not_following")],
                 "POST /coupons/follow-gift/claims": [{"status": 200, "body": {"result": "CLAIMED"}}],
                 "GET /content": [{"status": 304, "body": ""}],
                 "GET /me/claims": [{"status": 200, "body": {"claims": []}}]})
    assert not any("关注积分" in toast for toast in quiet["toasts"])


def test_the_favourites_tip_shows_once_per_device(built: Path) -> None:
    first = run(built, [{"do": "open", "route": HOME, "as": "shown"},
                        {"do": "tap", "handler": "onFavoriteGuideClose", "as": "closed"},
                        {"do": "show", "as": "again"}], {})
    assert [first["snapshots"][n]["shown"] for n in ("shown", "closed", "again")] == [True, False, False]
    later = run(built, [{"do": "open", "route": HOME, "as": "shown"}], {}, storage=first["storage"])
    assert first["storage"]["mpforge.membership.2021004123456789.favoriteGuideClosed"] == "true"
    assert later["snapshots"]["shown"]["shown"] is False


# --- the preview, in Chromium ------------------------------------------------------------

def test_the_sample_shows_its_member_card_and_stamp_card_in_the_preview(tmp_path: Path, page: Any,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """harbour-coffee in `mpforge dev`: the home page's favourites tip, then the member
    page with the card (not yet a member: 领取会员卡) and the 8-stamp card."""
    monkeypatch.delenv("MPFORGE_PUBLIC_URL", raising=False)
    spec = copy_sample("harbour-coffee", tmp_path / "project")
    dev = DevProcess(spec, tmp_path / "out")
    try:
        wait_until(lambda: any("back end" in line for line in dev.lines), 40, "the back end's start (or its note)")
        page.set_viewport_size({"width": 1200, "height": 1000})
        page.goto(dev.url + "#" + HOME)
        page.locator(f"body[data-page='{HOME}']").wait_for()
        wait_until(lambda: "收藏" in shown_text(page), 20, "the favourites tip")
        page.screenshot(path=str(tmp_path / "home.png"))
        page.locator("[data-mp-on-tap='onFavoriteGuideClose']").click()
        wait_until(lambda: "收藏" not in shown_text(page), 10, "the tip closed")
        page.goto(dev.url + "#" + MEMBER)
        page.locator(f"body[data-page='{MEMBER}']").wait_for()
        wait_until(lambda: "港湾咖啡会员卡" in shown_text(page), 20, "the member card")
        text = shown_text(page)
        assert "领取会员卡" in text and "银卡" in text and "咖啡集点卡" in text and "0/8" in text
        assert "集满 8 点得「集点卡奖励 · 免费咖啡」" in text and "积分兑换 · 黄油可颂" in text
        assert page.locator(".mf-stamp").count() == 8
        page.screenshot(path=str(tmp_path / "member.png"), full_page=True)
        # 扫码集点: the preview's my.scan offers the till's current code (none here: dev has
        # no staff token to read the till) in a prompt; what is typed is what the camera read.
        prompts: list[str] = []
        page.on("dialog", lambda dialog: (prompts.append(dialog.message), dialog.accept("mpforge-stamp:v1.typed.x")))
        page.locator("[data-mp-on-tap='onStampScan']").click()
        wait_until(lambda: "my.scan → mpforge-stamp:v1.typed.x" in page.locator("#mpf-log").inner_text(), 20,
                   "the scan")
        assert prompts and "scan the till's current code" in prompts[0]
        assert "the till's code could not be read" in page.locator("#mpf-log").inner_text()
    finally:
        assert dev.stop() == 0, "".join(dev.lines)



# --- dev's sandbox routes for the runtime's card form and till scan ------------------------

def test_dev_routes_for_the_card_form_and_the_till_check_what_they_pass_on(tmp_path: Path,
                                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """POST /__mpforge/sandbox/card-apply and /till-code: a malformed form or store is 400,
    the till without the staff token dev needs is 503 saying which variable; a well-formed
    card form is passed to the sandbox, whose answer comes back (an unknown template: 404)."""
    monkeypatch.delenv("MPFORGE_STAFF_TOKEN_2021004123456789", raising=False)
    server = DevServer(copy_sample("harbour-coffee", tmp_path / "project").parent, port=0, log=lambda text: None)
    server.start()
    try:
        wait_until(lambda: server.current_backend() is not None or "note" in str(server.status()["backend"]), 40,
                   "the back end")
        if server.current_backend() is None:
            pytest.fail(f"the dev back end did not start: {server.status()['backend']}")

        def post(route: str, body: dict[str, str]) -> tuple[int, str]:
            conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
            conn.request("POST", f"/__mpforge/sandbox/{route}", body=json.dumps(body).encode(),
                         headers={"Host": f"127.0.0.1:{server.port}", "X-Mpforge-Runtime": "1",
                                  "Content-Type": "application/json"})
            response = conn.getresponse()
            answer = (response.status, response.read().decode())
            conn.close()
            return answer

        assert post("card-apply", {"form": "alice"})[0] == 400
        assert post("card-apply", {"form": "alice|TPL|13x"})[0] == 400
        assert post("card-apply", {"form": "alice|no-such-template|13800000000"})[0] == 404
        assert post("till-code", {"store": "../x"})[0] == 400
        status, text = post("till-code", {"store": "xintiandi"})
        assert status == 503 and "MPFORGE_STAFF_TOKEN_2021004123456789" in text
    finally:
        server.stop()
