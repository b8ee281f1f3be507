"""A safe evaluator for AXML `{{ }}` expressions, with JavaScript's value rules.

The generated AXML binds page data with expressions such as `{{b0.title}}`,
`{{item.state !== 'available'}}` or `{{b0.coupons.length === 0}}`. The preview parses
them with `builder.expr`, the grammar the output check enforces, and evaluates the tree
against the page's data (plain JSON values). There are no function calls and no
attribute lookups on Python objects: member access only reads dict keys, list items and
`.length`, so an expression can never reach anything but the data it is given. Python's
`eval` is never used.

A missing name or member gives `undefined` (shown as empty text), as in the
mini-program; an expression outside the grammar raises `ExprError`, which the renderer
turns into a visible marker.
"""

from __future__ import annotations

import math
import operator
import re
from collections.abc import Callable, Iterator
from typing import Any

from ..axml import BINDING
from ..expr import (
    UNDEFINED,
    Binary,
    Conditional,
    Const,
    ExprError,
    Logical,
    Member,
    Name,
    Node,
    Unary,
    parse,
)

__all__ = ["UNDEFINED", "ExprError", "Scope", "display", "evaluate", "has_binding", "interpolate", "js_number",
           "js_string", "js_truthy", "member", "segments"]

MAX_STRING = 1_000_000  # characters a `+` may produce

# --- JavaScript value rules ---------------------------------------------------------

# The strings JavaScript's Number() reads (hexadecimal aside).
_DECIMAL = re.compile(r"[+-]?(?:(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?|Infinity)")


def js_truthy(value: Any) -> bool:
    if value is None or value is UNDEFINED or value is False:
        return False
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return value != 0 and not (isinstance(value, float) and math.isnan(value))
    if isinstance(value, str):
        return value != ""
    return True  # arrays and objects, even empty ones


def js_number(value: Any) -> float | int:
    """A value as a JavaScript number: an int while it is exact (within 2**53), else a float."""
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int):
        return _num_result(value)
    if isinstance(value, float):
        return value
    if value is None:
        return 0
    if isinstance(value, str):
        text = value.strip()
        if text == "":
            return 0
        if _DECIMAL.fullmatch(text):  # Python's float() would also take 'inf', 'nan' and '1_0'
            return _num_result(float(text.replace("Infinity", "inf")))
        return math.nan
    if isinstance(value, list):
        return js_number(js_string(value)) if len(value) <= 1 else math.nan
    return math.nan


def js_string(value: Any) -> str:
    if isinstance(value, str):
        return value
    if value is None:
        return "null"
    if value is UNDEFINED:
        return "undefined"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "NaN"
        if math.isinf(value):
            return "Infinity" if value > 0 else "-Infinity"
        if value.is_integer() and abs(value) < 1e21:
            return str(int(value))
        return re.sub(r"e([+-])0*(\d)", r"e\1\2", repr(value))
    if isinstance(value, list):
        return ",".join("" if v is None or v is UNDEFINED else js_string(v) for v in value)
    return "[object Object]"


def display(value: Any) -> str:
    """How a value shows in text: null and undefined show as nothing."""
    return "" if value is None or value is UNDEFINED else js_string(value)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _strict_equal(a: Any, b: Any) -> bool:
    if _is_number(a) and _is_number(b):
        return bool(a == b)  # NaN != NaN, as in JS
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    if isinstance(a, str) and isinstance(b, str):
        return a == b
    return a is b  # arrays and objects by identity; null, undefined


def _loose_equal(a: Any, b: Any) -> bool:
    nullish = (None, UNDEFINED)
    if a in nullish or b in nullish:
        return (a in nullish) and (b in nullish)
    if isinstance(a, (list, dict)) and isinstance(b, (list, dict)):
        return a is b
    if isinstance(a, (list, dict)):
        a = js_string(a)
    if isinstance(b, (list, dict)):
        b = js_string(b)
    if isinstance(a, str) and isinstance(b, str):
        return a == b
    return js_number(a) == js_number(b)


def _arith(op: str, a: Any, b: Any) -> Any:
    if op == "+":
        if isinstance(a, (str, list, dict)) or isinstance(b, (str, list, dict)):
            left, right = js_string(a), js_string(b)
            if len(left) + len(right) > MAX_STRING:
                raise ExprError("string too long")
            return left + right
        return _num_result(js_number(a) + js_number(b))
    x, y = js_number(a), js_number(b)
    if op == "-":
        return _num_result(x - y)
    if op == "*":
        return _num_result(x * y)
    if op == "/":
        if y == 0:
            if x == 0 or math.isnan(x):
                return math.nan
            return math.inf if (x > 0) == (math.copysign(1, y) > 0) else -math.inf
        return _num_result(x / y)
    # '%', the grammar's last arithmetic operator
    if y == 0 or math.isinf(x) or math.isnan(x) or math.isnan(y):
        return math.nan
    if math.isinf(y):
        return x
    return _num_result(math.fmod(x, y))


_EXACT = 2**53  # integers up to this are exact doubles


def _num_result(value: float | int) -> float | int:
    """A number as the evaluator keeps it: integral values within 2**53 as int (so they
    print as JavaScript prints them), anything else as float, as JavaScript's doubles."""
    if isinstance(value, float):
        return int(value) if value.is_integer() and abs(value) <= _EXACT else value
    if abs(value) <= _EXACT:
        return value
    try:
        return float(value)
    except OverflowError:  # beyond the largest double: JavaScript has Infinity there
        return math.inf if value > 0 else -math.inf


_ORDER: dict[str, Callable[[Any, Any], bool]] = {"<": operator.lt, ">": operator.gt, "<=": operator.le,
                                                 ">=": operator.ge}


def _compare(op: str, a: Any, b: Any) -> bool:
    """Two strings compare as text, anything else as numbers (NaN compares false)."""
    if isinstance(a, str) and isinstance(b, str):
        return _ORDER[op](a, b)
    x, y = js_number(a), js_number(b)
    if math.isnan(x) or math.isnan(y):
        return False
    return _ORDER[op](x, y)


def member(obj: Any, key: Any) -> Any:
    """`obj[key]` on JSON data: dict keys, list items and `.length`; else undefined."""
    if isinstance(obj, dict):
        return obj.get(js_string(key), UNDEFINED)
    if isinstance(obj, (list, str)):
        if key == "length":
            return len(obj)
        index = _index(key)
        if index is not None and index < len(obj):
            return obj[index]
    return UNDEFINED


_INDEX = re.compile(r"0|[1-9][0-9]{0,15}")  # as JavaScript writes an array index: no '01', no '+1'


def _index(key: Any) -> int | None:
    """`key` as an array index (a whole number >= 0 or the string of one), else None."""
    if isinstance(key, str):
        return int(key) if _INDEX.fullmatch(key) else None
    number = _num_result(key) if _is_number(key) else None
    return number if isinstance(number, int) and number >= 0 else None


class Scope:
    """Names visible to an expression: loop variables over the page data."""

    def __init__(self, names: dict[str, Any], parent: Scope | None = None):
        self.names = names
        self.parent = parent

    def lookup(self, name: str) -> Any:
        scope: Scope | None = self
        while scope is not None:
            if name in scope.names:
                return scope.names[name]
            scope = scope.parent
        return UNDEFINED

    def child(self, names: dict[str, Any]) -> Scope:
        return Scope(names, self)


def _eval(node: Node, scope: Scope) -> Any:
    if isinstance(node, Member):
        return member(_eval(node.obj, scope), _eval(node.key, scope))
    if isinstance(node, Name):
        return scope.lookup(node.name)
    if isinstance(node, Const):
        return node.value
    if isinstance(node, Logical):
        left = _eval(node.left, scope)
        if js_truthy(left) == (node.op == "&&"):
            return _eval(node.right, scope)
        return left
    if isinstance(node, Conditional):
        return _eval(node.yes if js_truthy(_eval(node.test, scope)) else node.no, scope)
    if isinstance(node, Unary):
        value = _eval(node.operand, scope)
        if node.op == "!":
            return not js_truthy(value)
        number = js_number(value)
        return _num_result(-number) if node.op == "-" else number
    if isinstance(node, Binary):
        op, a, b = node.op, _eval(node.left, scope), _eval(node.right, scope)
        if op in ("===", "!=="):
            return _strict_equal(a, b) == (op == "===")
        if op in ("==", "!="):
            return _loose_equal(a, b) == (op == "==")
        if op in ("<", ">", "<=", ">="):
            return _compare(op, a, b)
        return _arith(op, a, b)
    return [_eval(item, scope) for item in node.items]


def evaluate(source: str, scope: Scope | dict[str, Any]) -> Any:
    """Evaluate one expression (the text between `{{` and `}}`) against `scope`."""
    if isinstance(scope, dict):
        scope = Scope(scope)
    return _eval(parse(source), scope)


# --- text with bindings ---------------------------------------------------------------

def segments(text: str) -> Iterator[tuple[bool, str]]:
    """Split `a {{b}} c` into (False, 'a '), (True, 'b'), (False, ' c')."""
    pos = 0
    for match in BINDING.finditer(text):
        if match.start() > pos:
            yield False, text[pos:match.start()]
        yield True, match.group(1)
        pos = match.end()
    if pos < len(text):
        yield False, text[pos:]


def has_binding(text: str) -> bool:
    return "{{" in text and BINDING.search(text) is not None


def interpolate(text: str, scope: Scope | dict[str, Any]) -> Any:
    """An attribute value or text: a lone `{{x}}` keeps x's value (a list for a:for, an
    object for data-link); mixed text becomes a string. Raises ExprError."""
    if isinstance(scope, dict):
        scope = Scope(scope)
    parts = list(segments(text))
    if len(parts) == 1 and parts[0][0]:
        return evaluate(parts[0][1], scope)
    return "".join(display(evaluate(body, scope)) if is_expr else body for is_expr, body in parts)
