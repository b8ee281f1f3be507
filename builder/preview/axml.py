"""A tolerant AXML parser: markup text -> a tree of `Element` and `Text` nodes.

The markup is read by `builder.axml`, the tokenizer the output check uses, so the
preview sees the tags a build checked. The parser never raises: a stray closing tag is
skipped, a tag closed by the wrong name closes the elements opened inside it, an
unclosed tag ends at the end of the file, a tag no '>' ends shows as text; each repair
is noted in `warnings`, so a hand-edited template still previews.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field

from .. import axml

MAX_DEPTH = 80  # deeper elements are flattened into their ancestor at this depth
MAX_WARNINGS = 50

_Warn = Callable[[int, str], None]  # (line, message)


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
    root = Element("#root", {})
    stack = [root]
    warnings: list[str] = []
    line, counted = 1, 0  # the line at offset `counted`: tokens come in order, so count on

    def line_at(offset: int) -> int:
        nonlocal line, counted
        if offset >= counted:
            line += source.count("\n", counted, offset)
        else:  # the text before a cut-off tag starts behind it
            line -= source.count("\n", offset, counted)
        counted = offset
        return line

    def warn(at_line: int, message: str) -> None:
        if len(warnings) < MAX_WARNINGS:
            warnings.append(f"line {at_line}: {message}")

    text_from = 0  # where the text before the next token starts
    for kind, name, attrs, start, end in axml.tokens(source):
        if kind == axml.CUT:
            warn(line_at(start), axml.cut_message(name))
            continue  # its characters stay in the surrounding text
        if start > text_from:
            stack[-1].children.append(Text(source[text_from:start], line_at(text_from)))
        text_from = end
        if kind == axml.COMMENT:
            continue
        at = line_at(start)
        if kind == axml.CLOSE:
            _close(stack, name, at, warn)
            continue
        element = Element(name, _attributes(name, attrs, at, warn), line=at)
        stack[-1].children.append(element)
        if kind == axml.OPEN:
            if len(stack) > MAX_DEPTH:
                warn(at, f"elements nested deeper than {MAX_DEPTH}; <{name}> is shown flat")
            else:
                stack.append(element)
    if text_from < len(source):
        stack[-1].children.append(Text(source[text_from:], line_at(text_from)))
    end_line = line_at(len(source))
    for element in stack[1:]:
        warn(end_line, f"<{element.tag}> opened at line {element.line} is never closed")
    return Document(root.children, warnings)


def _attributes(tag: str, raw: str, line: int, warn: _Warn) -> dict[str, str | None]:
    attrs: dict[str, str | None] = {}
    for name, value in axml.attributes(raw):
        if name in attrs:
            warn(line, f"<{tag}> repeats the attribute {name}")
        attrs[name] = _unescape(value) if value is not None else None
    return attrs


def _close(stack: list[Element], tag: str, line: int, warn: _Warn) -> None:
    """`</tag>`: close the innermost open `tag` and what was opened inside it."""
    for depth in range(len(stack) - 1, 0, -1):
        if stack[depth].tag == tag:
            for unclosed in stack[depth + 1:]:
                warn(line, f"<{unclosed.tag}> (line {unclosed.line}) is closed by </{tag}>")
            del stack[depth:]
            return
    warn(line, f"stray closing tag </{tag}>")

_ENTITY = re.compile(r"&(#\d+|#x[0-9a-fA-F]+|amp|lt|gt|quot|apos|nbsp);")
_NAMED = {"amp": "&", "lt": "<", "gt": ">", "quot": '"', "apos": "'", "nbsp": "\u00a0"}


def _unescape(text: str) -> str:
    def repl(match: re.Match[str]) -> str:
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
