"""The pre-review lint (builder/review.py): each rule fires with its rule name on what
Alipay's review rejects, and stays quiet on the samples' clean parts."""

from __future__ import annotations

import copy
import json

import pytest
from helpers import MINIMAL_SPEC, SAMPLES

from builder import review
from builder.api import check_project
from builder.errors import UserError
from builder.filetree import FileTree
from builder.pipeline import prepare
from builder.testing import page_spec


def by_rule(problems, rule: str):
    return [p for p in problems if p.rule == rule]


def problems_of(spec_path) -> list:
    """A clean build's warnings, or the errors that stopped it."""
    try:
        return prepare(spec_path).warnings
    except UserError as exc:
        return exc.problems


def test_the_first_tab_must_open_the_home_page(mpforge_problems):
    spec = copy.deepcopy(MINIMAL_SPEC)
    spec["tabbar"]["items"].reverse()
    [problem] = by_rule(mpforge_problems(spec), "review/first-tab")
    assert problem.severity == "error" and problem.path == "tabbar.items[0].page"
    assert problem.message == "the first tab opens 'about', but the home page is 'home'"
    assert not by_rule(mpforge_problems(MINIMAL_SPEC), "review/first-tab")


def test_blank_pages_and_pull_refresh_without_bounce_are_warnings(mpforge_problems):
    spec = page_spec([{"type": "heading", "text": "Hi"}])
    spec["pages"].append({"id": "empty", "title": "Empty", "window": {"pull_refresh": True, "bounce": False}})
    problems = mpforge_problems(spec)
    [blank] = by_rule(problems, "review/blank-page")
    assert (blank.path, blank.severity) == ("pages[1].id", "warning")
    [refresh] = by_rule(problems, "review/pull-refresh")
    assert (refresh.path, refresh.severity) == ("pages[1].window.pull_refresh", "warning")


def test_one_lifestyle_per_page(mpforge_problems):
    life = {"public_id": "2019041263887654", "name": "n", "avatar": "https://example.com/a.png"}
    blocks = [{"type": "life-account-follow"}, {"type": "life-account-card"}]
    [problem] = by_rule(mpforge_problems(page_spec(blocks, life_account=life)), "review/one-lifestyle")
    assert problem.file == "pages/home/home.axml" and problem.severity == "error"
    assert not by_rule(mpforge_problems(page_spec(blocks[:1], life_account=life)), "review/one-lifestyle")


def _tree(files: dict[str, bytes], exclude: list[str] | None = None) -> FileTree:
    tree = FileTree()
    tree.add_json("mini.project.json", {"format": 2, "uploadExclude": exclude or []})
    for path, data in files.items():
        tree.add(path, data)
    return tree


def test_the_package_budget_counts_what_is_uploaded():
    big = b"x" * (1536 * 1024)
    tree = _tree({"assets/a.png": big, "assets/b.png": big, "promotion/qr/x.svg": big, "docs/guide.md": big},
                 exclude=["promotion/**"])
    assert set(review.packaged_files(tree)) == {"mini.project.json", "assets/a.png", "assets/b.png"}
    [problem] = review.package_budget(tree)
    assert problem.rule == "review/package-size" and "over Alipay's limit of 2 MB" in problem.message
    assert problem.hint.startswith("compress or remove the largest files: assets/a.png (1536 KiB)")
    assert review.package_budget(_tree({"assets/a.png": big, "promotion/qr/x.svg": big},
                                       exclude=["promotion/**"])) == []


def test_web_view_domains_are_listed_and_capped():
    link = "/pages/webview/webview?url=https%3A%2F%2F{}%2Fp"
    page = {"b0": {"link": {"kind": "page", "url": link.format("shop.example.com")}}}
    tree = _tree({"pages/home/home.js": f"Page({{ data: {json.dumps(page)} }});".encode(),
                  "services/coupon.js": b"const url = 'https://api.example.com/claim';"})
    assert review.domains(tree) == {"web-view": ["shop.example.com"], "request": ["api.example.com"]}
    [warning] = review.web_view_permission(tree)
    assert warning.severity == "warning" and "enterprise mini-programs" in warning.hint
    many = {f"pages/p{i}/p{i}.js": f"x = '{link.format(f'site{i}.example.com')}';".encode() for i in range(21)}
    problems = review.web_view_permission(_tree(many))
    assert [p.severity for p in problems] == ["warning", "error"]
    assert "at most 20" in problems[1].message


@pytest.mark.parametrize("sample", ["harbour-coffee", "linli-fresh", "lao-jie-noodles"])
def test_the_check_report_lists_the_domains_to_whitelist(sample):
    report = check_project(SAMPLES / sample)
    assert report.ok
    data = report.to_dict()
    assert set(data["domains"]) == {"web-view", "request"}
    assert all(isinstance(hosts, list) for hosts in data["domains"].values())
    if sample == "harbour-coffee":  # its coupons claim through its back end; its articles open in web-view
        assert data["domains"]["request"] and data["domains"]["web-view"]


PNG_81 = (b"\x89PNG\r\n\x1a\n" + b"\x00\x00\x00\rIHDR" + (81).to_bytes(4, "big") + (81).to_bytes(4, "big")
          + b"\x08\x06\x00\x00\x00" + b"\x00" * 16)


@pytest.mark.parametrize("icon, content, severity, message", [
    ("tab/home.png", b"\xff\xd8\xff\xe0" + b"\x00" * 40, "error", "tab icon tab/home.png holds JPEG data but is named .png"),
    ("tab/home.png", b"not an image at all, just text" * 2, "error", "tab icon tab/home.png is not a PNG, JPEG or GIF image"),
    ("tab/home.gif", b"GIF89a" + b"\x00" * 40, "warning", "tab icon tab/home.gif is a GIF: GIF animation does not play"),
    ("tab/home.jpg", b"\xff\xd8\xff\xe0" + b"\x00" * 40, "warning", "tab icon tab/home.jpg is a JPEG: JPEG has no transparency"),
    ("tab/home.png", PNG_81[:16] + (81).to_bytes(4, "big") + (40).to_bytes(4, "big") + PNG_81[24:], "warning",
     "tab icon tab/home.png is 81×40: Alipay stretches it to a square"),
])
def test_tab_icons_hold_the_image_their_name_says(project, icon, content, severity, message):
    spec = copy.deepcopy(MINIMAL_SPEC)
    spec["tabbar"]["items"][0]["icon"] = icon
    [problem] = by_rule(problems_of(project(spec, files={f"assets/{icon}": content})), "review/tab-icon")
    assert (problem.path, problem.severity) == ("tabbar.items[0].icon", severity)
    assert problem.message.startswith(message)


def test_a_square_png_tab_icon_and_a_web_address(project, mpforge_problems):
    spec = copy.deepcopy(MINIMAL_SPEC)
    assert not by_rule(problems_of(project(spec, files={"assets/tab/home.png": PNG_81})), "review/tab-icon")
    spec["tabbar"]["items"][0]["icon"] = "https://example.com/home.png"
    [problem] = by_rule(mpforge_problems(spec), "review/tab-icon")
    assert problem.severity == "error" and "not a web address" in problem.message


def test_a_privacy_policy_comes_with_features_that_collect_a_user_id(project):
    prepared = prepare(SAMPLES / "harbour-coffee")
    pages = json.loads(prepared.tree.text("app.json"))["pages"]
    assert pages[-1] == "pages/privacy/privacy"
    policy = prepared.plan.pages[-1].data["b0"]
    # One entry per kind of data, with every purpose it serves.
    # With a back end, what it keeps too: the claims and the visits (the core's events).
    assert [(item["what"], item["why"]) for item in policy["items"]] == [
        ("支付宝用户标识（user_id 或 open_id）", "开通会员卡，记录会员等级和积分；记录集点卡的集点和兑换；用积分兑换优惠券；"
                                         "确认关注生活号并发放关注礼；领取优惠券，核对每位顾客的限领数量和领取记录"),
        ("会员卡号，以及开卡表单要求手机号时该号码的 SHA-256 哈希值（不保存号码本身和表单中的其他信息）",
         "开通支付宝会员卡；商家在支付宝棋盘密云中按会员人群推送优惠和消息；您删除数据时一并删除"),
        ("积分记录（每笔订单、集点、兑换的积分变动）", "计算会员积分与等级；您删除数据时一并删除"),
        ("订阅消息的授权和已发送的消息", "只在您同意后发送订单和优惠提醒，并限制每天的条数；您删除数据时一并删除"),
        ("集点记录（门店和时间）", "每日集点次数限制与集满发券；您删除数据时一并删除"),
        ("积分兑换记录", "扣减积分并防止重复兑换；您删除数据时一并删除"),
        ("领券记录（哪张券、何时、从哪个渠道领取）", "核对每位顾客的限领数量和券的库存；您删除数据后只保留不含您身份的记录，删除后仍按限领数量计"),
        ("访问记录（打开小程序和领券的时间、来源渠道与入口、门店与桌号）",
         "统计各渠道带来的到访和领券；登录后与您的支付宝用户标识关联，您删除数据时一并删除")]
    assert policy["backend"] is True
    assert policy["merchant"] == "港湾咖啡 Harbour Coffee" and policy["phone"] == "400-820-1234"
    # The pages that collect link it; the others do not.
    assert "隐私政策" in prepared.tree.text("pages/coupons/coupons.axml")
    assert "隐私政策" not in prepared.tree.text("pages/stores/stores.axml")
    # Without collecting features there is no policy page, and a merchant's own wins.
    plain = prepare(project())
    assert "pages/privacy/privacy" not in json.loads(plain.tree.text("app.json"))["pages"]


def test_a_merchants_own_privacy_page_is_kept(mpforge_build):
    spec = page_spec([{"type": "my-coupons"}], coupon={
        "backend": {"base_url": "https://api.example.com"},
        "coupons": [{"id": "c", "kind": "cash", "title": "t", "value": 5, "stock": 9, "activity_id": "A",
                     "validity": {"days_after_claim": 3}}]})
    spec["pages"].append({"id": "privacy", "title": "我们的隐私政策", "blocks": [{"type": "text", "text": "..."}]})
    tree = mpforge_build(spec)
    assert "mf-privacy" not in tree.text("pages/privacy/privacy.axml")
    assert 'data-link="{{mfPrivacy}}"' in tree.text("pages/home/home.axml")


def test_asking_for_the_user_id_without_a_policy_is_a_review_error():
    tree = _tree({"pages/home/home.js": b"my.getAuthCode({ scopes: 'auth_base' });"})
    tree.add_json("app.json", {"pages": ["pages/home/home"]})
    [problem] = review.privacy_policy_present(tree)
    assert (problem.rule, problem.severity, problem.file) == ("review/privacy", "error", "pages/home/home.js")
    with_policy = _tree({"pages/home/home.js": b"my.getAuthCode({});"})
    with_policy.add_json("app.json", {"pages": ["pages/home/home", "pages/privacy/privacy"]})
    assert review.privacy_policy_present(with_policy) == []
