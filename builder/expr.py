r"""The grammar of AXML `{{ }}` binding expressions: the tokenizer and the parser.

One grammar for the whole build: `check.bindings_clean` refuses every binding this
parser refuses, and the preview evaluates exactly the trees it builds, so the preview
never shows an expression a build would refuse, and a build never holds one the preview
cannot show. It is what mpforge's templates use and what Alipay's AXML supports, limited
to what is valid wherever a binding stands (text and double-quoted attribute values):

    expression := or ('?' expression ':' expression)?
    or         := and ('||' and)*
    and        := equality ('&&' equality)*
    equality   := relational (('===' | '!==' | '==' | '!=') relational)*
    relational := additive (('<' | '>' | '<=' | '>=') additive)*
    additive   := product (('+' | '-') product)*
    product    := unary (('*' | '/' | '%') unary)*
    unary      := ('!' | '-' | '+') unary | postfix
    postfix    := primary ('.' NAME | '[' expression ']')*
    primary    := NUMBER | STRING | NAME | 'true' | 'false' | 'null' | 'undefined'
                | '(' expression ')' | '[' (expression (',' expression)* ','?)? ']'

- NAME is ASCII and not a JavaScript keyword: page data keys are generated, so a CJK
  word in a binding is merchant text that leaked into the markup.
- NUMBER is decimal (`3`, `0.5`, `1e3`); STRING is single-quoted with the escapes
  `\\ \' \n \r \t \b \f \v \uXXXX`. A double quote is refused anywhere: inside an
  attribute value it ends the value for WeChat's compiler (which the external checks run)
  and for the tokenizer in builder/axml.py.
- There are no calls, assignments, object literals, template strings or operators
  such as `typeof`, `in` or `??`.

The parser builds a tree of the frozen node classes below; it has no notion of values
beyond the literals. Source length and nesting are bounded.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from typing import TypeAlias

MAX_SOURCE = 2000  # characters in one expression
MAX_DEPTH = 60  # parser nesting (parentheses, ternaries, unary chains, brackets)


class ExprError(ValueError):
    """An expression outside the grammar. `pos` is the 0-based offset in the expression
    of what is wrong, when there is one place to point at."""

    def __init__(self, reason: str, pos: int | None = None):
        super().__init__(reason if pos is None else f"{reason} at {pos + 1}")
        self.reason = reason
        self.pos = pos


class Undefined:
    """JavaScript's `undefined`, the value of the `undefined` literal (one instance)."""

    _instance: Undefined | None = None

    def __new__(cls) -> Undefined:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "undefined"

    def __bool__(self) -> bool:
        return False


UNDEFINED = Undefined()

# --- nodes ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Const:
    """A literal: number, string, true, false, null or undefined."""

    value: str | int | float | bool | None | Undefined


@dataclass(frozen=True, slots=True)
class Name:
    name: str


@dataclass(frozen=True, slots=True)
class Member:
    """`obj.name` (key is a `Const` string) or `obj[key]`."""

    obj: Node
    key: Node


@dataclass(frozen=True, slots=True)
class Unary:
    op: str  # ! - +
    operand: Node


@dataclass(frozen=True, slots=True)
class Binary:
    op: str  # equality, relational and arithmetic operators
    left: Node
    right: Node


@dataclass(frozen=True, slots=True)
class Logical:
    op: str  # && ||
    left: Node
    right: Node


@dataclass(frozen=True, slots=True)
class Conditional:
    test: Node
    yes: Node
    no: Node


@dataclass(frozen=True, slots=True)
class Array:
    items: tuple[Node, ...]


Node: TypeAlias = Const | Name | Member | Unary | Binary | Logical | Conditional | Array

# --- tokens --------------------------------------------------------------------------

# Longest first, so `===` is not read as `==` then `=`.
_PUNCT = ("===", "!==", "==", "!=", "<=", ">=", "&&", "||", "!", "<", ">", "+", "-", "*", "/", "%",
          "?", ":", ".", ",", "(", ")", "[", "]")
_NUMBER = re.compile(r"(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?")
_IDENT = re.compile(r"[A-Za-z_$][A-Za-z0-9_$]*")
_ESCAPES = {"\\": "\\", "'": "'", "n": "\n", "r": "\r", "t": "\t", "b": "\b", "f": "\f", "v": "\v"}
_HEX4 = re.compile(r"[0-9a-fA-F]{4}")
_KEYWORDS: dict[str, str | int | float | bool | None | Undefined] = {
    "true": True, "false": False, "null": None, "undefined": UNDEFINED}
# Words JavaScript reserves: as a name they would not read page data on the device.
_RESERVED = frozenset({
    "await", "break", "case", "catch", "class", "const", "continue", "debugger", "default", "delete", "do", "else",
    "enum", "export", "extends", "finally", "for", "function", "if", "import", "in", "instanceof", "let", "new",
    "return", "static", "super", "switch", "this", "throw", "try", "typeof", "var", "void", "while", "with", "yield"})
# What a character no expression may hold is, when it is one of the usual suspects.
_NOT_ALLOWED = {"\"": "double quotes are not allowed (write strings in single quotes)",
                "{": "object literals and braces are not allowed",
                "}": "braces are not allowed",
                "=": "assignments are not allowed",
                "`": "template strings are not allowed",
                ";": "statements are not allowed"}


@dataclass(frozen=True, slots=True)
class Token:
    kind: str  # "num", "str", "name", "op", "end"
    value: str | int | float | None
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
        if "0" <= ch <= "9" or (ch == "." and i + 1 < n and "0" <= source[i + 1] <= "9"):
            match = _NUMBER.match(source, i)
            assert match  # the first character is a digit or '.' and a digit
            text = match.group()
            # Numbers are doubles: an integer beyond 2**53 is not exact, so it is a float.
            exact = len(text) < 16 and not any(c in text for c in ".eE")
            tokens.append(Token("num", int(text) if exact else float(text), i))
            i = match.end()
            continue
        if ch == "'":
            value, end = _read_string(source, i)
            tokens.append(Token("str", value, i))
            i = end
            continue
        match = _IDENT.match(source, i)
        if match:
            tokens.append(Token("name", match.group(), i))
            i = match.end()
            continue
        op = next((p for p in _PUNCT if source.startswith(p, i)), None)
        if op is None:
            raise ExprError(_NOT_ALLOWED.get(ch, f"unexpected character {ch!r}"), i)
        tokens.append(Token("op", op, i))
        i += len(op)
    tokens.append(Token("end", None, n))
    return tokens


def _read_string(source: str, start: int) -> tuple[str, int]:
    """The single-quoted string at `start` and the offset after it."""
    out: list[str] = []
    i = start + 1
    while i < len(source):
        ch = source[i]
        if ch == "'":
            return "".join(out), i + 1
        if ch == "\"":
            raise ExprError(_NOT_ALLOWED[ch], i)
        if ch in "\n\r":
            break
        if ch == "\\":
            nxt = source[i + 1:i + 2]
            if nxt == "u" and _HEX4.fullmatch(source, i + 2, i + 6):
                out.append(chr(int(source[i + 2:i + 6], 16)))
                i += 6
                continue
            if nxt not in _ESCAPES:
                raise ExprError(f"unsupported escape '\\{nxt}' in a string", i)
            out.append(_ESCAPES[nxt])
            i += 2
            continue
        out.append(ch)
        i += 1
    raise ExprError("unterminated string", start)


# --- parser --------------------------------------------------------------------------

_EQUALITY = ("===", "!==", "==", "!=")
_RELATIONAL = ("<", ">", "<=", ">=")
_ADDITIVE = ("+", "-")
_PRODUCT = ("*", "/", "%")
# Each binary level and the level below it.
_LOWER = {_EQUALITY: _RELATIONAL, _RELATIONAL: _ADDITIVE, _ADDITIVE: _PRODUCT}


def _shown(token: Token) -> str:
    return "the end of the expression" if token.kind == "end" else repr(token.value)


class _Parser:
    def __init__(self, source: str):
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
        token = self.tokens[self.i]
        if token.kind == "op" and token.value == op:
            self.i += 1
            return True
        return False

    def expect(self, op: str) -> None:
        if not self.accept(op):
            token = self.peek()
            raise ExprError(f"expected {op!r} but found {_shown(token)}", token.pos)

    def parse(self) -> Node:
        if self.peek().kind == "end":
            raise ExprError("empty expression")
        node = self.ternary()
        token = self.peek()
        if token.kind != "end":
            raise ExprError(f"unexpected {_shown(token)}", token.pos)
        return node

    def nested(self, parse: Callable[[], Node]) -> Node:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise ExprError("expression nested too deeply", self.peek().pos)
        try:
            return parse()
        finally:
            self.depth -= 1

    def ternary(self) -> Node:
        test = self.logical_or()
        if self.accept("?"):
            yes = self.nested(self.ternary)
            self.expect(":")
            no = self.nested(self.ternary)
            return Conditional(test, yes, no)
        return test

    def logical_or(self) -> Node:
        node = self.logical_and()
        while self.accept("||"):
            node = Logical("||", node, self.logical_and())
        return node

    def logical_and(self) -> Node:
        node = self.binary(_EQUALITY)
        while self.accept("&&"):
            node = Logical("&&", node, self.binary(_EQUALITY))
        return node

    def binary(self, ops: tuple[str, ...]) -> Node:
        lower = _LOWER.get(ops)

        def operand() -> Node:
            return self.binary(lower) if lower else self.unary()

        node = operand()
        while (token := self.peek()).kind == "op" and token.value in ops:
            self.i += 1
            node = Binary(str(token.value), node, operand())
        return node

    def unary(self) -> Node:
        token = self.peek()
        if token.kind == "op" and token.value in ("!", "-", "+"):
            self.i += 1
            return Unary(str(token.value), self.nested(self.unary))
        return self.postfix()

    def postfix(self) -> Node:
        node = self.primary()
        while True:
            if self.accept("."):
                token = self.take()
                if token.kind != "name":
                    raise ExprError("expected a name after '.'", token.pos)
                node = Member(node, Const(token.value))
            elif self.accept("["):
                key = self.nested(self.ternary)
                self.expect("]")
                node = Member(node, key)
            elif self.peek().kind == "op" and self.peek().value == "(":
                raise ExprError("function calls are not allowed", self.peek().pos)
            else:
                return node

    def primary(self) -> Node:
        token = self.take()
        if token.kind in ("num", "str"):
            return Const(token.value)
        if token.kind == "name":
            name = str(token.value)
            if name in _KEYWORDS:
                return Const(_KEYWORDS[name])
            if name in _RESERVED:
                raise ExprError(f"'{name}' is a JavaScript keyword, not page data", token.pos)
            return Name(name)
        if token.kind == "op" and token.value == "(":
            node = self.nested(self.ternary)
            self.expect(")")
            return node
        if token.kind == "op" and token.value == "[":
            items = []
            while not self.accept("]"):
                items.append(self.nested(self.ternary))
                if not self.accept(","):
                    self.expect("]")
                    break
            return Array(tuple(items))
        if token.kind == "end":
            raise ExprError("the expression ends too early", token.pos)
        raise ExprError(f"unexpected {_shown(token)}", token.pos)


@lru_cache(maxsize=20_000)
def parse(source: str) -> Node:
    """The tree of one expression (the text between `{{` and `}}`); raises ExprError.

    Cached: a build binds the same few expressions on every page.
    """
    return _Parser(source).parse()
