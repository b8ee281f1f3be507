"""A safe evaluator for AXML `{{ }}` expressions, with JavaScript's value rules.

The generated AXML binds page data with expressions such as `{{b0.title}}`,
`{{item.state !== 'available'}}` or `{{b0.coupons.length === 0}}`. The preview
evaluates them against the page's data (plain JSON values) with a tokenizer and a
recursive-descent parser: member access, indexing, literals (numbers, strings, true,
false, null, undefined, arrays, objects), unary `! - +`, arithmetic, comparison, `&&`,
`||` and the ternary. There are no function calls and no attribute lookups on Python
objects: member access only reads dict keys, list items and `.length`, so an
expression can never reach anything but the data it is given. Python's `eval` is
never used.

A missing name or member gives `undefined` (shown as empty text), as in the
mini-program; a malformed expression raises `ExprError`, which the renderer turns
into a visible marker.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

MAX_SOURCE = 2000  # characters in one expression
MAX_DEPTH = 60  # parser nesting (parentheses, ternaries, unary chains)
MAX_STRING = 1_000_000  # characters a `+` may produce


class ExprError(ValueError):
    """A malformed or unsupported expression."""


class _Undefined:
    """JavaScript's `undefined`: a missing name or member."""

    _instance: _Undefined | None = None

    def __new__(cls) -> _Undefined:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "undefined"

    def __bool__(self) -> bool:
        return False


UNDEFINED = _Undefined()

# --- tokens -------------------------------------------------------------------------

_PUNCT = ("===", "!==", "==", "!=", "<=", ">=", "&&", "||", "!", "<", ">", "+", "-", "*", "/", "%",
          "?", ":", ".", ",", "(", ")", "[", "]", "{", "}")
_NUMBER = re.compile(r"(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?")
_IDENT = re.compile(r"[A-Za-z_$][\w$]*")
_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "b": "\b", "f": "\f", "v": "\v", "0": "\0"}


@dataclass(frozen=True)
class Token:
    kind: str  # "num", "str", "name", "op", "end"
    value: Any
    pos: int


def tokenize(source: str) -> list[Token]:
    if len(source) > MAX_SOURCE:
        raise ExprError(f"expression longer than {MAX_SOURCE} characters")
    tokens: list[Token] = []
    i, n = 0, len(source)
    while i < n:
        ch = source[i]
        if ch.isspace():
            i += 1
            continue
        if ch.isdigit() or (ch == "." and i + 1 < n and source[i + 1].isdigit()):
            match = _NUMBER.match(source, i)
            assert match
            text = match.group()
            value: Any = float(text) if any(c in text for c in ".eE") else int(text)
            tokens.append(Token("num", value, i))
            i = match.end()
            continue
        if ch in "'\"":
            value, i = _read_string(source, i)
            tokens.append(Token("str", value, i))
            continue
        match = _IDENT.match(source, i)
        if match:
            tokens.append(Token("name", match.group(), i))
            i = match.end()
            continue
        for op in _PUNCT:
            if source.startswith(op, i):
                tokens.append(Token("op", op, i))
                i += len(op)
                break
        else:
            raise ExprError(f"unexpected character {ch!r} at {i + 1}")
    tokens.append(Token("end", None, n))
    return tokens


def _read_string(source: str, start: int) -> tuple[str, int]:
    quote = source[start]
    out = []
    i = start + 1
    while i < len(source):
        ch = source[i]
        if ch == quote:
            return "".join(out), i + 1
        if ch == "\\" and i + 1 < len(source):
            nxt = source[i + 1]
            if nxt == "u" and re.fullmatch(r"[0-9a-fA-F]{4}", source[i + 2:i + 6]):
                out.append(chr(int(source[i + 2:i + 6], 16)))
                i += 6
                continue
            out.append(_ESCAPES.get(nxt, nxt))
            i += 2
            continue
        out.append(ch)
        i += 1
    raise ExprError(f"unterminated string starting at {start + 1}")


# --- parser: source -> a tree of tuples -----------------------------------------------
# ("lit", value) ("name", id) ("member", obj, key-node) ("unary", op, x)
# ("binary", op, a, b) ("and", a, b) ("or", a, b) ("cond", test, yes, no)
# ("array", [items]) ("object", [(key, node)])

_EQUALITY = ("===", "!==", "==", "!=")
_RELATIONAL = ("<", ">", "<=", ">=")
_KEYWORDS = {"true": True, "false": False, "null": None, "undefined": UNDEFINED}


class _Parser:
    def __init__(self, source: str):
        self.source = source
        self.tokens = tokenize(source)
        self.i = 0
        self.depth = 0

    def peek(self) -> Token:
        return self.tokens[self.i]

    def take(self) -> Token:
        token = self.tokens[self.i]
        self.i += 1
        return token

    def accept(self, op: str) -> bool:
        token = self.peek()
        if token.kind == "op" and token.value == op:
            self.i += 1
            return True
        return False

    def expect(self, op: str) -> None:
        if not self.accept(op):
            token = self.peek()
            found = "end of expression" if token.kind == "end" else repr(token.value)
            raise ExprError(f"expected {op!r} but found {found} at {token.pos + 1}")

    def parse(self) -> tuple:
        if self.peek().kind == "end":
            raise ExprError("empty expression")
        node = self.ternary()
        token = self.peek()
        if token.kind != "end":
            raise ExprError(f"unexpected {token.value!r} at {token.pos + 1}")
        return node

    def _nested(self, parse: Callable[[], tuple]) -> tuple:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise ExprError("expression nested too deeply")
        try:
            return parse()
        finally:
            self.depth -= 1

    def ternary(self) -> tuple:
        test = self.logical_or()
        if self.accept("?"):
            yes = self._nested(self.ternary)
            self.expect(":")
            no = self._nested(self.ternary)
            return ("cond", test, yes, no)
        return test

    def logical_or(self) -> tuple:
        node = self.logical_and()
        while self.accept("||"):
            node = ("or", node, self.logical_and())
        return node

    def logical_and(self) -> tuple:
        node = self.binary(_EQUALITY)
        while self.accept("&&"):
            node = ("and", node, self.binary(_EQUALITY))
        return node

    def binary(self, ops: tuple[str, ...]) -> tuple:
        lower = {_EQUALITY: _RELATIONAL, _RELATIONAL: ("+", "-"), ("+", "-"): ("*", "/", "%")}.get(ops)
        operand = (lambda: self.binary(lower)) if lower else self.unary
        node = operand()
        while (token := self.peek()).kind == "op" and token.value in ops:
            self.i += 1
            node = ("binary", token.value, node, operand())
        return node

    def unary(self) -> tuple:
        token = self.peek()
        if token.kind == "op" and token.value in ("!", "-", "+"):
            self.i += 1
            return ("unary", token.value, self._nested(self.unary))
        return self.postfix()

    def postfix(self) -> tuple:
        node = self.primary()
        while True:
            if self.accept("."):
                token = self.take()
                if token.kind != "name":
                    raise ExprError(f"expected a name after '.' at {token.pos + 1}")
                node = ("member", node, ("lit", token.value))
            elif self.accept("["):
                key = self._nested(self.ternary)
                self.expect("]")
                node = ("member", node, key)
            elif self.peek().kind == "op" and self.peek().value == "(":
                raise ExprError(f"function calls are not supported (at {self.peek().pos + 1})")
            else:
                return node

    def primary(self) -> tuple:
        token = self.take()
        if token.kind in ("num", "str"):
            return ("lit", token.value)
        if token.kind == "name":
            if token.value in _KEYWORDS:
                return ("lit", _KEYWORDS[token.value])
            return ("name", token.value)
        if token.kind == "op" and token.value == "(":
            node = self._nested(self.ternary)
            self.expect(")")
            return node
        if token.kind == "op" and token.value == "[":
            items = []
            while not self.accept("]"):
                items.append(self._nested(self.ternary))
                if not self.accept(","):
                    self.expect("]")
                    break
            return ("array", items)
        if token.kind == "op" and token.value == "{":
            pairs = []
            while not self.accept("}"):
                key = self.take()
                if key.kind not in ("name", "str", "num"):
                    raise ExprError(f"expected a key at {key.pos + 1}")
                self.expect(":")
                pairs.append((js_string(key.value), self._nested(self.ternary)))
                if not self.accept(","):
                    self.expect("}")
                    break
            return ("object", pairs)
        if token.kind == "end":
            raise ExprError("expression ends too early")
        raise ExprError(f"unexpected {token.value!r} at {token.pos + 1}")


_CACHE: dict[str, tuple] = {}


def parse(source: str) -> tuple:
    """Parse an expression (without its `{{ }}`); cached, raises ExprError."""
    node = _CACHE.get(source)
    if node is None:
        node = _Parser(source).parse()
        if len(_CACHE) > 20_000:
            _CACHE.clear()
        _CACHE[source] = node
    return node


# --- JavaScript value rules ---------------------------------------------------------


def js_truthy(value: Any) -> bool:
    if value is None or value is UNDEFINED or value is False:
        return False
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return value != 0 and not (isinstance(value, float) and math.isnan(value))
    if isinstance(value, str):
        return value != ""
    return True  # arrays and objects, even empty ones


def js_number(value: Any) -> float | int:
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, (int, float)):
        return value
    if value is None:
        return 0
    if isinstance(value, str):
        text = value.strip()
        if text == "":
            return 0
        try:
            return float(text) if not re.fullmatch(r"[+-]?\d+", text) else int(text)
        except ValueError:
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
        return a == b  # NaN != NaN, as in JS
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    if isinstance(a, str) and isinstance(b, str):
        return a == b
    if isinstance(a, (list, dict)) or isinstance(b, (list, dict)):
        return a is b
    return a is b  # None, UNDEFINED


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
    if op == "%":
        if y == 0 or math.isinf(x) or math.isnan(x) or math.isnan(y):
            return math.nan
        if math.isinf(y):
            return x
        return _num_result(math.fmod(x, y))
    raise ExprError(f"unknown operator {op}")


def _num_result(value: float | int) -> float | int:
    if isinstance(value, float) and value.is_integer() and abs(value) < 2**53:
        return int(value)
    return value


def _compare(op: str, a: Any, b: Any) -> bool:
    if isinstance(a, str) and isinstance(b, str):
        x, y = a, b
    else:
        x, y = js_number(a), js_number(b)
        if math.isnan(x) or math.isnan(y):
            return False
    return {"<": x < y, ">": x > y, "<=": x <= y, ">=": x >= y}[op]


def member(obj: Any, key: Any) -> Any:
    """`obj[key]` on JSON data: dict keys, list items and `.length`; else undefined."""
    if isinstance(obj, dict):
        return obj.get(js_string(key), UNDEFINED)
    if isinstance(obj, (list, str)):
        if key == "length":
            return len(obj)
        index = key if _is_number(key) else int(key) if isinstance(key, str) and key.isdigit() else None
        if index is not None and float(index).is_integer() and 0 <= index < len(obj):
            return obj[int(index)]
    return UNDEFINED


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


def _eval(node: tuple, scope: Scope) -> Any:
    kind = node[0]
    if kind == "lit":
        return node[1]
    if kind == "name":
        return scope.lookup(node[1])
    if kind == "member":
        return member(_eval(node[1], scope), _eval(node[2], scope))
    if kind == "and":
        left = _eval(node[1], scope)
        return _eval(node[2], scope) if js_truthy(left) else left
    if kind == "or":
        left = _eval(node[1], scope)
        return left if js_truthy(left) else _eval(node[2], scope)
    if kind == "cond":
        return _eval(node[2] if js_truthy(_eval(node[1], scope)) else node[3], scope)
    if kind == "unary":
        value = _eval(node[2], scope)
        if node[1] == "!":
            return not js_truthy(value)
        number = js_number(value)
        return _num_result(-number) if node[1] == "-" else number
    if kind == "binary":
        op, a, b = node[1], _eval(node[2], scope), _eval(node[3], scope)
        if op in ("===", "!=="):
            return _strict_equal(a, b) == (op == "===")
        if op in ("==", "!="):
            return _loose_equal(a, b) == (op == "==")
        if op in _RELATIONAL:
            return _compare(op, a, b)
        return _arith(op, a, b)
    if kind == "array":
        return [_eval(item, scope) for item in node[1]]
    if kind == "object":
        return {key: _eval(value, scope) for key, value in node[1]}
    raise ExprError(f"unknown node {kind}")


def evaluate(source: str, scope: Scope | dict[str, Any]) -> Any:
    """Evaluate one expression (the text between `{{` and `}}`) against `scope`."""
    if isinstance(scope, dict):
        scope = Scope(scope)
    return _eval(parse(source), scope)


# --- text with bindings ---------------------------------------------------------------

_BINDING = re.compile(r"\{\{(.*?)\}\}", re.DOTALL)


def segments(text: str) -> Iterator[tuple[bool, str]]:
    """Split `a {{b}} c` into (False, 'a '), (True, 'b'), (False, ' c')."""
    pos = 0
    for match in _BINDING.finditer(text):
        if match.start() > pos:
            yield False, text[pos:match.start()]
        yield True, match.group(1)
        pos = match.end()
    if pos < len(text):
        yield False, text[pos:]


def has_binding(text: str) -> bool:
    return "{{" in text and _BINDING.search(text) is not None


def interpolate(text: str, scope: Scope | dict[str, Any]) -> Any:
    """An attribute value or text: a lone `{{x}}` keeps x's value (a list for a:for, an
    object for data-link); mixed text becomes a string. Raises ExprError."""
    if isinstance(scope, dict):
        scope = Scope(scope)
    parts = list(segments(text))
    if len(parts) == 1 and parts[0][0]:
        return evaluate(parts[0][1], scope)
    return "".join(display(evaluate(body, scope)) if is_expr else body for is_expr, body in parts)
