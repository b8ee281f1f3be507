"""Split a spec's text into its page items, so a rebuild re-parses only edited pages.

Parsing YAML is the slowest step of building a large spec, and an edit usually touches
one page. When the spec is plain block-style YAML - `pages:` alone on its line at the
top level, its items `- ...` at one indentation - each item is a piece of text that
parses the same on its own as in place. The loader parses the rest of the file with
the page lines blanked (so line numbers stay) and each item separately, remembering
items by their text. Anything unusual (anchors or aliases, which may cross items; tabs;
carriage returns; several documents; flow style) returns None: the whole file is then
parsed at once, which is always correct.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# Specs smaller than this parse quickly enough whole.
MIN_PAGES = 20
_PAGES_KEY = re.compile(r"^pages:[ ]*(?:#.*)?$", re.M)
# The first line after the pages block: anything at column 0 but a comment or an item.
_BLOCK_END = re.compile(r"^[^ #\n-]", re.M)


def _stray_line(n: int) -> re.Pattern[str]:
    """A line, other than a comment, left of column n, or at it but not an item '- '."""
    left = rf" {{0,{n - 1}}}[^ #\n]|" if n else ""
    return re.compile(rf"^(?:{left} {{{n}}}[^ #\n-]| {{{n}}}-[^ \n])", re.M)


_STRAY_LINE = [_stray_line(n) for n in range(9)]  # items sit at most 8 columns in
# '&name' or '*name' where YAML could read an anchor or alias (text that only looks like
# one costs a whole-file parse, nothing more).
# ([&*] first, the look-behind after it: the scan then jumps from '&' to '&'.)
_ANCHOR_OR_ALIAS = re.compile(r"[&*](?<![^\s,\[\]{}][&*])[^\s,\[\]{}]")


def _has_document_marker(text: str) -> bool:
    """'---', '...' or a '%' directive at the start of a line: several documents."""
    return text.startswith(("---", "...", "%")) or any(f"\n{m}" in text for m in ("---", "...", "%"))


@dataclass(frozen=True)
class Split:
    skeleton: str  # the file with `pages: []` and the page lines blank
    indent: int  # columns before each item's '-'
    items: list[tuple[int, str]]  # (0-based first line, text) of each page item


def split_pages(text: str) -> Split | None:
    """The file's page items and the rest, or None when it must be parsed whole.

    Regular expressions do the scanning (in C): a 1000-page spec has 60,000 lines.
    """
    if "\t" in text or "\r" in text or _ANCHOR_OR_ALIAS.search(text) or _has_document_marker(text):
        return None
    keys = list(_PAGES_KEY.finditer(text))
    if len(keys) != 1:
        return None
    block_start = keys[0].end() + 1
    block_end_match = _BLOCK_END.search(text, block_start)
    block_end = block_end_match.start() if block_end_match else len(text)
    block = text[block_start:block_end]
    first = re.search(r"^( *)-(?: |$)", block, re.M)
    if first is None or re.search(r"^ *[^ #\n]", block[:first.start()], re.M):
        return None
    indent = first.group(1)
    if len(indent) >= len(_STRAY_LINE) or _STRAY_LINE[len(indent)].search(block):
        return None  # something other than an item at the items' level or left of it
    item_offsets = [m.start() for m in re.finditer(rf"^{indent}-(?: |$)", block, re.M)]
    if len(item_offsets) < MIN_PAGES:
        return None
    items = []
    bounds = [*item_offsets, len(block)]
    line = text.count("\n", 0, block_start + item_offsets[0])  # 0-based line of the first item
    for k in range(len(item_offsets)):
        chunk = block[bounds[k]:bounds[k + 1]]
        items.append((line, chunk[:-1] if chunk.endswith("\n") else chunk))
        line += chunk.count("\n")
    blanked = "\n" * block.count("\n")
    skeleton = text[:keys[0].start()] + "pages: []\n" + blanked + text[block_end:]
    return Split(skeleton, len(indent), items)
