"""The preview's `{{ }}` evaluator: JavaScript's value rules, without any Python eval,
over exactly the binding grammar of builder/expr.py."""

from __future__ import annotations

import math

import pytest

from builder.expr import parse, tokenize
from builder.preview.expr import (
    UNDEFINED,
    ExprError,
    Scope,
    display,
    evaluate,
    interpolate,
    js_number,
    js_string,
    js_truthy,
)

DATA = {
    "b0": {"title": "Hello", "items": [{"name": "A", "price": 3}, {"name": "B", "price": 4.5}],
           "empty": [], "zero": 0, "none": None, "flag": True, "nested": {"deep": {"er": "x"}}},
    "n": 7,
    "s": "5",
    "key": "title",
}


@pytest.mark.parametrize("source, expected", [
    ("b0.title", "Hello"),
    ("b0['title']", "Hello"),
    ("b0[key]", "Hello"),
    ("b0.items[1].name", "B"),
    ("b0.items[0]['price'] + 1", 4),
    ("b0.items.length", 2),
    ("b0.title.length", 5),
    ("b0.nested.deep.er", "x"),
    ("b0.items['1'].name", "B"),
    ("1 + 2 * 3", 7),
    ("(1 + 2) * 3", 9),
    ("10 / 4", 2.5),
    ("10 % 4", 2),
    ("-n + 1", -6),
    ("n - -1", 8),
    ("'a' + 'b'", "ab"),
    ("'x' + n", "x7"),
    ("s + 1", "51"),
    ("s - 1", 4),
    ("s * 2", 10),
    ("n > 5 && n < 10", True),
    ("n >= 7", True),
    ("n <= 6", False),
    ("'abc' < 'abd'", True),
    ("n === 7", True),
    ("n === '7'", False),
    ("n == '7'", True),
    ("n !== 7", False),
    ("null == undefined", True),
    ("null === undefined", False),
    ("b0.none == null", True),
    ("b0.missing === undefined", True),
    ("b0.zero || 'fallback'", "fallback"),
    ("b0.flag && 'yes'", "yes"),
    ("b0.zero && 'yes'", 0),
    ("!b0.flag", False),
    ("!!b0.empty", True),  # an empty array is truthy, as in JS
    ("b0.items.length === 0 ? 'none' : 'some'", "some"),
    ("b0.empty.length === 0 ? 'none' : 'some'", "none"),
    ("n > 5 ? n > 6 ? 'big' : 'mid' : 'small'", "big"),
    ("[1, 2, n]", [1, 2, 7]),
    ("[1, 2,]", [1, 2]),
    ("[]", []),
    ("b0.title.length > 3", True),
    ("n + 1 <= 8 && s >= '5'", True),
    ("'a\\\\b'", "a\\b"),
    ("true", True),
    ("1.5e1", 15),
    ("'it\\'s'", "it's"),
    ("'\\u4e2d'", "中"),
])
def test_evaluates_like_javascript(source, expected):
    assert evaluate(source, DATA) == expected


def test_missing_names_and_members_are_undefined_not_errors():
    assert evaluate("nothing", DATA) is UNDEFINED
    assert evaluate("nothing.at.all", DATA) is UNDEFINED
    assert evaluate("b0.items[9].name", DATA) is UNDEFINED
    assert evaluate("b0.none.x", DATA) is UNDEFINED
    assert evaluate("n.length", DATA) is UNDEFINED
    assert display(evaluate("nothing", DATA)) == ""


def test_member_access_reads_only_data_never_python_attributes():
    for source in ("b0.__class__", "b0.items.__len__", "key.upper", "b0.items.append", "n.real",
                   "b0['__dict__']", "constructor", "b0.constructor.constructor"):
        assert evaluate(source, DATA) is UNDEFINED, source


@pytest.mark.parametrize("source", [
    "__import__('os').system('true')",
    "b0.title.upper()",
    "open('/etc/passwd')",
    "(lambda: 1)",
    "1 +",
    "b0.",
    "a b",
    "'unterminated",
    "b0[1",
    "x = 1",
    "`template`",
    "",
    "a; b",
    'b0["title"]',  # double quotes would end the attribute value the binding sits in
    "{a: 1}",  # object literals
    "你好",  # merchant text: names are ASCII
    "typeof n",
    "this.data",
    "a ?? b",
    "a?.b",
    "'\\x41'",  # escapes outside the grammar
    "'line\nbreak'",
    "...a",
])
def test_rejects_what_is_not_an_axml_expression(source):
    with pytest.raises(ExprError):
        evaluate(source, DATA)


def test_limits_size_and_nesting():
    with pytest.raises(ExprError):
        tokenize("1+" * 2000 + "1")
    with pytest.raises(ExprError):
        parse("(" * 100 + "1" + ")" * 100)
    with pytest.raises(ExprError):
        parse("!" * 100 + "1")


def test_numbers_print_as_javascript_does():
    assert js_string(3.0) == "3"
    assert js_string(0.1 + 0.2) == "0.30000000000000004"
    assert js_string(1e-7) == "1e-7"
    assert js_string(float("nan")) == "NaN"
    assert js_string(1 / 3) == "0.3333333333333333"
    assert evaluate("1 / 0", {}) == math.inf and js_string(evaluate("-1 / 0", {})) == "-Infinity"
    assert js_string(evaluate("0 / 0", {})) == "NaN"
    assert js_string([1, None, "a"]) == "1,,a"
    assert js_string({"a": 1}) == "[object Object]"
    assert js_string(True) == "true"


def test_numbers_from_strings_follow_javascript():
    assert js_number(" 12 ") == 12 and js_number("1.5e1") == 15.0 and js_number("-Infinity") == -math.inf
    for text in ("inf", "nan", "1_000", "12px", "Infinity1"):
        assert math.isnan(js_number(text)), text


def test_truthiness():
    falsy = [0, 0.0, "", None, UNDEFINED, False, float("nan")]
    truthy = [1, -1, "0", " ", [], {}, True, "false"]
    assert not any(js_truthy(v) for v in falsy)
    assert all(js_truthy(v) for v in truthy)


def test_interpolate_keeps_a_lone_bindings_value_and_joins_mixed_text():
    assert interpolate("{{b0.items}}", DATA) == DATA["b0"]["items"]
    assert interpolate("{{b0.flag}}", DATA) is True
    assert interpolate("mf-coupon mf-coupon-{{b0.title}}", DATA) == "mf-coupon mf-coupon-Hello"
    assert interpolate("{{n}} of {{b0.items.length}}{{b0.none}}", DATA) == "7 of 2"
    assert interpolate("no bindings", DATA) == "no bindings"


def test_scopes_shadow_outer_names():
    outer = Scope(DATA)
    inner = outer.child({"item": {"name": "inner"}, "n": 1})
    assert evaluate("item.name + n", inner) == "inner1"
    assert evaluate("b0.title", inner) == "Hello"
    assert evaluate("n", outer) == 7


def test_parse_is_cached_and_pure():
    assert parse("a.b + 1") is parse("a.b + 1")
    assert evaluate("a.b + 1", {"a": {"b": 1}}) == 2
    assert evaluate("a.b + 1", {"a": {"b": 5}}) == 6
