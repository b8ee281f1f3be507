"""The life account plugin: validation, blocks, feed, and the follow reward at run time."""

from __future__ import annotations

import copy
import json
import subprocess

import pytest

from builder.api import build
from builder.errors import UserError
from builder.pipeline import prepare
from builder.testing import page_spec

LIFE = {
    "public_id": "2019041263887654",
    "name": "港湾咖啡",
    "avatar": "banner.png",
    "memo": "关注领券",
    "articles": [
        {"title": "Old", "cover": "banner.png", "date": "2026-01-02", "url": "https://example.com/old"},
        {"title": "New {{x}}", "cover": "banner.png", "summary": "<b>hi</b>", "date": "2026-03-04",
         "url": "https://example.com/new?a=1"},
    ],
}
COUPON = {"backend": {"base_url": "https://api.example.com"}, "coupons": [
    {"id": "follow-gift", "kind": "cash", "title": "关注有礼", "value": 3, "validity": {"days_after_claim": 30},
     "stock": 100, "audience": "followers", "activity_id": "ACT-FOLLOW"}]}


def life_spec(blocks=None, with_coupons=True, **life_changes):
    life = {**copy.deepcopy(LIFE), **life_changes}
    sections = {"life_account": life, **({"coupon": copy.deepcopy(COUPON)} if with_coupons else {})}
    spec = page_spec(blocks if blocks is not None else [{"type": "life-account-follow"}], assets="assets", **sections)
    spec["app"]["appid"] = "2021004123456789"
    return spec


def errors(project, spec, *disable):
    from builder.options import PluginOptions

    with pytest.raises(UserError) as info:
        prepare(project(spec), PluginOptions(disabled=disable))
    return [str(p) for p in info.value.problems]


def test_follow_block_uses_alipays_lifestyle_component(project):
    prepared = prepare(project(life_spec()))
    axml = prepared.tree.text("pages/home/home.axml")
    assert '<lifestyle public-id="{{b0.public_id}}" memo="{{b0.memo}}" onFollow="onFollowLifeAccount" />' in axml
    assert prepared.plan.pages[0].data["b0"] == {"public_id": "2019041263887654", "memo": "关注领券",
                                                 "name": "港湾咖啡", "reward": None}


def test_feed_is_newest_first_and_opens_articles_in_the_web_view(project):
    prepared = prepare(project(life_spec([{"type": "life-account-feed", "limit": 1}])))
    articles = prepared.plan.pages[0].data["b0"]["articles"]
    assert articles == [{"title": "New {{x}}", "cover": "/assets/banner.png", "summary": "<b>hi</b>",
                         "date": "2026-03-04",
                         "link": {"kind": "page", "url": "/pages/webview/webview?url=https%3A%2F%2Fexample.com%2Fnew%3Fa%3D1"}}]
    assert "pages/webview/webview" in json.loads(prepared.tree.text("app.json"))["pages"]
    assert "{{x}}" not in prepared.tree.text("pages/home/home.axml")


def test_profile_page_is_optional_and_linkable(project):
    spec = life_spec([{"type": "button", "text": "Follow us", "link": "life"}], page={"id": "life", "title": "生活号"})
    prepared = prepare(project(spec))
    assert "pages/life/life" in json.loads(prepared.tree.text("app.json"))["pages"]
    assert "<lifestyle" in prepared.tree.text("pages/life/life.axml")
    assert "mf-life-feed" in prepared.tree.text("pages/life/life.axml")
    assert any("no page with id 'life'" in e for e in errors(project, life_spec(
        [{"type": "button", "text": "Follow us", "link": "life"}])))


@pytest.mark.parametrize("change, expected", [
    ({"public_id": "gh_12345"}, "life_account.public_id: 'gh_12345' is not in the expected format "
                                "(expected the life account's APPID: 16 digits starting with 20)"),
    ({"articles": [{**LIFE["articles"][0], "url": "http://example.com/a"}]},
     "life_account.articles[0].url: 'http://example.com/a' is not in the expected format"),
    ({"follow_reward": "follow-gfit"},
     "life_account.follow_reward: no coupon with id 'follow-gfit' in coupon.coupons (did you mean 'follow-gift'?)"),
    ({"avatar": "../me.png"}, "life_account.avatar: must be a relative path inside the project"),
])
def test_located_errors(project, change, expected):
    found = errors(project, life_spec(**change))
    assert len(found) == 1 and expected in found[0], found
    assert found[0].startswith("mpforge.yaml:")


def test_follow_reward_needs_the_coupon_plugin(project):
    found = errors(project, life_spec(with_coupons=False, follow_reward="follow-gift"), "coupon")
    assert len(found) == 1
    assert ("life_account.follow_reward: coupon id 'follow-gift' needs the 'coupon' plugin, which is not enabled"
            in found[0])


def test_a_follow_reward_is_issued_by_the_back_end_for_followers(project):
    spec = life_spec(follow_reward="follow-gift")
    spec["coupon"]["coupons"][0].update(claim_route="plugin", audience="everyone")
    [error] = errors(project, spec)
    assert "life_account.follow_reward: follow reward 'follow-gift' is claimed through Alipay's coupon plugin" in error
    spec["coupon"]["coupons"][0].update(claim_route="send")
    assert [(w.path, w.message) for w in prepare(project(spec)).warnings] == [
        ("life_account.follow_reward", "follow reward 'follow-gift' is for audience 'everyone'")]


def test_blocks_need_the_section(project):
    spec = page_spec([{"type": "life-account-card"}])
    assert any("pages[0].blocks[0].type: block 'life-account-card' needs a 'life_account' section" in e
               for e in errors(project, spec))


FOLLOW_HARNESS = r"""
const path = require('path');
const calls = [];
global.getApp = () => ({ globalData: {} });
global.my = {
  getStorageSync: () => ({ data: undefined }), setStorageSync: () => {},
  showLoading: () => {}, hideLoading: () => {},
  showToast: (t) => calls.push(['toast', t.content]),
  getAuthCode: (o) => o.success({ authCode: 'A' }),
  // The back end: a session, then the claim (which it issues only to a verified follower).
  request: (o) => {
    calls.push(['request', o.method, new URL(o.url).pathname]);
    if (o.url.endsWith('/session')) o.success({ status: 200, data: { token: 't', expiresIn: 7200 } });
    else if (o.method === 'POST') o.success({ status: 201, data: { result: 'CLAIMED' } });
    else o.fail({ error: 12 });
  },
};
let options;
global.Page = (o) => { options = o; };
require(path.resolve(process.argv[1]));
options.setData = () => {};
options.onFollowLifeAccount.call(options);
process.stdout.write(JSON.stringify(calls));
"""


@pytest.mark.parametrize("reward, expected", [
    ("follow-gift", [["request", "POST", "/api/v1/2021004123456789/session"],
                     ["request", "POST", "/api/v1/2021004123456789/coupons/follow-gift/claims"],
                     ["toast", "领取成功"]]),
    (None, [["toast", "感谢关注"]]),
])
def test_following_claims_the_reward(project, tmp_path, reward, expected):
    out = tmp_path / "out"
    build(project(life_spec(follow_reward=reward)), out)
    result = subprocess.run(["node", "-e", FOLLOW_HARNESS, str(out / "pages/home/home.js")],
                            capture_output=True, text=True, check=True)
    assert json.loads(result.stdout) == expected


def test_an_article_feed_without_articles_warns_and_renders_nothing(project):
    prepared = prepare(project(life_spec([{"type": "life-account-feed", "title": "动态"}], articles=[])))
    assert [(w.path, w.message.split(":")[0]) for w in prepared.warnings] == [
        ("pages[0].blocks[0]", "an article feed, but life_account has no articles")]
    assert '<view a:if="{{b0.articles.length > 0}}" class="mf-life-feed">' in prepared.tree.text("pages/home/home.axml")
