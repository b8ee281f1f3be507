"""AXML markup read into tokens: tags, comments and `{{ }}` bindings, for every reader.

`check.axml_well_formed` and `check.bindings_clean` check the output with these, and the
preview builds its element tree from them, so both read a file the same way:

- A tag is `<name attrs>`, `<name attrs/>` or `</name>`. An attribute value is quoted
  and may hold `<`, `>` and bindings (`a:if="{{a < b}}"`); it ends at its own quote,
  even inside a binding, as it does for WeChat's compiler. (The binding grammar has no
  double quotes, so a binding never holds the quote mpforge's values are written in.)
- A comment `<!-- -->` is skipped whole; one never closed runs to the end of the file.
- A binding runs from `{{` to the next `}}`. In text it may hold `<` (`{{a<b}}`), so a
  binding with one is skipped whole rather than read as a tag.
- Text is whatever lies between tokens.

Scanning is one regular expression (it runs in C): the check reads every AXML file of
every build, thousands for a large spec.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

OPEN, CLOSE, EMPTY, COMMENT, CUT = "open", "close", "empty", "comment", "cut"

_NAME = r"[A-Za-z_][\w:.-]*"
_COMMENT = r"<!--.*?(?:-->|\Z)"
# Attribute text: runs between quoted values, and slashes but the one of '/>'. Each
# repetition starts with a quote or a slash, so a tag that never ends fails in linear time.
_ATTRS = r"""[^>"'/]*(?:(?:"[^"]*"|'[^']*'|/(?!>))[^>"'/]*)*"""
# A binding in text holding '<': up to the first '<', then to the first '}}'.
_TEXT_BINDING = r"\{\{[^}<]*(?:\}(?!\})[^}<]*)*<[^}]*(?:\}(?!\})[^}]*)*\}\}"
_TOKEN = re.compile(
    rf"(?P<comment>{_COMMENT})"
    rf"|<(?P<close>/?)(?P<name>{_NAME})(?P<attrs>{_ATTRS})(?P<empty>/?)>"
    rf"|<(?P<cut>/?{_NAME})"  # a tag start no '>' ends: the file ends in it, or a quote does not
    rf"|{_TEXT_BINDING}",
    re.S)

_ATTR = re.compile(r"""([^\s=/>"'<]+)(?:\s*=\s*(?:"([^"]*)"|'([^']*)'|([^\s"'>]*)))?|"[^"]*"|'[^']*'""")

BINDING = re.compile(r"\{\{(.*?)\}\}", re.S)
_BINDING_OR_BRACES = re.compile(rf"{_COMMENT}|{BINDING.pattern}|\{{\{{|\}}\}}", re.S)


# One piece of markup at text[start:end]: (kind, name, attrs, start, end). kind is OPEN,
# CLOSE or EMPTY (a self-closing tag) with the tag's name and raw attribute text; COMMENT;
# or CUT, a tag start no '>' ends (name `view` or `/view`) or a comment never closed
# (name `!--`), which a reader reports and treats as text. Plain tuples: a large build
# has hundreds of thousands of tags, and a named tuple costs half as much again.
Token = tuple[str, str, str, int, int]


def tokens(text: str) -> Iterator[Token]:
    """The tags and comments of `text`, in order."""
    for match in _TOKEN.finditer(text):
        comment, close, name, attrs, empty, cut = match.groups()
        if name is not None:
            start, end = match.span()
            yield (CLOSE if close else EMPTY if empty else OPEN), name, attrs, start, end
        elif comment is not None:
            start, end = match.span()
            if comment.endswith("-->"):
                yield COMMENT, "", "", start, end
            else:
                yield CUT, "!--", "", start, end
        elif cut is not None:
            start, end = match.span()
            yield CUT, cut, "", start, end
        # else: a text binding holding '<', which is text


def attributes(attrs: str) -> Iterator[tuple[str, str | None]]:
    """(name, raw value) of each attribute in a tag's `attrs` text; the value is None for
    an attribute written without one. Stray quoted text without a name is skipped."""
    for match in _ATTR.finditer(attrs):
        name, double, single, bare = match.groups()
        if name is not None:
            yield name, double if double is not None else single if single is not None else bare


def bindings(text: str) -> Iterator[tuple[int, str | None]]:
    """Each `{{…}}` of `text` outside comments as (offset of its `{{`, the expression between
    the braces), and each `{{` or `}}` that is not part of one as (its offset, None)."""
    for match in _BINDING_OR_BRACES.finditer(text):
        if match.group(1) is not None:
            yield match.start(), match.group(1)
        elif match.group()[0] != "<":
            yield match.start(), None


def cut_message(name: str) -> str:
    """What is wrong with a CUT token of this name, for a person."""
    if name == "!--":
        return "comment <!-- is never closed with -->"
    return f"tag <{name} has no closing '>' (or one of its quotes is never closed)"
