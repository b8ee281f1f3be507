"""Stage 1, load: a spec file becomes plain data plus the line/column of every node.

PyYAML's composer gives each node a start mark; we build the data ourselves from the
node tree so that every mapping key and value keeps its position, duplicate keys are
caught, and alias expansion ("billion laughs") is bounded. JSON is read the same way
(it is YAML), so JSON specs get the same located errors.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from .errors import Problem, SpecError

SPEC_FILENAMES = ("mpforge.yaml", "mpforge.yml", "mpforge.json")
MAX_SPEC_BYTES = 5 * 1024 * 1024
MAX_NODES = 1_000_000  # after alias expansion; far above any real spec
MAX_DEPTH = 64

PathKey = tuple  # ('pages', 2, 'blocks', 0, 'type')

_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


@dataclass(frozen=True)
class Mark:
    line: int  # 1-based
    column: int  # 1-based


@dataclass
class LoadedSpec:
    """The raw spec: data as parsed, and where each node came from."""

    path: Path
    data: Any
    values: dict[PathKey, Mark] = field(default_factory=dict)
    keys: dict[PathKey, Mark] = field(default_factory=dict)

    @property
    def display_name(self) -> str:
        return self.path.name

    @property
    def root(self) -> Path:
        return self.path.parent

    def mark(self, path: PathKey, *, key: bool = False) -> Mark | None:
        """The closest known position for `path`, walking up to its parents."""
        path = tuple(path)
        if key and path in self.keys:
            return self.keys[path]
        while path:
            if path in self.values:
                return self.values[path]
            path = path[:-1]
        return self.values.get(())

    def problem(self, path: PathKey, message: str, *, hint: str | None = None,
                key: bool = False, severity: str = "error") -> Problem:
        mark = self.mark(path, key=key)
        return Problem(
            message=message,
            path=format_path(path),
            file=self.display_name,
            line=mark.line if mark else None,
            column=mark.column if mark else None,
            hint=hint,
            severity=severity,  # type: ignore[arg-type]
        )


def format_path(path: PathKey) -> str:
    """('pages', 2, 'blocks', 0, 'type') -> 'pages[2].blocks[0].type'."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out


def find_spec(target: str | Path | None) -> Path:
    """Resolve a SPEC|DIR command-line argument to a spec file."""
    path = Path(target) if target else Path.cwd()
    if path.is_dir():
        for name in SPEC_FILENAMES:
            if (path / name).is_file():
                return path / name
        raise SpecError([Problem(
            f"no spec found in {path}",
            hint=f"expected one of {', '.join(SPEC_FILENAMES)}; create one with 'mpforge new'",
        )])
    if not path.is_file():
        raise SpecError([Problem(f"spec file not found: {path}")])
    return path


def load_spec(path: str | Path) -> LoadedSpec:
    """Read and parse a spec file; raise SpecError with a location on any failure."""
    path = Path(path)
    name = path.name
    try:
        size = path.stat().st_size
        if size > MAX_SPEC_BYTES:
            raise SpecError([Problem(
                f"spec is {size} bytes, over the {MAX_SPEC_BYTES} byte limit", file=name,
                hint="split large content into assets or fewer pages")])
        raw = path.read_bytes()
    except OSError as exc:
        raise SpecError([Problem(f"cannot read spec: {exc.strerror}", file=name)]) from None
    return parse_spec(raw, path)


def parse_spec(raw: bytes, path: Path) -> LoadedSpec:
    name = path.name
    if raw.startswith(b"\xef\xbb\xbf"):
        raise SpecError([Problem("file starts with a byte-order mark (BOM)", file=name,
                                 line=1, column=1, hint="save the file as UTF-8 without BOM")])
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        column = exc.start - (raw.rfind(b"\n", 0, exc.start) + 1) + 1
        raise SpecError([Problem(f"invalid UTF-8 byte 0x{raw[exc.start]:02x}", file=name,
                                 line=line, column=column, hint="save the file as UTF-8")]) from None
    if "\x00" in text:
        offset = text.index("\x00")
        line = text.count("\n", 0, offset) + 1
        column = offset - (text.rfind("\n", 0, offset) + 1) + 1
        raise SpecError([Problem("NUL character in spec", file=name, line=line, column=column)])

    try:
        node = yaml.compose(text, Loader=_Loader)
    except yaml.MarkedYAMLError as exc:
        raise SpecError([_yaml_problem(exc, name, text)]) from None
    except yaml.YAMLError as exc:
        raise SpecError([Problem(f"YAML error: {exc}", file=name)]) from None
    except RecursionError:
        raise SpecError([Problem("spec is nested too deeply", file=name,
                                 hint=f"keep nesting under {MAX_DEPTH} levels")]) from None

    spec = LoadedSpec(path=path, data=None)
    if node is None:
        raise SpecError([Problem("spec is empty", file=name, line=1, column=1,
                                 hint="start from 'mpforge new'")])
    builder = _DataBuilder(spec)
    spec.data = builder.build(node, (), 0)
    if builder.problems:
        raise SpecError(builder.problems)
    return spec


def _yaml_problem(exc: yaml.MarkedYAMLError, name: str, text: str) -> Problem:
    mark = exc.problem_mark or exc.context_mark
    message = exc.problem or str(exc)
    hint = None
    if mark is not None and text[mark.index:mark.index + 1] == "\t":
        hint = "YAML indentation must use spaces, not tabs"
    if exc.context:
        message = f"{exc.context}: {message}"
    return Problem(f"YAML syntax error: {message}", file=name,
                   line=mark.line + 1 if mark else None,
                   column=mark.column + 1 if mark else None, hint=hint)


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
                f"spec expands to more than {MAX_NODES} nodes", file=self.spec.display_name,
                line=node.start_mark.line + 1, column=node.start_mark.column + 1,
                hint="YAML aliases (*name) are expanding too far; write the data out")])
        if depth > MAX_DEPTH:
            raise SpecError([Problem(
                f"spec is nested more than {MAX_DEPTH} levels deep", file=self.spec.display_name,
                line=node.start_mark.line + 1, column=node.start_mark.column + 1)])
        self.spec.values[path] = Mark(node.start_mark.line + 1, node.start_mark.column + 1)
        if isinstance(node, yaml.MappingNode):
            return self._mapping(node, path, depth)
        if isinstance(node, yaml.SequenceNode):
            return [self.build(item, (*path, i), depth + 1) for i, item in enumerate(node.value)]
        return self._scalar(node, path)

    def _scalar(self, node: yaml.Node, path: PathKey) -> Any:
        try:
            return self.constructor.construct_object(node, deep=True)
        except yaml.YAMLError:
            # Tags the safe loader does not know (e.g. !python/object) are not spec values.
            self.problems.append(self._at(node, path, f"unsupported YAML tag {node.tag!r}",
                                          hint="remove the '!' tag"))
            return None

    def _mapping(self, node: yaml.MappingNode, path: PathKey, depth: int) -> dict:
        result: dict = {}
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
