"""The preview's AXML parser and AXML -> HTML renderer, and ACSS -> CSS."""

from __future__ import annotations

import html
import json
import re
from html.parser import HTMLParser

import pytest

from builder.preview.acss import acss_to_css
from builder.preview.axml import Element, Text, parse_axml
from builder.preview.renderer import PageRenderer

ASSETS = {"assets/a.png", "assets/tab/home.png"}


def render(axml: str, data: dict | None = None, components: dict | None = None) -> tuple[str, list[str]]:
    renderer = PageRenderer("pages/home/home", data or {}, lambda p: f"app/{p}" if p in ASSETS else None,
                            components)
    document = parse_axml(axml)
    out = renderer.render(document.children)
    return out, document.warnings + renderer.warnings


class _Walker(HTMLParser):
    """The text and elements of rendered HTML, to assert on structure, not bytes."""

    def __init__(self):
        super().__init__()
        self.text: list[str] = []
        self.tags: list[tuple[str, dict]] = []
        self.scripts = 0

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))
        if tag == "script":
            self.scripts += 1

    def handle_data(self, data):
        self.text.append(data)


def walk(out: str) -> _Walker:
    walker = _Walker()
    walker.feed(out)
    walker.close()
    return walker


def texts(out: str) -> list[str]:
    return [t for t in walk(out).text if t.strip()]


# --- parser -------------------------------------------------------------------------------


def test_parser_builds_a_tree_with_lines_and_raw_attributes():
    doc = parse_axml('<view class="a">\n  <text a:if="{{x < 3 && y > 1}}">{{\'<b>\' + t}}</text>\n'
                     '  <image src="{{img}}" />\n</view>')
    assert doc.warnings == []
    (view,) = [n for n in doc.children if isinstance(n, Element)]
    assert view.tag == "view" and view.attrs == {"class": "a"} and view.line == 1
    text, image = [n for n in view.children if isinstance(n, Element)]
    assert text.attrs["a:if"] == "{{x < 3 && y > 1}}" and text.line == 2
    assert [c.text for c in text.children if isinstance(c, Text)] == ["{{'<b>' + t}}"]
    assert image.tag == "image" and image.children == [] and image.line == 3


def test_parser_keeps_quotes_inside_bindings():
    doc = parse_axml("""<button disabled="{{item.state !== 'available'}}" title='{{a ? "x" : "y"}}'>ok</button>""")
    (button,) = doc.children
    assert button.attrs == {"disabled": "{{item.state !== 'available'}}", "title": '{{a ? "x" : "y"}}'}


def test_parser_repairs_broken_markup_and_says_where():
    doc = parse_axml("<view>\n<text>a</view>\n</span>\n<view>")
    assert [n.tag for n in doc.children if isinstance(n, Element)] == ["view", "view"]
    assert any("closed by </view>" in w for w in doc.warnings)
    assert any("stray closing tag </span>" in w and w.startswith("line 3") for w in doc.warnings)
    assert any("never closed" in w for w in doc.warnings)


def test_parser_handles_comments_bare_attributes_and_lone_angles():
    doc = parse_axml("<!-- <view> not real --><view hidden a:else>1 < 2</view>")
    (view,) = doc.children
    assert view.attrs == {"hidden": None, "a:else": None}
    assert view.children[0].text == "1 < 2"


def test_parser_flattens_absurd_nesting_instead_of_recursing():
    doc = parse_axml("<view>" * 1000 + "deep" + "</view>" * 1000)
    assert any("nested" in w for w in doc.warnings)
    out, warnings = render("<view>" * 1000 + "deep" + "</view>" * 1000)
    assert "deep" in out


# --- conditions ---------------------------------------------------------------------------


@pytest.mark.parametrize("n, shown", [(1, "one"), (2, "two"), (3, "many"), (0, "many")])
def test_if_elif_else_chain(n, shown):
    out, warnings = render('<view a:if="{{n === 1}}">one</view>\n  <view a:elif="{{n == 2}}">two</view>\n'
                           '<view a:else>many</view>', {"n": n})
    assert texts(out) == [shown]
    assert warnings == []


def test_separate_if_chains_and_text_between_them():
    out, _ = render('<text a:if="{{a}}">A</text><text a:else>notA</text>'
                    '<text a:if="{{b}}">B</text><text a:else>notB</text>', {"a": True, "b": False})
    assert texts(out) == ["A", "notB"]


def test_else_without_if_is_rendered_and_noted():
    out, warnings = render("<text a:else>orphan</text>")
    assert texts(out) == ["orphan"]
    assert any("without an a:if" in w for w in warnings)


def test_hidden_attribute():
    out, _ = render('<view hidden="{{true}}">x</view><view hidden="{{false}}">y</view>')
    tags = [a for t, a in walk(out).tags if t == "div"]
    assert "hidden" in tags[0] and "hidden" not in tags[1]


# --- loops --------------------------------------------------------------------------------


def test_for_loop_with_item_index_and_nested_loops():
    data = {"groups": [{"name": "G1", "items": ["a", "b"]}, {"name": "G2", "items": ["c"]}]}
    out, warnings = render(
        '<view a:for="{{groups}}" a:for-item="group" a:for-index="gi" a:key="name">'
        '<text>{{gi}}:{{group.name}}</text>'
        '<text a:for="{{group.items}}" a:key="*this">{{gi}}.{{index}}={{item}}</text>'
        '</view>', data)
    assert texts(out) == ["0:G1", "0.0=a", "0.1=b", "1:G2", "1.0=c"]
    assert warnings == []


def test_for_with_if_tests_each_item_and_else_follows_the_loop():
    data = {"items": [{"n": 1}, {"n": 2}, {"n": 3}]}
    out, _ = render('<text a:for="{{items}}" a:if="{{item.n % 2}}">{{item.n}}</text><text a:else>none</text>', data)
    assert texts(out) == ["1", "3"]
    out, _ = render('<text a:for="{{items}}" a:if="{{item.n > 5}}">{{item.n}}</text><text a:else>none</text>', data)
    assert texts(out) == ["none"]


def test_for_over_objects_numbers_and_non_lists():
    out, _ = render('<text a:for="{{obj}}">{{index}}={{item}};</text>', {"obj": {"x": 1, "y": 2}})
    assert "".join(texts(out)) == "x=1;y=2;"
    out, _ = render('<text a:for="{{3}}">{{item}}</text>')
    assert texts(out) == ["0", "1", "2"]
    out, warnings = render('<text a:for="{{missing}}">never</text><text a:for="{{null}}">never</text>')
    assert texts(out) == [] and warnings == []


def test_block_renders_only_its_children():
    out, _ = render('<block a:for="{{[1, 2]}}"><text>{{item}}</text></block>')
    assert out == '<span class="mp-text">1</span><span class="mp-text">2</span>'


def test_huge_loops_are_capped():
    out, warnings = render('<text a:for="{{items}}">x</text>', {"items": list(range(20000))})
    assert out.count("mp-text") == 5000
    assert any("first 5000" in w for w in warnings)


# --- data and escaping --------------------------------------------------------------------


def test_nested_data_and_mixed_attribute_text():
    data = {"b0": {"coupons": [{"state": "claimed", "title": "T", "meta": {"left": 3}}]}}
    out, _ = render('<view class="mf-coupon mf-coupon-{{item.state}}" a:for="{{b0.coupons}}">'
                    '<text>{{item.title}} ({{item.meta.left}} left)</text></view>', data)
    (div, span) = walk(out).tags
    assert div[1]["class"] == "mp-view mf-coupon mf-coupon-claimed"
    assert texts(out) == ["T (3 left)"]


HOSTILE = ['<script>alert(1)</script>', '"><img src=x onerror=alert(1)>', "{{ b0.secret }}", "</view>",
           "a & b &amp; c", "'single' \"double\"", "😀 中文 ﷺ", "javascript:alert(1)", "\u2028line"]


@pytest.mark.parametrize("text", HOSTILE)
def test_text_and_attributes_are_escaped(text):
    data = {"b0": {"text": text, "secret": "LEAK"}, "link": {"kind": "page", "url": text}}
    out, _ = render('<view class="{{b0.text}}" style="{{b0.text}}" id="{{b0.text}}" data-link="{{link}}" '
                    'onTap="onTapLink"><text>{{b0.text}}</text><image src="{{b0.text}}"/>'
                    '<button onTap="onClaim" data-coupon="{{b0.text}}">{{b0.text}}</button>'
                    '<lifestyle public-id="{{b0.text}}" memo="{{b0.text}}"/></view>', data)
    walker = walk(out)
    assert walker.scripts == 0
    assert [t.strip() for t in walker.text if t.strip()][:1] == [text.strip()]
    assert "LEAK" not in out  # merchant text is shown, never evaluated
    for tag, attrs in walker.tags:
        assert not any(name.startswith("on") for name in attrs), (tag, attrs)
        assert "src" not in attrs or attrs["src"].startswith("app/")
    div_attrs = walker.tags[0][1]
    assert div_attrs["id"] == text
    assert json.loads(div_attrs["data-mp-link"])["url"] == text
    assert "<" not in re.sub(r"<[^<>]*>", "", out)  # no raw markup survives in text


def test_literal_markup_in_templates_is_text_not_html():
    out, _ = render("<text>&lt;b&gt; x &amp; y</text><view>a > b</view>")
    assert texts(out) == ["<b> x & y", "a > b"]
    assert "<b>" not in out


def test_broken_expression_is_marked_not_raised():
    out, warnings = render("<text>ok {{a +}} {{b0.x()}}</text>", {"a": 1})
    assert out.count("mp-expr-error") == 2
    assert html.escape("{{a +}}") in out
    assert len(warnings) == 2 and all("home.axml:1" in w for w in warnings)


# --- components ---------------------------------------------------------------------------


def test_components_map_to_html_elements():
    data = {"slides": ["/assets/a.png", "/assets/tab/../a.png"], "link": {"kind": "tab", "url": "/pages/menu/menu"}}
    out, warnings = render(
        '<swiper indicator-dots="{{true}}" autoplay="{{true}}" interval="{{3000}}" style="height: 300rpx;">'
        '<swiper-item a:for="{{slides}}"><image src="{{item}}" mode="aspectFill"/></swiper-item></swiper>'
        '<scroll-view scroll-x="{{true}}"><text>s</text></scroll-view>'
        '<button type="primary" size="mini" disabled="{{1 > 0}}">Go</button>'
        '<navigator url="/pages/about/about" open-type="navigate">About</navigator>'
        '<icon type="success" size="20" color="#00ff00"/>'
        '<lifestyle public-id="2019" memo="Follow us" onFollow="onFollow"/>'
        '<web-view src="https://example.com/x"/>'
        '<image src="{{missing}}"/><image src="/assets/nope.png"/><image src="../../assets/a.png"/>'
        '<view data-link="{{link}}" onTap="onTapLink">tap</view>', data)
    tags = walk(out).tags
    classes = [a.get("class", "") for _, a in tags]
    swiper = tags[0][1]
    assert swiper["class"].startswith("mp-swiper") and swiper["style"] == "height: 150px"
    assert "data-mp-autoplay" in swiper and swiper["data-mp-interval"] == "3000"
    assert sum("mp-swiper-item" in c for c in classes) == 2
    assert sum("mp-swiper-dot" in c.split() for c in classes) == 2
    images = [a for t, a in tags if t == "img"]
    assert [i.get("src") for i in images] == ["app/assets/a.png", "app/assets/a.png", None, None, "app/assets/a.png"]
    assert "mp-image-aspectFill" in images[0]["class"]
    button = next(a for t, a in tags if t == "button")
    assert "mp-button-primary" in button["class"] and "mp-button-size-mini" in button["class"]
    assert "disabled" in button
    nav = next(a for t, a in tags if t == "a")
    assert json.loads(nav["data-mp-nav"]) == {"url": "/pages/about/about", "openType": "navigate"}
    assert any("mp-lifestyle-follow" in c for c in classes) and "+ 关注" in out
    lifestyle = next(a for _, a in tags if "mp-lifestyle" in a.get("class", "").split())
    assert "首次发布并关联生活号前" in lifestyle["title"]  # why the real component is empty at first
    assert "https://example.com/x" in texts(out)
    assert any(a.get("data-mp-link") for _, a in tags)
    assert any("nope.png" in w and "not in the output" in w for w in warnings)
    icon = next(a for t, a in tags if "mp-icon" in a.get("class", ""))
    assert "width: 20px" in icon["style"] and "#00ff00" in icon["style"]
    scroll = next(a for t, a in tags if "mp-scroll-view" in a.get("class", ""))
    assert "overflow-x: auto" in scroll["style"] and "overflow-y: hidden" in scroll["style"]


def test_unknown_tags_are_labelled_placeholders_with_their_children():
    out, warnings = render('<map longitude="1"><text>inside</text></map>'
                           '<my-widget/><coupon-picker/>', components={"coupon-picker": "plugin://cp/picker"})
    tags = walk(out).tags
    placeholders = [a for _, a in tags if "mp-unknown" in a.get("class", "")]
    assert [p["data-mp-tag"] for p in placeholders] == ["map", "my-widget", "coupon-picker"]
    assert "inside" in texts(out)
    assert "<map>" in texts(out) and "plugin component <coupon-picker> (plugin://cp/picker)" in texts(out)
    assert len([w for w in warnings if "placeholder" in w]) == 2


def test_hostile_image_sources_are_dropped():
    for src in ("javascript:alert(1)", "data:image/svg+xml,<svg onload=alert(1)>", "file:///etc/passwd",
                "//evil.example/x.png", "../../../../etc/passwd"):
        out, _ = render('<image src="{{s}}"/>', {"s": src})
        assert "src=" not in out, src
    out, _ = render('<image src="{{s}}"/>', {"s": "https://cdn.example.com/a.png"})
    assert 'src="https://cdn.example.com/a.png"' in out


# --- ACSS ---------------------------------------------------------------------------------


def test_acss_converts_rpx_and_component_selectors():
    css = acss_to_css("""/* comment with 10rpx and view */
page { background-color: #fff; font-size: 28rpx; }
view.mf-a > text, .mf-b image:first-child { margin: 16rpx -8rpx 0.5rpx 0; width: calc(100% - 32rpx); }
.viewer, .textual, #image { padding: 750rpx; }
.mf-page { min-height: 100vh; content: "750rpx view"; }
@media (min-width: 100px) { swiper-item { height: 300rpx; } }
@keyframes spin { from { transform: rotate(0deg); } to { transform: rotate(360deg); } }
@import "other.acss";
""")
    assert ".mp-root { background-color: #fff; font-size: 14px; }" in css
    assert ".mp-view.mf-a > .mp-text, .mf-b .mp-image:first-child" in css
    assert "margin: 8px -4px 0.25px 0; width: calc(100% - 16px);" in css
    assert ".viewer, .textual, #image { padding: 375px; }" in css
    assert "min-height: calc(100 * var(--mp-vh, 1vh))" in css
    assert 'content: "750rpx view"' in css
    assert "@media (min-width: 100px) {.mp-swiper-item { height: 150px; }" in css
    assert "from { transform: rotate(0deg); }" in css
    assert "comment" not in css and "@import" not in css


def test_acss_survives_garbage():
    for source in ("}}}{{{", "view {", "@media {", "'unclosed", "a { b: c; } } view { x: 2rpx }"):
        assert isinstance(acss_to_css(source), str)


from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402


@settings(max_examples=300, deadline=None)
@given(st.text())
def test_any_text_round_trips_literally(text):
    out, warnings = render('<view class="{{t}}" data-x="{{t}}"><text>{{t}}</text><button>{{t}}</button></view>',
                           {"t": text})
    walker = walk(out)
    assert [t for t, _ in walker.tags] == ["div", "span", "button"]
    assert "".join(walker.text) == text + text
    assert walker.tags[0][1]["class"] == " ".join(["mp-view", *text.split()])
    assert warnings == []
