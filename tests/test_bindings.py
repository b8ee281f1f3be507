"""One binding grammar (builder/expr.py) for the output check and the preview: what the
check accepts the preview evaluates, what it refuses the preview refuses too, and a
project template may use every expression the grammar has."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from builder import check
from builder.errors import UserError
from builder.filetree import FileTree
from builder.preview.axml import parse_axml
from builder.preview.expr import ExprError, evaluate
from builder.preview.renderer import PageRenderer
from builder.testing import build_spec, page_spec

DATA = {"b0": {"title": "Hello", "items": [{"name": "A", "price": 3}], "empty": [], "n": 7, "flag": True},
        "item": {"state": "available"}, "index": 0}

ACCEPTED = [
    "b0.title",
    "b0.title.length > 3",
    "b0.items.length === 0",
    "b0.items[0].name",
    "b0['title']",
    "item.state !== 'available'",
    "b0.n < 10 && b0.n >= 7",
    "b0.n <= 1 || b0.n > 1",
    "b0.n == 7 && b0.n != '8'",
    "!b0.flag",
    "!!b0.empty",
    "b0.flag ? 'yes' : 'no'",
    "b0.n > 5 ? b0.n > 6 ? 'big' : 'mid' : 'small'",
    "(b0.n + 1) * 2 - 3 / 4 % 5",
    "-b0.n + +'1'",
    "'a' + b0.title + 'b'",
    "'it\\'s \\u4e2d <b> {x}'",
    "3.5e2",
    ".5",
    "true",
    "false",
    "null",
    "undefined",
    "[1, 'two', b0.n]",
    "[]",
    "index + 1",
    " b0.title ",
    "b0\n.title",
    "b0.class",  # a keyword as a member name is fine, as in JavaScript
]

REFUSED = [
    " 你好 ",  # merchant text that leaked into AXML
    "Hello world",
    "<script>",
    " say <b>hi</b> ",
    "",
    "   ",
    'b0["title"]',
    "b0.title.toUpperCase()",
    "alert(1)",
    "{a: 1}",
    "x = 1",
    "a; b",
    "`t`",
    "typeof b0",
    "new Date",
    "this.data",
    "a ?? b",
    "a?.b",
    "...a",
    "a, b",
    "1 +",
    "b0.",
    "b0[1",
    "(1",
    "'unterminated",
    "'\\x41'",
    "a === = b",
]


def tree_with(axml: str) -> FileTree:
    tree = FileTree()
    tree.add("pages/home/home.axml", axml)
    return tree


def check_problems(axml: str) -> list[str]:
    tree = tree_with(axml)
    return [str(p) for p in check.axml_well_formed(tree) + check.bindings_clean(tree)]


def preview_warnings(axml: str) -> list[str]:
    document = parse_axml(axml)
    renderer = PageRenderer("pages/home/home", DATA, lambda path: None)
    renderer.render(document.children)
    return document.warnings + renderer.warnings


def markup(source: str) -> str:
    return f'<view a:if="{{{{{source}}}}}" class="x-{{{{{source}}}}}"><text>{{{{{source}}}}}</text></view>\n'


@pytest.mark.parametrize("source", ACCEPTED)
def test_what_the_check_accepts_the_preview_evaluates(source):
    assert check_problems(markup(source)) == []
    evaluate(source, DATA)
    assert preview_warnings(markup(source)) == []


@pytest.mark.parametrize("source", REFUSED)
def test_what_the_check_refuses_the_preview_refuses(source):
    axml = f"<view><text>{{{{{source}}}}}</text></view>\n"
    found = check.bindings_clean(tree_with(axml))
    assert len(found) == 1
    assert (found[0].file, found[0].line, found[0].column) == ("pages/home/home.axml", 1, 13)
    assert "is not a valid binding expression" in found[0].message
    with pytest.raises(ExprError):
        evaluate(source, DATA)
    assert any("cannot evaluate" in w for w in preview_warnings(axml))


@pytest.mark.parametrize("source, reason", [
    (" 你好 ", "unexpected character '你' at 1:16"),
    ('b0["title"]', "double quotes are not allowed (write strings in single quotes) at 1:18"),
    ("b0.title.toUpperCase()", "function calls are not allowed at 1:35"),
    (" {a: 1} ", "object literals and braces are not allowed at 1:16"),
    ("typeof b0", "'typeof' is a JavaScript keyword, not page data at 1:15"),
    ("", "empty expression"),
])
def test_a_refused_binding_says_what_is_not_allowed_and_where(source, reason):
    (problem,) = check.bindings_clean(tree_with(f"<view><text>{{{{{source}}}}}</text></view>\n"))
    assert problem.message == f"{{{{{source}}}}} is not a valid binding expression: {reason}"
    assert problem.hint == "bind merchant text through page data"


EXPRESSION_CHARACTERS = "ab0 1.'[]()!=<>&|?:+-*/%,\"\\n_$你"


@settings(max_examples=1500, deadline=None)
@given(st.text(alphabet=EXPRESSION_CHARACTERS, max_size=14))
def test_check_and_evaluator_agree_on_any_expression(source):
    accepted = not check.bindings_clean(tree_with(f"<text>{{{{{source}}}}}</text>"))
    try:
        evaluate(source, DATA)
        evaluates = True
    except ExprError:
        evaluates = False
    assert accepted == evaluates


# --- in a build ------------------------------------------------------------------------------------


def test_a_relational_binding_in_a_template_override_builds(tmp_path):
    heading = ('<view class="mf-heading">\n'
               '  <text a:if="{{[[ key ]].text.length > 3}}">{{[[ key ]].text}}</text>\n'
               '  <text a:elif="{{[[ key ]].text.length <= 3 && [[ key ]].text !== \'\'}}">short</text>\n'
               '  <text>{{[[ key ]].text.length < 10 ? \'<10\' : \'>=10\'}}</text>\n'
               '</view>\n')
    tree = build_spec(page_spec([{"type": "heading", "text": "Hello world"}]), tmp_path,
                      files={"templates/blocks/heading.axml": heading})
    axml = tree.text("pages/home/home.axml")
    assert '<text a:if="{{b0.text.length > 3}}">{{b0.text}}</text>' in axml
    assert preview_warnings(axml) == []


def test_merchant_text_leaked_into_an_override_fails_with_a_location(tmp_path):
    heading = '<view class="mf-heading">\n  <text>{{ 你好 }}</text>\n</view>\n'
    with pytest.raises(UserError) as info:
        build_spec(page_spec([{"type": "heading", "text": "Hi"}]), tmp_path,
                   files={"templates/blocks/heading.axml": heading})
    messages = [str(p) for p in info.value.problems]
    assert any(m.startswith("pages/home/home.axml:") and "{{ 你好 }} is not a valid binding expression: "
               "unexpected character '你'" in m for m in messages), messages
