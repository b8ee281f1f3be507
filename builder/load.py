"""Stage 1, load: a spec file becomes plain data plus the line/column of every node.

PyYAML's composer gives each node a start mark; we build the data ourselves from the
node tree so that every mapping key and value keeps its position, duplicate keys are
caught, and alias expansion ("billion laughs") is bounded. JSON is read the same way
(it is YAML), so JSON specs get the same located errors.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import yaml

from .errors import Problem, SpecError, line_and_column
from .model import LoadedSpec, Mark, PathKey, format_path
from .page_chunks import Split, split_pages

MAX_SPEC_BYTES = 5 * 1024 * 1024
# Values after alias expansion. A 200-page spec has about 20,000; 250,000 is more than
# fits Alipay's 2 MB package, and keeps loading any spec under about a second and 100 MB.
MAX_NODES = 250_000
MAX_DEPTH = 64

MAP_TAG = "tag:yaml.org,2002:map"
SEQ_TAG = "tag:yaml.org,2002:seq"

_BaseLoader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
STR_TAG = "tag:yaml.org,2002:str"
# The scalar types a spec value can be: the ones YAML resolves plain text to. Other tags
# the safe loader knows (!!binary, which decodes base64 to bytes) make values no field
# expects, and a spec has no use for them.
SCALAR_TAGS = frozenset({STR_TAG, *(f"tag:yaml.org,2002:{kind}" for kind in ("int", "float", "bool", "null",
                                                                             "timestamp"))})
UTF8_BOM = b"\xef\xbb\xbf"


class _Loader(_BaseLoader):  # type: ignore[valid-type, misc]
    """The safe loader with a shortcut in tag resolution, its slowest step on large specs:
    a plain scalar can only be a number, bool, null, date or merge key when its first
    character starts one of those patterns; everything else is a string."""

    def resolve(self, kind: type, value: Any, implicit: tuple[bool, bool]) -> str:
        if kind is yaml.ScalarNode and (not implicit[0] or (value and value[0] not in self.yaml_implicit_resolvers)):
            return STR_TAG
        tag: str = super().resolve(kind, value, implicit)
        return tag


def load_spec(path: str | Path, memo: LoadMemo | None = None) -> LoadedSpec:
    """Read and parse a spec file; raise SpecError with a location on any failure.

    `memo` carries the page items of the previous spec parsed with it, so that a
    rebuild parses only the pages whose text changed (see page_chunks).
    """
    path = Path(path)
    name = path.name
    try:
        with open(path, "rb") as handle:
            # Read one byte past the limit rather than trusting stat() alone: the file may
            # be growing, or be a pipe whose size stat() does not know.
            size = os.fstat(handle.fileno()).st_size
            raw = b"" if size > MAX_SPEC_BYTES else handle.read(MAX_SPEC_BYTES + 1)
        if size > MAX_SPEC_BYTES or len(raw) > MAX_SPEC_BYTES:
            amount = f"{size} bytes" if size > MAX_SPEC_BYTES else f"more than {MAX_SPEC_BYTES} bytes"
            raise SpecError([Problem(
                f"spec is {amount}, over the {MAX_SPEC_BYTES} byte limit; it was not parsed",
                file=name, line=1, column=1, hint="split large content into assets or fewer pages")])
    except OSError as exc:
        raise SpecError([Problem(f"cannot read spec: {exc.strerror}", file=name)]) from None
    return parse_spec(raw, path, memo)


def parse_spec(raw: bytes, path: Path, memo: LoadMemo | None = None) -> LoadedSpec:
    spec = _parse(raw, path, memo or LoadMemo())
    spec.sha256 = hashlib.sha256(raw).hexdigest()
    return spec


def _parse(raw: bytes, path: Path, memo: LoadMemo) -> LoadedSpec:
    name = path.name
    # Editors on Windows (Notepad among them) start UTF-8 files with a byte-order mark.
    # It is not content: drop it before anything counts lines and columns, so that
    # positions on the first line are the ones the editor shows.
    body = raw.removeprefix(UTF8_BOM)
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = body.count(b"\n", 0, exc.start) + 1
        line_start = body.rfind(b"\n", 0, exc.start) + 1
        # Columns count characters, as editors do (the line may hold CJK before the bad byte).
        column = len(body[line_start:exc.start].decode("utf-8", "replace")) + 1
        raise SpecError([Problem(f"invalid UTF-8 byte 0x{body[exc.start]:02x}", file=name,
                                 line=line, column=column, hint="save the file as UTF-8")]) from None
    if "\x00" in text:
        line, column = line_and_column(text, text.index("\x00"))
        raise SpecError([Problem("NUL character in spec", file=name, line=line, column=column)])

    split = split_pages(text)
    if split is not None:
        spec = _parse_by_page(split, path, memo)
        if spec is not None:
            return spec
    return _parse_whole(text, path)


def _parse_whole(text: str, path: Path) -> LoadedSpec:
    name = path.name
    try:
        node = _compose(text, name)
    except yaml.MarkedYAMLError as exc:
        raise SpecError([_yaml_problem(exc, name, text)]) from None
    except yaml.YAMLError as exc:
        raise SpecError([Problem(f"YAML error: {exc}", file=name)]) from None

    spec = LoadedSpec(path=path, data=None)
    if node is None:
        raise SpecError([Problem("spec is empty", file=name, line=1, column=1,
                                 hint="start from 'mpforge new'")])
    builder = _DataBuilder(spec)
    spec.data = builder.build(node, (), 0)
    if builder.problems:
        raise SpecError(builder.problems)
    return spec


@dataclass(frozen=True)
class ParsedItem:
    """One page item parsed on its own: its data and marks, placed as pages[index] with
    its first line at `first_line` (0-based)."""

    data: Any
    values: dict[PathKey, Mark]
    keys: dict[PathKey, Mark]
    nodes: int
    index: int = 0
    first_line: int = 0

    def place(self, index: int, first_line: int) -> ParsedItem:
        """The item at a new position (an edit above moved it): new marks, same data.

        A new item rather than a changed one: the memo's item may be placed elsewhere
        by the next build, and the data must stay the very same object (validation is
        reused for it by identity).
        """
        if (index, first_line) == (self.index, self.first_line):
            return self
        shift = first_line - self.first_line
        prefix = ("pages", index)
        return replace(self, index=index, first_line=first_line,
                       values={(*prefix, *path[2:]): Mark(m.line + shift, m.column) for path, m in self.values.items()},
                       keys={(*prefix, *path[2:]): Mark(m.line + shift, m.column) for path, m in self.keys.items()})


@dataclass
class LoadMemo:
    """The load stage's part of a BuildSession: page items of the last spec parsed by
    page, by their text."""

    items_by_text: dict[str, ParsedItem] = field(default_factory=dict)


def _parse_by_page(split: Split, path: Path, memo: LoadMemo) -> LoadedSpec | None:
    """Parse the skeleton and each page item (reusing unchanged ones); None on any
    problem, so that the whole-file parse reports it exactly as it always does."""
    try:
        spec = _parse_whole(split.skeleton, path)
    except SpecError:
        return None
    if not isinstance(spec.data, dict) or spec.data.get("pages") != []:
        return None
    parsed: dict[str, ParsedItem] = {}
    pages = []
    nodes = len(spec.values)
    for index, (first_line, text) in enumerate(split.items):
        known = parsed.get(text) or memo.items_by_text.get(text) or _parse_item(text, path)
        if known is None:
            return None
        parsed[text] = known
        item = known.place(index, first_line)
        nodes += item.nodes
        spec.values.update(item.values)
        spec.keys.update(item.keys)
        pages.append(item.data)
    if nodes > MAX_NODES:
        return None
    spec.values[("pages",)] = Mark(split.items[0][0] + 1, split.indent + 1)
    spec.data["pages"] = pages
    memo.items_by_text = parsed
    return spec


def _parse_item(text: str, path: Path) -> ParsedItem | None:
    try:
        node = _compose(text, path.name, outer_depth=1)  # inside the top-level mapping
    except (yaml.YAMLError, SpecError):
        return None
    if not isinstance(node, yaml.SequenceNode) or len(node.value) != 1:
        return None
    # Marks as if the item were pages[0] starting on the file's first line; place() moves them.
    item = LoadedSpec(path=path, data=None)
    builder = _DataBuilder(item)
    try:
        data = builder.build(node.value[0], ("pages", 0), 2)  # at the depth of pages[i] in the whole file
    except SpecError:
        return None
    if builder.problems:
        return None
    return ParsedItem(data, item.values, item.keys, builder.count)


def _tag(tag: str) -> str:
    """A tag as written in the spec: 'tag:yaml.org,2002:python/object' -> '!!python/object'."""
    return "!!" + tag[len("tag:yaml.org,2002:"):] if tag.startswith("tag:yaml.org,2002:") else tag


def _short(value: str, limit: int = 40) -> str:
    return repr(value if len(value) <= limit else value[:limit] + "…")


def _yaml_problem(exc: yaml.MarkedYAMLError, name: str, text: str) -> Problem:
    mark = exc.problem_mark or exc.context_mark
    message = exc.problem or str(exc)
    hint = None
    if mark is not None and text[mark.index:mark.index + 1] == "\t":
        hint = "YAML indentation must use spaces, not tabs"
    elif "mapping values are not allowed" in message:
        hint = "put text containing ': ' in quotes"
    elif (exc.context and exc.context.startswith("while ") and exc.context_mark is not None and mark is not None
          and (exc.context_mark.line, exc.context_mark.column) != (mark.line, mark.column)):
        hint = f"it starts at line {exc.context_mark.line + 1}, column {exc.context_mark.column + 1}"
    if exc.context:
        message = f"{exc.context}: {message}"
    return Problem(f"YAML syntax error: {message}", file=name,
                   line=mark.line + 1 if mark else None,
                   column=mark.column + 1 if mark else None, hint=hint)


def _compose(text: str, name: str, outer_depth: int = 0) -> yaml.Node | None:
    """yaml.compose, rebuilt on the parser's event stream with limits checked as it goes.

    libyaml's own composer recurses in C: a few thousand nested brackets crash the
    interpreter (a segmentation fault, not an exception). Here nesting deeper than
    MAX_DEPTH and alias expansion past MAX_NODES are refused at the event that crosses
    the limit, before anything is expanded, so a "billion laughs" file costs no more
    time or memory than its own size.
    """
    loader = _Loader(text)
    try:
        return _Composer(loader, name, outer_depth).compose()
    finally:
        loader.dispose()


class _Composer:
    def __init__(self, loader: Any, name: str, outer_depth: int = 0):
        self.loader = loader
        self.name = name
        self.outer_depth = outer_depth  # levels above the text composed (a page item: 1)
        self.anchors: dict[str, yaml.Node] = {}
        self.sizes: dict[str, int] = {}  # anchor -> node count once expanded (set when complete)

    def _refuse(self, mark: Any, message: str, hint: str | None = None) -> SpecError:
        return SpecError([Problem(message, file=self.name, line=mark.line + 1, column=mark.column + 1, hint=hint)])

    def compose(self) -> yaml.Node | None:
        loader = self.loader
        loader.get_event()  # stream start
        if loader.check_event(yaml.StreamEndEvent):
            return None
        loader.get_event()  # document start
        root = self._node()
        loader.get_event()  # document end
        if not loader.check_event(yaml.StreamEndEvent):
            event = loader.get_event()
            raise yaml.composer.ComposerError("expected a single document in the stream", root.start_mark,
                                              "but found another document", event.start_mark)
        return root

    def _node(self) -> yaml.Node:
        get_event, resolve = self.loader.get_event, self.loader.resolve
        Scalar, Alias = yaml.ScalarEvent, yaml.AliasEvent
        SeqStart, MapStart = yaml.SequenceStartEvent, yaml.MappingStartEvent
        ScalarNode, SequenceNode, MappingNode = yaml.ScalarNode, yaml.SequenceNode, yaml.MappingNode
        # Each open collection: [node, anchor, children, expanded size].
        stack: list[list[Any]] = []
        total = 0  # nodes in the document once every alias is expanded
        aliased = False
        node: yaml.Node
        while True:
            event = get_event()
            cls = event.__class__
            if cls is Scalar:
                tag = event.tag
                if tag is None or tag == "!":
                    tag = resolve(ScalarNode, event.value, event.implicit)
                node = ScalarNode(tag, event.value, event.start_mark, event.end_mark, event.style)
                size = 1
                if event.anchor is not None:
                    self._add_anchor(event, node, stack)
                    self.sizes[event.anchor] = 1
            elif cls is SeqStart or cls is MapStart:
                if len(stack) + self.outer_depth >= MAX_DEPTH:
                    raise self._refuse(event.start_mark, f"spec is nested more than {MAX_DEPTH} levels deep",
                                       hint="a spec needs a handful of levels; check the brackets and indentation")
                kind = SequenceNode if cls is SeqStart else MappingNode
                tag = event.tag
                if tag is None or tag == "!":
                    tag = resolve(kind, None, event.implicit)
                node = kind(tag, [], event.start_mark, None, event.flow_style)
                if event.anchor is not None:
                    self._add_anchor(event, node, stack)
                stack.append([node, event.anchor, node.value, 1])
                total += 1
                continue
            elif cls is Alias:
                node, size = self._alias(event, stack)
                aliased = True
            else:  # sequence or mapping end
                node, anchor, children, size = stack.pop()
                node.end_mark = event.end_mark
                if node.__class__ is MappingNode:
                    node.value = list(zip(children[0::2], children[1::2], strict=True))
                if anchor is not None:
                    self.sizes[anchor] = size
                if not stack:
                    return node
                parent = stack[-1]
                parent[2].append(node)
                parent[3] += size
                continue
            total += size
            if total > MAX_NODES:
                if aliased:
                    raise self._refuse(event.start_mark, f"spec expands to more than {MAX_NODES} values",
                                       hint="YAML aliases (*name) are expanding too far; write the data out")
                raise self._refuse(event.start_mark, f"spec has more than {MAX_NODES} values",
                                   hint="split large content into assets or fewer pages")
            if not stack:
                return node
            parent = stack[-1]
            parent[2].append(node)
            parent[3] += size

    def _add_anchor(self, event: Any, node: yaml.Node, stack: list[list[Any]]) -> None:
        anchor = event.anchor
        if anchor in self.anchors:
            first = self.anchors[anchor].start_mark
            raise self._refuse(event.start_mark, f"duplicate anchor '&{anchor}'",
                               hint=f"first defined at line {first.line + 1}, column {first.column + 1}")
        self.anchors[anchor] = node

    def _alias(self, event: Any, stack: list[list[Any]]) -> tuple[yaml.Node, int]:
        anchor = event.anchor
        if anchor not in self.sizes and anchor in self.anchors:  # defined, not yet complete
            raise self._refuse(event.start_mark, f"alias '*{anchor}' refers to a collection that contains it",
                               hint="recursive YAML aliases are not supported")
        if anchor not in self.anchors:
            raise self._refuse(event.start_mark, f"undefined alias '*{anchor}'",
                               hint=f"define it first with '&{anchor}'")
        return self.anchors[anchor], self.sizes[anchor]


class _DataBuilder:
    """Turns a composed node tree into Python data, recording marks as it goes."""

    def __init__(self, spec: LoadedSpec):
        self.spec = spec
        self.count = 0
        self.problems: list[Problem] = []
        self.constructor = _Loader("")

    def build(self, node: yaml.Node, path: PathKey, depth: int) -> Any:
        self.count += 1
        if self.count > MAX_NODES:
            raise SpecError([Problem(
                f"spec expands to more than {MAX_NODES} values", file=self.spec.display_name,
                line=node.start_mark.line + 1, column=node.start_mark.column + 1,
                hint="YAML aliases (*name) are expanding too far; write the data out")])
        if depth > MAX_DEPTH:
            raise SpecError([Problem(
                f"spec is nested more than {MAX_DEPTH} levels deep", file=self.spec.display_name,
                line=node.start_mark.line + 1, column=node.start_mark.column + 1,
                hint="a spec needs a handful of levels; check the brackets and indentation")])
        self.spec.values[path] = Mark(node.start_mark.line + 1, node.start_mark.column + 1)
        if isinstance(node, yaml.MappingNode):
            if node.tag != MAP_TAG:
                return self._unsupported_tag(node, path)
            return self._mapping(node, path, depth)
        if isinstance(node, yaml.SequenceNode):
            if node.tag != SEQ_TAG:
                return self._unsupported_tag(node, path)
            return [self.build(item, (*path, i), depth + 1) for i, item in enumerate(node.value)]
        return self._scalar(node, path)

    def _unsupported_tag(self, node: yaml.Node, path: PathKey) -> None:
        # A tagged list or mapping (!!python/object/apply [...], !!set, !!omap) would
        # otherwise pass as plain data with its tag silently dropped.
        self.problems.append(self._at(node, path, f"unsupported YAML tag {_tag(node.tag)!r}",
                                      hint="remove the '!' tag"))
        return None

    def _scalar(self, node: yaml.Node, path: PathKey) -> Any:
        if node.tag == STR_TAG:
            return node.value
        if node.tag not in SCALAR_TAGS:
            self.problems.append(self._at(node, path, f"unsupported YAML tag {_tag(node.tag)!r}",
                                          hint="remove the '!' tag"))
            return None
        try:
            return self.constructor.construct_object(node, deep=True)
        except (ValueError, OverflowError, KeyError, AttributeError) as exc:
            # Text that does not read as its type: a plain scalar that looks like a date or
            # number but is not one (2026-13-45, an integer of thousands of digits), or an
            # explicit tag on the wrong text (!!bool maybe, !!timestamp soon). PyYAML's
            # constructors raise bare errors for these.
            kind = node.tag.rsplit(":", 1)[-1]
            what = {"int": "number", "float": "number", "timestamp": "date", "bool": "boolean"}.get(kind, kind)
            if self.constructor.resolve(yaml.ScalarNode, node.value, (True, False)) != node.tag:
                reason = "not true or false" if kind == "bool" else f"not a {what}"
            else:
                reason = "too many digits" if kind == "int" else str(exc)
            self.problems.append(self._at(node, path, f"invalid {what} {_short(node.value)}: {reason}",
                                          hint="put it in quotes if it is meant as text"))
            return None

    def _mapping(self, node: yaml.MappingNode, path: PathKey, depth: int) -> dict[str, Any]:
        result: dict[str, Any] = {}
        for key_node, value_node in node.value:
            if not isinstance(key_node, yaml.ScalarNode):
                self.problems.append(self._at(key_node, path, "mapping keys must be plain text"))
                continue
            if key_node.tag == "tag:yaml.org,2002:merge":
                self.problems.append(self._at(key_node, path, "YAML merge keys (<<) are not supported",
                                              hint="write the keys out"))
                continue
            key = self._scalar(key_node, path)
            key = str(key) if not isinstance(key, str) else key
            child = (*path, key)
            if key in result:
                first = self.spec.keys[child]
                self.problems.append(self._at(
                    key_node, child, f"duplicate key '{key}'",
                    hint=f"first defined at line {first.line}, column {first.column}"))
                continue
            self.spec.keys[child] = Mark(key_node.start_mark.line + 1, key_node.start_mark.column + 1)
            result[key] = self.build(value_node, child, depth + 1)
        return result

    def _at(self, node: yaml.Node, path: PathKey, message: str, hint: str | None = None) -> Problem:
        return Problem(message, path=format_path(path), file=self.spec.display_name,
                       line=node.start_mark.line + 1, column=node.start_mark.column + 1, hint=hint)
