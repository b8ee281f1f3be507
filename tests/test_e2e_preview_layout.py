"""What the preview shows, measured in Chromium: a product grid with a title, tag badges,
a running campaign with its countdown, and a page that loads without console errors.

The screenshot is kept in the printed folder for a person to look at.
"""

from __future__ import annotations

import pytest
from click.testing import CliRunner
from helpers import write_project

from builder.cli import main

# 2026-12-01 00:00 UTC: inside the campaign below.
BUILD_DAY = "1796083200"
SPEC = {
    "spec_version": 1,
    "app": {"name": "Grid Shop"},
    "merchant": {"name": "Grid Shop"},
    "assets": "assets",
    "pages": [{"id": "home", "title": "Home", "blocks": [
        {"type": "campaign-banner", "campaign": "winter"},
        {"type": "countdown", "campaign": "winter"},
        {"type": "product-list", "title": "本季推荐", "layout": "grid", "items": [
            {"name": "樱花拿铁", "price": 32, "image": "banner.png", "tag": "招牌"},
            {"name": "冷萃", "price": 28, "image": "banner.png", "tag": "新品"},
            {"name": "可颂", "price": 18, "image": "banner.png"},
            {"name": "司康", "price": 16, "image": "banner.png"},
        ]},
    ]}],
    "promotion": {"campaigns": [{"id": "winter", "name": "冬日暖饮季", "start": "2026-11-15T00:00:00+08:00",
                                 "end": "2026-12-31T23:59:59+08:00", "banner": "banner.png", "landing": "home"}]},
}


@pytest.fixture
def preview(tmp_path, monkeypatch):
    monkeypatch.setenv("SOURCE_DATE_EPOCH", BUILD_DAY)
    spec = write_project(tmp_path / "shop", SPEC)
    out = tmp_path / "preview"
    result = CliRunner().invoke(main, ["preview", str(spec), "-o", str(out)])
    assert result.exit_code == 0, result.output
    return out / "index.html"


def _boxes(page, selector: str) -> list[dict]:
    return page.evaluate(f"""[...document.querySelector('#mpf-page-host').shadowRoot
        .querySelectorAll({selector!r})].map(e => {{ const r = e.getBoundingClientRect();
        return {{x: r.x, y: r.y, w: r.width, h: r.height, lines: e.getClientRects().length,
                 text: e.textContent}}; }})""")


def test_grid_title_campaign_and_badges_in_the_preview(preview, page, tmp_path_factory):
    console_errors: list[str] = []
    page.on("console", lambda message: console_errors.append(message.text) if message.type == "error" else None)
    page.goto(preview.as_uri())
    page.wait_for_function("document.body.dataset.version === '0'")
    page.wait_for_function("""() => [...document.querySelector('#mpf-page-host').shadowRoot.querySelectorAll('img')]
        .every(i => i.complete && i.naturalWidth > 0)""")
    folder = tmp_path_factory.mktemp("screenshots")
    page.locator("#mpf-phone").screenshot(path=str(folder / "grid-and-campaign.png"))
    print(f"\nscreenshot: {folder / 'grid-and-campaign.png'}")

    title = _boxes(page, ".mf-products-title")[0]
    cards = _boxes(page, ".mf-product")
    assert len(cards) == 4
    # The title sits above the grid across its width; the cards form two columns of two.
    assert title["y"] + title["h"] <= cards[0]["y"]
    assert title["w"] > cards[0]["w"] * 1.9
    assert cards[0]["y"] == cards[1]["y"] and cards[0]["x"] < cards[1]["x"]
    assert cards[2]["y"] > cards[0]["y"] and cards[2]["x"] == cards[0]["x"]
    # Badges stay on one line ("招牌" never breaks between its characters).
    tags = _boxes(page, ".mf-product-tag")
    assert [t["text"] for t in tags] == ["招牌", "新品"]
    assert all(t["lines"] == 1 and t["w"] > t["h"] for t in tags)
    # The campaign runs on the build day: its banner and countdown show.
    banner, countdown = _boxes(page, ".mf-campaign"), _boxes(page, ".mf-countdown")
    assert len(banner) == 1 and banner[0]["h"] > 50
    assert len(countdown) == 1 and countdown[0]["text"] == "冬日暖饮季距结束30天 15:59:59"
    assert page.errors == [] and console_errors == []


def test_the_static_preview_sends_no_frame_ancestors_in_a_meta_tag(preview):
    """Chromium ignores frame-ancestors in <meta> and logs an error for it on every load."""
    html = preview.read_text("utf-8")
    assert "Content-Security-Policy" in html and "frame-ancestors" not in html


def test_an_image_block_height_reaches_the_preview(tmp_path, page):
    spec = dict(SPEC, promotion=None, pages=[{"id": "home", "title": "Home", "blocks": [
        {"type": "image", "image": "banner.png", "mode": "aspectFill", "height": 200, "rounded": True}]}])
    spec = {k: v for k, v in spec.items() if v is not None}
    path = write_project(tmp_path / "shop", spec)
    out = tmp_path / "preview"
    assert CliRunner().invoke(main, ["preview", str(path), "-o", str(out)]).exit_code == 0
    page.goto((out / "index.html").as_uri())
    page.wait_for_function("document.body.dataset.version === '0'")
    image = _boxes(page, ".mf-image")[0]
    assert image["h"] == 100  # 200rpx on a 375px-wide phone
    radius = page.evaluate("""getComputedStyle(document.querySelector('#mpf-page-host').shadowRoot
        .querySelector('.mf-image')).borderTopLeftRadius""")
    assert radius == "8px"


def test_height_with_width_fix_is_a_located_error(mpforge_problems):
    from builder.testing import page_spec

    problems = mpforge_problems(page_spec([{"type": "image", "image": "https://example.com/a.png", "height": 200}]))
    assert [(p.path, p.message.split(";")[0]) for p in problems] == [
        ("pages[0].blocks[0]", "'height' needs mode 'aspectFill' (crop to fill) or 'aspectFit' (fit inside)")]
