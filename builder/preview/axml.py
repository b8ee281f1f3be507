"""A tolerant AXML parser: markup text -> a tree of `Element` and `Text` nodes.

AXML is XML-like: tags, quoted attributes, self-closing tags, comments, and `{{ }}`
bindings that may contain `<`, `>` or quotes. The parser never raises: a stray closing
tag is skipped, a tag closed by the wrong name closes the elements opened inside it,
an unclosed tag ends at the end of the file; each repair is noted in `warnings`, so a
hand-edited template still previews.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

MAX_DEPTH = 80  # deeper elements are flattened into their ancestor at this depth

_NAME = re.compile(r"[A-Za-z_][\w:.\-]*")
_ATTR_NAME = re.compile(r"[^\s=/>\"'<]+")
_SPACE = re.compile(r"\s*")


@dataclass
class Text:
    text: str
    line: int


@dataclass
class Element:
    tag: str
    attrs: dict[str, str | None]  # None: an attribute written without a value
    children: list[Element | Text] = field(default_factory=list)
    line: int = 1

    def get(self, name: str, default: str | None = None) -> str | None:
        return self.attrs.get(name, default)


Node = Element | Text


@dataclass
class Document:
    children: list[Node]
    warnings: list[str]


def parse_axml(source: str) -> Document:
    return _Parser(source).parse()


class _Parser:
    def __init__(self, source: str):
        self.s = source
        self.i = 0
        self.root = Element("#root", {})
        self.stack: list[Element] = [self.root]
        self.warnings: list[str] = []
        self._line_starts = [0] + [m.end() for m in re.finditer("\n", source)]

    def line(self, pos: int) -> int:
        lo, hi = 0, len(self._line_starts) - 1
        while lo < hi:
            mid = (lo + hi + 1) // 2
            if self._line_starts[mid] <= pos:
                lo = mid
            else:
                hi = mid - 1
        return lo + 1

    def warn(self, pos: int, message: str) -> None:
        if len(self.warnings) < 50:
            self.warnings.append(f"line {self.line(pos)}: {message}")

    def parse(self) -> Document:
        s = self.s
        while self.i < len(s):
            if s.startswith("<!--", self.i):
                end = s.find("-->", self.i + 4)
                self.i = len(s) if end < 0 else end + 3
            elif s.startswith("</", self.i) and _NAME.match(s, self.i + 2):
                self.close_tag()
            elif s.startswith("<", self.i) and _NAME.match(s, self.i + 1):
                self.open_tag()
            else:
                self.text()
        for element in self.stack[1:]:
            self.warn(len(s), f"<{element.tag}> opened at line {element.line} is never closed")
        return Document(self.root.children, self.warnings)

    def text(self) -> None:
        s, start = self.s, self.i
        i = start
        while i < len(s):
            if s.startswith("{{", i):
                end = s.find("}}", i + 2)
                i = len(s) if end < 0 else end + 2
                continue
            if s[i] == "<" and (s.startswith("<!--", i) or _NAME.match(s, i + 1)
                                or (s.startswith("</", i) and _NAME.match(s, i + 2))):
                break
            i += 1
        if i == start:  # a lone "<" that starts nothing
            i += 1
        self.i = i
        self.stack[-1].children.append(Text(s[start:i], self.line(start)))

    def open_tag(self) -> None:
        s, start = self.s, self.i
        name_match = _NAME.match(s, start + 1)
        assert name_match
        tag = name_match.group()
        i = name_match.end()
        attrs: dict[str, str | None] = {}
        self_closing = False
        while True:
            i = _SPACE.match(s, i).end()
            if i >= len(s):
                self.warn(start, f"<{tag}> is cut off at the end of the file")
                break
            if s.startswith("/>", i):
                self_closing, i = True, i + 2
                break
            if s[i] == ">":
                i += 1
                break
            attr = _ATTR_NAME.match(s, i)
            if not attr:  # junk such as a stray quote: skip it
                i += 1
                continue
            name, i = attr.group(), attr.end()
            j = _SPACE.match(s, i).end()
            value: str | None = None
            if j < len(s) and s[j] == "=":
                j = _SPACE.match(s, j + 1).end()
                if j < len(s) and s[j] in "\"'":
                    value, i = self._quoted(j)
                else:
                    unquoted = re.compile(r"[^\s>]*").match(s, j)
                    value, i = unquoted.group(), unquoted.end()
                    if value.endswith("/") and s.startswith(">", i):
                        value, i = value[:-1], i - 1
            if name in attrs:
                self.warn(start, f"<{tag}> repeats the attribute {name}")
            attrs[name] = _unescape(value) if value is not None else None
        self.i = i
        element = Element(tag, attrs, line=self.line(start))
        parent = self.stack[-1]
        parent.children.append(element)
        if not self_closing:
            if len(self.stack) > MAX_DEPTH:
                self.warn(start, f"elements nested deeper than {MAX_DEPTH}; <{tag}> is shown flat")
                return
            self.stack.append(element)

    def _quoted(self, j: int) -> tuple[str, int]:
        """A quoted value from position j (the quote); `{{ }}` inside may hold either quote."""
        s, quote = self.s, self.s[j]
        i = j + 1
        while i < len(s):
            if s.startswith("{{", i):
                end = s.find("}}", i + 2)
                # Skip the binding when its own quotes pair up: they are string literals.
                if end >= 0 and s[i + 2:end].count(quote) % 2 == 0:
                    i = end + 2
                    continue
            if s[i] == quote:
                return s[j + 1:i], i + 1
            i += 1
        self.warn(j, "an attribute value is never closed")
        return s[j + 1:], len(s)

    def close_tag(self) -> None:
        s, start = self.s, self.i
        name_match = _NAME.match(s, start + 2)
        assert name_match
        tag = name_match.group()
        end = s.find(">", name_match.end())
        self.i = len(s) if end < 0 else end + 1
        for depth in range(len(self.stack) - 1, 0, -1):
            if self.stack[depth].tag == tag:
                for unclosed in self.stack[depth + 1:]:
                    self.warn(start, f"<{unclosed.tag}> (line {unclosed.line}) is closed by </{tag}>")
                del self.stack[depth:]
                return
        self.warn(start, f"stray closing tag </{tag}>")


_ENTITY = re.compile(r"&(#\d+|#x[0-9a-fA-F]+|amp|lt|gt|quot|apos|nbsp);")
_NAMED = {"amp": "&", "lt": "<", "gt": ">", "quot": '"', "apos": "'", "nbsp": "\u00a0"}


def _unescape(text: str) -> str:
    def repl(match: re.Match) -> str:
        body = match.group(1)
        if body.startswith("#x"):
            code = int(body[2:], 16)
        elif body.startswith("#"):
            code = int(body[1:])
        else:
            return _NAMED[body]
        return chr(code) if 0 < code < 0x110000 and not 0xD800 <= code < 0xE000 else "\ufffd"

    return _ENTITY.sub(repl, text) if "&" in text else text


def unescape_text(text: str) -> str:
    """Character references in text nodes, decoded as the mini-program does."""
    return _unescape(text)
