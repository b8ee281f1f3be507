"""builder/axml.py, the one AXML tokenizer the output check and the preview share."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from builder import axml
from builder.preview.axml import Element, parse_axml


def kinds(text: str) -> list[tuple[str, str]]:
    return [(kind, name) for kind, name, _, _, _ in axml.tokens(text)]


def test_tags_comments_and_offsets():
    text = '<view class="a">\n<!-- <text> -->\n<image src="x"/></view>'
    found = list(axml.tokens(text))
    assert [(k, n) for k, n, _, _, _ in found] == [
        (axml.OPEN, "view"), (axml.COMMENT, ""), (axml.EMPTY, "image"), (axml.CLOSE, "view")]
    assert [text[start:end] for _, _, _, start, end in found] == [
        '<view class="a">', "<!-- <text> -->", '<image src="x"/>', "</view>"]
    assert found[0][2] == ' class="a"' and found[2][2] == ' src="x"'


@pytest.mark.parametrize("text", [
    '<view a:if="{{a < b}}"></view>',
    '<view a:if="{{a > b}}"></view>',
    "<view a:if='{{a<b && c>d}}'></view>",
    '<view class="{{x.length >= 3 ? \'big\' : \'small\'}}"></view>',
    "<view><text>{{a<b}}</text></view>",  # '<b' inside a text binding is no tag
    "<view><text>{{a < b}} and {{c>d}}</text></view>",
    "<view><text>{{'</view>'}}</text></view>",
    "<view>1 < 2</view>",
])
def test_angle_brackets_in_bindings_and_text_are_not_tags(text):
    assert kinds(text)[0] == (axml.OPEN, "view") and kinds(text)[-1] == (axml.CLOSE, "view")
    assert len(kinds(text)) == 2 + 2 * text.count("<text>")


def test_self_closing_and_slashes_in_attributes():
    assert kinds('<image src="a/b.png"/><image src=a/b.png /><view data-x="/>">') == [
        (axml.EMPTY, "image"), (axml.EMPTY, "image"), (axml.OPEN, "view")]


def test_cut_tags_and_unclosed_comments():
    assert kinds("<view>text <text class='x") == [(axml.OPEN, "view"), (axml.CUT, "text")]
    assert kinds("<view></view><!-- <view> never closed") == [
        (axml.OPEN, "view"), (axml.CLOSE, "view"), (axml.CUT, "!--")]
    assert "never closed" in axml.cut_message("!--") and "<text has no closing '>'" in axml.cut_message("text")


def test_attributes():
    raw = ''' class="a b" a:if='{{x > 1}}' hidden data-n=3 empty="" = "junk" a:else'''
    assert list(axml.attributes(raw)) == [("class", "a b"), ("a:if", "{{x > 1}}"), ("hidden", None),
                                          ("data-n", "3"), ("empty", ""), ("a:else", None)]


def test_bindings_and_stray_braces_outside_comments():
    text = "<text>{{a}} {{ b < c }}</text><!-- {{ not a binding }} --> }} {{open"
    assert list(axml.bindings(text)) == [(6, "a"), (12, " b < c "), (text.index("> }}") + 2, None),
                                         (text.index("{{open"), None)]


def test_a_huge_broken_tag_is_scanned_in_linear_time():
    # An unclosed quote: the tag start never ends; each repetition of the attribute
    # pattern begins with a quote or a slash, so this does not backtrack exponentially.
    text = '<view a="1" b="2' + ' c="3" d/' * 20_000
    assert kinds(text)[0] == (axml.CUT, "view")


ALPHABET = "<>/=\"' {}!-av:"


@settings(max_examples=400, deadline=None)
@given(st.text(alphabet=ALPHABET, max_size=40))
def test_tokens_are_in_order_and_the_preview_never_raises(text):
    last = 0
    for kind, _, _, start, end in axml.tokens(text):
        assert last <= start < end <= len(text)
        last = end if kind != axml.CUT else start + 1
    parse_axml(text)


def test_the_preview_tree_follows_the_tokens():
    doc = parse_axml('<view a:if="{{n > 1}}">\n  <text>{{a<b}}</text>\n  <bad class="x\n</view>')
    (view,) = [n for n in doc.children if isinstance(n, Element)]
    assert view.attrs == {"a:if": "{{n > 1}}"}
    (text,) = [n for n in view.children if isinstance(n, Element)]
    assert text.children[0].text == "{{a<b}}"
    assert any(w.startswith("line 3:") and "<bad has no closing '>'" in w for w in doc.warnings)
    assert '<bad class="x' in "".join(getattr(n, "text", "") for n in view.children)
