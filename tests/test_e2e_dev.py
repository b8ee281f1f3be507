"""`mpforge dev` in real headless Chromium: content, live edits, the error overlay, taps.

One dev server on a copy of harbour-coffee serves the tests of this module in order;
each sample's home page is also screenshotted (the folder is printed) for a person to
look at.
"""

from __future__ import annotations

import json
import urllib.request
from pathlib import Path

import pytest
from helpers import DevProcess, copy_sample, poll, save_spec, shown_text, wait_for_build

HOME_HEADING = "        text: 本季推荐\n"


@pytest.fixture(scope="module")
def coffee(tmp_path_factory):
    root = tmp_path_factory.mktemp("coffee")
    spec = copy_sample("harbour-coffee", root / "project")
    dev = DevProcess(spec, root / "out")
    yield dev, spec
    assert dev.stop() == 0, "".join(dev.lines)


@pytest.fixture(scope="module")
def screenshots(tmp_path_factory):
    folder = tmp_path_factory.mktemp("screenshots")
    yield folder
    print(f"\nscreenshots of the previews: {folder}")


def status(dev: DevProcess) -> dict:
    with urllib.request.urlopen(dev.url + "__mpforge/app", timeout=10) as response:
        return json.load(response)


def open_preview(page, dev: DevProcess, fragment: str = "") -> None:
    page.goto(dev.url + fragment)
    wait_for_build(page, status(dev)["goodVersion"])


def test_home_page_shows_the_generated_page_in_a_phone_frame(coffee, strict_page, screenshots):
    """Under the preview's own Content-Security-Policy (no Playwright eval here)."""
    dev, _ = coffee
    page = strict_page
    page.goto(dev.url)
    page.locator(f"body[data-version='{status(dev)['goodVersion']}']").wait_for()
    assert page.locator("#mpf-title").inner_text() == "港湾咖啡"
    nav_bg = page.locator("#mpf-navbar").evaluate("el => getComputedStyle(el).backgroundColor")
    assert nav_bg == "rgb(111, 78, 55)"  # titleBarColor #6f4e37
    frame = page.locator("#mpf-phone").bounding_box()
    assert (frame["width"], frame["height"]) == (375, 812)
    text = shown_text(page)
    for expected in ("本季推荐", "Barista's picks", "新天地店 4 月 12 日装修暂停营业一天", "樱花拿铁", "¥32.00",
                     "查看完整菜单", "生活号动态", "+ 关注", "新人立减 5 元"):
        assert expected in text
    assert page.locator("#mpf-tabbar button").all_inner_texts() == ["首页", "菜单", "门店", "我们"]
    assert page.locator("#mpf-pages button").count() == 11  # the 10 of the spec and its plugins, and the privacy policy
    # rpx became px: the banner is 360rpx = 180px high; a 750rpx-wide thing would be 375px.
    assert page.locator("#mpf-page-host .mf-banner").bounding_box()["height"] == 180
    # Images come from the build and load.
    poll(page, """(() => {
        const imgs = [...document.querySelector('#mpf-page-host').shadowRoot.querySelectorAll('img.mf-grid-icon')];
        return imgs.length === 4 && imgs.every(i => i.complete && i.naturalWidth > 0);
    })()""")
    assert page.errors == []
    page.screenshot(path=str(screenshots / "harbour-coffee-home.png"))


def test_linli_fresh_home(tmp_path, page, screenshots):
    spec = copy_sample("linli-fresh", tmp_path / "project")
    dev = DevProcess(spec, tmp_path / "out")
    try:
        open_preview(page, dev)
        assert page.locator("#mpf-title").inner_text() == "邻里鲜"
        text = shown_text(page)
        for expected in ("满 59 元免费配送", "领券再下单", "新人无门槛 5 元", "今日特价", "上海青 500g", "电话下单"):
            assert expected in text
        assert page.locator("#mpf-tabbar button").all_inner_texts() == ["首页", "商品", "门店"]
        page.wait_for_timeout(300)
        page.screenshot(path=str(screenshots / "linli-fresh-home.png"))
        assert page.errors == []
    finally:
        assert dev.stop() == 0


def test_saving_the_spec_updates_the_page_in_place(coffee, page):
    dev, spec = coffee
    open_preview(page, dev)
    page.evaluate("window.__notReloaded = true")
    page.locator("#mpf-screen").evaluate("el => { el.scrollTop = 300; }")
    version = status(dev)["goodVersion"]
    text = spec.read_text("utf-8")
    assert HOME_HEADING in text
    save_spec(spec, text.replace(HOME_HEADING, "        text: 冬季推荐 E2E\n"))
    page.locator("#mpf-page-host .mf-heading-text", has_text="冬季推荐 E2E").wait_for()
    wait_for_build(page, version + 1)
    assert page.evaluate("window.__notReloaded") is True  # updated in place, not reloaded
    assert page.locator("#mpf-screen").evaluate("el => el.scrollTop") == 300  # scroll kept
    assert "本季推荐" not in shown_text(page)
    # The Alipay output was written too.
    out = Path(dev.proc.args[dev.proc.args.index("-o") + 1])
    assert "冬季推荐 E2E" in (out / "pages" / "home" / "home.js").read_text("utf-8")


def test_a_yaml_error_shows_the_overlay_with_its_line_and_a_fix_removes_it(coffee, page):
    dev, spec = coffee
    open_preview(page, dev)
    good = spec.read_text("utf-8")
    lines = good.splitlines(keepends=True)
    index = next(i for i, line in enumerate(lines) if line.startswith("        text: 冬季推荐 E2E"))
    lines[index] = "        text: 冬季推荐: broken\n"
    save_spec(spec, "".join(lines))
    overlay = page.locator("#mpf-overlay")
    overlay.wait_for(state="visible")
    problem = page.locator("#mpf-problems li").first.inner_text()
    assert f"mpforge.yaml:{index + 1}:" in problem and "YAML syntax error" in problem
    assert page.locator("body").get_attribute("data-state") == "error"
    assert "冬季推荐 E2E" in shown_text(page)  # the last good build stays under the overlay

    # A validation error is located too, with the spec path and a hint.
    save_spec(spec, good.replace("      - type: product-list\n        layout: grid",
                                 "      - type: product-lst\n        layout: grid", 1))
    page.locator("#mpf-problems li", has_text="product-lst").wait_for()
    problem = page.locator("#mpf-problems li").first.inner_text()
    assert "pages[0].blocks[10].type" in problem and "did you mean 'product-list'?" in problem

    save_spec(spec, good.replace("冬季推荐 E2E", "修好了"))
    overlay.wait_for(state="hidden")
    page.locator("#mpf-page-host .mf-heading-text", has_text="修好了").wait_for()
    assert page.locator("body").get_attribute("data-state") == "ok"
    assert dev.alive()


def test_tabs_links_and_back_switch_pages(coffee, page):
    dev, _ = coffee
    open_preview(page, dev)
    page.locator("#mpf-tabbar button", has_text="菜单").click()
    page.wait_for_function("document.body.dataset.page === 'pages/menu/menu'")
    assert page.locator("#mpf-title").inner_text() == "菜单"
    assert "美式" in shown_text(page) and "拿铁 8.5 折" in shown_text(page)
    assert page.locator("#mpf-tabbar button[aria-selected=true]").inner_text() == "菜单"

    page.locator("#mpf-tabbar button", has_text="门店").click()
    page.wait_for_function("document.body.dataset.page === 'pages/stores/stores'")
    assert "静安寺店" in shown_text(page)

    page.locator("#mpf-tabbar button", has_text="首页").click()
    page.wait_for_function("document.body.dataset.page === 'pages/home/home'")
    # A page link (not a tab) pushes the page: back button, no tab bar.
    page.locator("#mpf-page-host .mf-grid-item", has_text="咖啡豆").click()
    page.wait_for_function("document.body.dataset.page === 'pages/product/product'")
    # The page's script names the product it was opened for (?item=beans) in the title.
    page.wait_for_function("document.querySelector('#mpf-title').textContent === '港湾拼配咖啡豆 250g'")
    assert page.locator("#mpf-tabbar").is_hidden() and page.locator("#mpf-back").is_visible()
    page.locator("#mpf-back").click()
    page.wait_for_function("document.body.dataset.page === 'pages/home/home'")
    # A tab link inside the page switches tabs; the page list works too.
    page.locator("#mpf-page-host button", has_text="查看完整菜单").click()
    page.wait_for_function("document.body.dataset.page === 'pages/menu/menu'")
    page.locator("#mpf-pages button", has_text="港湾生活号").click()
    page.wait_for_function("document.body.dataset.page === 'pages/life/life'")
    assert "冬季限定：姜饼拿铁回归" in shown_text(page)
    # The page's scripts run: the life account's follow button follows in the sandbox of
    # the back end dev runs (tests/test_e2e_dev_backend.py follows the whole flow).
    page.locator("#mpf-page-host .mp-lifestyle-follow").click()
    page.locator("#mpf-page-host .mp-lifestyle-follow", has_text="已关注 (sandbox)").wait_for()
    assert page.errors == []


def test_an_edit_keeps_the_current_page(coffee, page):
    dev, spec = coffee
    open_preview(page, dev, "#pages/about/about")
    page.wait_for_function("document.body.dataset.page === 'pages/about/about'")
    text = spec.read_text("utf-8")
    save_spec(spec, text.replace("从港口到杯中", "从港口到杯中 (edited)"), atomic=False)
    page.locator("#mpf-page-host .mf-heading-text", has_text="从港口到杯中 (edited)").wait_for()
    assert page.evaluate("document.body.dataset.page") == "pages/about/about"


def test_static_preview_opens_from_a_file(tmp_path, page, screenshots):
    from click.testing import CliRunner
    from helpers import REPO

    from builder.cli import main

    out = tmp_path / "static"
    result = CliRunner().invoke(main, ["preview", str(REPO / "sample_projects" / "harbour-coffee"), "-o", str(out)])
    assert result.exit_code == 0, result.output
    page.goto((out / "index.html").as_uri())
    page.wait_for_function("document.body.dataset.version === '0'")
    assert "本季推荐" in shown_text(page)
    page.locator("#mpf-tabbar button", has_text="我们").click()
    page.wait_for_function("document.body.dataset.page === 'pages/about/about'")
    assert "从港口到杯中" in shown_text(page)
    page.wait_for_function("""() => [...document.querySelector('#mpf-page-host').shadowRoot.querySelectorAll('img')]
        .every(i => i.complete && i.naturalWidth > 0)""")
    page.screenshot(path=str(screenshots / "harbour-coffee-static-about.png"))
    # No page script runs in the static preview: taps other than links say so.
    page.locator("#mpf-pages button", has_text="港湾生活号").click()
    page.wait_for_function("document.body.dataset.page === 'pages/life/life'")
    page.locator("#mpf-page-host .mp-lifestyle").click()
    assert "runs in the mini-program" in page.locator("#mpf-toast").inner_text()
    assert page.locator("#mpf-runtime").count() == 0
    assert page.errors == []
