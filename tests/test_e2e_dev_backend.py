"""`mpforge dev` with the page runtime and the back end, in real headless Chromium.

The pages' generated scripts run in the browser on static/runtime.js's emulation of `my`;
dev runs the spec's back end with a sandbox gateway for Alipay (on 127.0.0.N:80, so these
tests run as root, as CI does). One dev server on a copy of harbour-coffee serves the
tests in order; in that copy the latte coupon is for everyone, once per user and without
end date, so the back end issues it (the sample's audiences are ones the back end cannot
check yet). Screenshots go to a folder printed at the end.

The coupon tests follow the generated coupon service, which reads the user's claims from
the back end's GET me/claims, with activityId and outBizNo for a reservation (the plugin
route): they pass once mpforge serve answers that.
"""

from __future__ import annotations

import json
import re
import urllib.request

import pytest
from helpers import DevProcess, copy_sample, poll, shown_text, wait_until

APPID = "2021004123456789"
LATTE = """    - id: latte-85
      kind: discount
      title: 拿铁 8.5 折
      rate: 0.85
      validity: {start: 2026-11-01, end: 2027-01-31}
      stock: 2000
      per_user_limit: 3
      audience: members
"""
LATTE_FOR_EVERYONE = """    - id: latte-85
      kind: discount
      title: 拿铁 8.5 折
      rate: 0.85
      validity: {days_after_claim: 30}
      stock: 2000
      per_user_limit: 1
"""


@pytest.fixture(scope="module")
def coffee(tmp_path_factory):
    root = tmp_path_factory.mktemp("coffee-backend")
    spec = copy_sample("harbour-coffee", root / "project")
    text = spec.read_text("utf-8")
    assert LATTE in text
    spec.write_text(text.replace(LATTE, LATTE_FOR_EVERYONE), "utf-8")
    dev = DevProcess(spec, root / "out")
    wait_until(lambda: any("back end" in line for line in dev.lines), 30, "the back end's start")
    yield dev
    assert dev.stop() == 0, "".join(dev.lines)


@pytest.fixture(scope="module")
def screenshots(tmp_path_factory):
    folder = tmp_path_factory.mktemp("runtime-screenshots")
    yield folder
    print(f"\nscreenshots of the runtime: {folder}")


def status(dev: DevProcess) -> dict:
    with urllib.request.urlopen(dev.url + "__mpforge/app", timeout=10) as response:
        return json.load(response)


def open_page(tab, dev: DevProcess, path: str) -> None:
    tab.goto(dev.url + "#" + path)
    version = status(dev)["goodVersion"]
    poll(tab, f"Number(document.body.dataset.version || -1) >= {version}")  # CDP: allowed under the CSP
    tab.locator(f"body[data-page='{path}']").wait_for()


def runtime_log(tab) -> str:
    return tab.locator("#mpf-log").inner_text()


def test_dev_runs_the_back_end_with_the_sandbox(coffee):
    backend = status(coffee)["runtime"]["backend"]
    assert backend == {"base": "https://api.harbourcoffee.example.com", "running": True, "note": ""}
    assert any(re.search(r"back end started for https://api\.harbourcoffee\.example\.com: http://127\.0\.0\.1:\d+",
                         line) for line in coffee.lines)


def test_set_data_merges_paths(coffee, page):
    open_page(page, coffee, "pages/home/home")
    merged = page.evaluate("""() => {
        const set = window.MpforgeRuntime.setPath;
        const data = {a: {b: [{c: 1}, {c: 2}, {c: 3}], keep: true}, list: [1, 2]};
        set(data, 'a.b[2].c', 'x');
        set(data, 'a.new.deep', 5);
        set(data, 'fresh[1].name', 'n');
        set(data, 'list', [9]);
        set(data, 'a.b[0]', {d: 4});
        return data;
    }""")
    assert merged == {"a": {"b": [{"d": 4}, {"c": 2}, {"c": "x"}], "keep": True, "new": {"deep": 5}},
                      "list": [9], "fresh": [None, {"name": "n"}]}


def test_claiming_a_coupon_goes_through_the_back_end_and_the_sandbox(coffee, strict_page, screenshots):
    """Under the preview's own Content-Security-Policy: the scripts load without eval. The
    generated coupon service shows 已领取 from the back end's GET me/claims."""
    tab = strict_page
    violations = []
    tab.on("console", lambda m: violations.append(m.text) if "Content Security Policy" in m.text else None)
    open_page(tab, coffee, "pages/menu/menu")
    tab.locator("#mpf-backend[data-kind='ok']").wait_for()
    latte = tab.locator("#mpf-page-host .mf-coupon", has_text="拿铁 8.5 折")
    button = latte.locator(".mf-coupon-claim")
    assert button.inner_text() == "立即领取"
    button.click()
    latte.locator(".mf-coupon-claim", has_text="已领取").wait_for(timeout=20_000)
    assert latte.locator(".mf-coupon-claim").is_disabled()
    log = runtime_log(tab)
    assert "my.getAuthCode → sandbox-user-preview" in log
    assert re.search(rf"my\.request POST /api/v1/{APPID}/session → 200", log), log
    assert re.search(rf"my\.request POST /api/v1/{APPID}/coupons/latte-85/claims → 201", log), log
    tab.screenshot(path=str(screenshots / "claimed.png"))
    assert violations == [] and tab.errors == []


def test_a_plugin_route_coupon_finishes_in_the_coupon_plugin(coffee, page, screenshots):
    """claim_route plugin: the back end reserves the claim, the button becomes Alipay's
    coupon plugin (<get-coupon>), whose tap the runtime answers with onGetCouponSuccess."""
    page.add_init_script("localStorage.setItem('mpforge-preview:sandbox-user', 'bob')")  # a user of its own
    open_page(page, coffee, "pages/menu/menu")
    croissant = page.locator("#mpf-page-host .mf-coupon", has_text="买咖啡送可颂")
    croissant.locator(".mf-coupon-claim", has_text="立即领取").click()
    plugin = croissant.locator(".mp-get-coupon[data-mp-component='get-coupon']")
    plugin.locator(".mf-coupon-claim", has_text="放入卡包").wait_for(timeout=20_000)
    assert re.search(rf"my\.request POST /api/v1/{APPID}/coupons/croissant-free/claims → 201", runtime_log(page))
    params = json.loads(plugin.get_attribute("data-mp-params"))
    assert params[0]["activityId"] == "2026110400826004508401234569" and params[0]["outBizNo"]
    plugin.locator(".mf-coupon-claim").click()
    croissant.locator(".mf-coupon-claim", has_text="已领取").wait_for()
    assert "get-coupon: Alipay's claim dialog is not emulated; reporting success" in runtime_log(page)
    page.screenshot(path=str(screenshots / "plugin-claimed.png"))
    assert page.errors == []


def test_handlers_navigate_set_data_and_go_back(coffee, page):
    open_page(page, coffee, "pages/life/life")
    page.locator("#mpf-page-host .mf-life-article", has_text="冬季限定").click()
    page.wait_for_function("document.body.dataset.page === 'pages/webview/webview'")
    # The web-view's address is what the page's onLoad put in its data with setData.
    page.locator("#mpf-page-host .mp-web-view-src",
                 has_text="https://www.example.com/harbour/articles/gingerbread-latte").wait_for()
    assert "my.navigateTo /pages/webview/webview?url=" in runtime_log(page)
    page.locator("#mpf-back").click()
    page.wait_for_function("document.body.dataset.page === 'pages/life/life'")
    assert "冬季限定：姜饼拿铁回归" in shown_text(page)
    # Share shows what the page's onShareAppMessage returns.
    page.locator("#mpf-share").click()
    shared = page.locator("#mpf-share-out").inner_text()
    assert '"path": "pages/life/life?ch=share"' in shared and '"title": "港湾生活号"' in shared
    # A page link and a phone link: the page's onTapLink calls my.navigateTo and
    # my.makePhoneCall.
    page.locator("#mpf-pages button[data-path='pages/home/home']").click()
    page.wait_for_function("document.body.dataset.page === 'pages/home/home'")
    assert page.locator("#mpf-back").is_hidden()
    page.locator("#mpf-page-host .mf-grid-item", has_text="咖啡豆").click()
    page.wait_for_function("document.body.dataset.page === 'pages/product/product'")
    page.locator("#mpf-page-host button", has_text="致电门店预订").click()
    assert "my.makePhoneCall: 021-6335 1201" in page.locator("#mpf-toast").inner_text()
    assert page.errors == []


def test_tab_pages_stay_loaded_and_pages_over_them_unload(coffee, page):
    open_page(page, coffee, "pages/home/home")
    for tab in ("菜单", "首页", "菜单"):
        page.locator("#mpf-tabbar button", has_text=tab).click()
        page.wait_for_function(f"document.querySelector('#mpf-title').textContent === '{tab if tab != '首页' else '港湾咖啡'}'")
    page.locator("#mpf-pages button[data-path='pages/home/home']").click()  # the page list relaunches
    page.wait_for_function("document.body.dataset.page === 'pages/home/home'")
    page.locator("#mpf-tabbar button", has_text="菜单").click()
    page.wait_for_function("document.body.dataset.page === 'pages/menu/menu'")
    # The log lists the hooks a page defines (the menu page: onLoad and onShow).
    menu = [line.split(" ")[1] for line in runtime_log(page).splitlines() if line.startswith("pages/menu/menu on")]
    assert menu == ["onLoad", "onShow", "onShow", "onLoad", "onShow"], menu
    assert page.errors == []


def test_what_is_not_emulated_says_so_and_fails_the_call(coffee, page):
    messages = []
    page.on("console", lambda m: messages.append(m.text) if m.type == "warning" else None)
    open_page(page, coffee, "pages/my-coupons/my-coupons")
    page.locator("#mpf-page-host button", has_text="在支付宝卡包查看").click()
    # The page's own fail callback runs: its toast shows.
    page.locator("#mpf-ptoast:not([hidden])", has_text="卡包").wait_for()
    warning = "my.openMerchantVoucherList is not emulated by the preview (see docs/preview-runtime.md)"
    assert warning in runtime_log(page)
    assert any(warning in m for m in messages)
    page.locator("#mpf-pull").click()
    assert "pages/my-coupons/my-coupons has no onPullDownRefresh" in runtime_log(page)
    assert page.errors == []


def test_following_the_life_account_records_it_in_the_sandbox(coffee, page, screenshots):
    open_page(page, coffee, "pages/life/life")
    page.locator("#mpf-user").select_option("alice")
    follow = page.locator("#mpf-page-host .mp-lifestyle-follow")
    assert follow.inner_text() == "+ 关注 (sandbox)"
    follow.click()
    page.locator("#mpf-page-host .mp-lifestyle-follow", has_text="已关注 (sandbox)").wait_for()
    poll(page, "document.querySelector('#mpf-log').innerText.includes('sandbox-user-alice follows the life account')")
    # onFollow ran: the page claims its follow reward (a coupon for followers) as alice, and
    # the back end issues it once Alipay (the sandbox) confirms that she follows.
    poll(page, "document.querySelector('#mpf-log').innerText.includes('my.getAuthCode → sandbox-user-alice')")
    poll(page, f"/POST \\/api\\/v1\\/{APPID}\\/coupons\\/follow-gift\\/claims → 201/"
               ".test(document.querySelector('#mpf-log').innerText)")
    page.screenshot(path=str(screenshots / "followed.png"))
    assert page.errors == []


def test_a_user_who_refuses_authorization_gets_the_pages_refusal(coffee, page):
    # The user refuses from the start (a new browser context: no session token either).
    page.add_init_script("localStorage.setItem('mpforge-preview:sandbox-user', '')")
    open_page(page, coffee, "pages/menu/menu")
    assert page.locator("#mpf-user").input_value() == ""
    refused = "document.querySelector('#mpf-log').innerText.split('the sandbox user refuses').length - 1"
    page.wait_for_timeout(500)
    assert page.evaluate(refused) == 0  # showing the page asks for no auth code: only a tap does
    page.locator("#mpf-page-host .mf-coupon", has_text="买咖啡送可颂").locator(".mf-coupon-claim").click()
    poll(page, f"{refused} == 1")
    toast = page.locator("#mpf-ptoast:not([hidden])")
    toast.wait_for()  # the page's own word for it
    assert "需要授权后才能领券" in toast.inner_text()
    assert page.errors == []


def test_without_the_back_end_requests_fail_visibly(tmp_path, page):
    spec = copy_sample("harbour-coffee", tmp_path / "project")
    dev = DevProcess(spec, tmp_path / "out", "--no-backend")
    try:
        open_page(page, dev, "pages/menu/menu")
        note = page.locator("#mpf-backend")
        assert note.get_attribute("data-kind") == "offline"
        assert "no back end: turned off (--no-backend)" in note.inner_text()
        page.locator("#mpf-page-host .mf-coupon-claim").first.click()
        poll(page, "document.querySelector('#mpf-log').innerText.includes('mpforge dev runs no back end')")
        page.locator("#mpf-ptoast:not([hidden])").wait_for()
        assert not any("back end started" in line for line in dev.lines)
        assert page.errors == []
    finally:
        assert dev.stop() == 0
