"""Stage 5, check: output rules over the rendered FileTree, before anything is written.

Each rule takes the tree and returns problems located in the output file. These are
mpforge's own fast rules; tests also run third-party Alipay tooling over the output.
"""

from __future__ import annotations

import json
import re
from html.parser import HTMLParser

from .errors import Problem
from .filetree import FileTree

PAGE_FILES = (".axml", ".acss", ".js", ".json")
SAFE_PATH = re.compile(r"^[A-Za-z0-9_\-.@]+(/[A-Za-z0-9_\-.@]+)*$")
# What a data binding may contain: identifiers, numbers, quoted literals, operators.
# Merchant text never belongs in a binding, so anything else means text leaked into AXML.
BINDING = re.compile(r"\{\{((?:[\w\s.\[\]()!=&|?:+\-*/%,]|'[^'{}<>]*')*)\}\}")
ASSET_REF = re.compile(r"""["'(]/?(assets/[^"')\s]+)""")


def _app_json(tree: FileTree) -> dict:
    return json.loads(tree.text("app.json")) if "app.json" in tree else {}


def pages_complete(tree: FileTree) -> list[Problem]:
    """Every page in app.json has its .axml, .acss, .js and .json."""
    if "app.json" not in tree:
        return [Problem("app.json is missing", file="app.json")]
    problems = []
    for page in _app_json(tree).get("pages", []):
        for ext in PAGE_FILES:
            if f"{page}{ext}" not in tree:
                problems.append(Problem(f"page '{page}' has no {ext} file", file="app.json"))
    return problems


def tabbar_valid(tree: FileTree) -> list[Problem]:
    """tabBar has 2 to 5 items and each points at a page in app.json."""
    app = _app_json(tree)
    tabbar = app.get("tabBar")
    if not tabbar:
        return []
    items = tabbar.get("items", [])
    problems = []
    if not 2 <= len(items) <= 5:
        problems.append(Problem(f"tabBar has {len(items)} items; Alipay needs 2 to 5", file="app.json"))
    for item in items:
        if item.get("pagePath") not in app.get("pages", []):
            problems.append(Problem(f"tabBar item '{item.get('name')}' points at missing page "
                                    f"'{item.get('pagePath')}'", file="app.json"))
    return problems


def json_parses(tree: FileTree) -> list[Problem]:
    problems = []
    for path in tree:
        if path.endswith(".json"):
            try:
                json.loads(tree.text(path))
            except ValueError as exc:
                problems.append(Problem(f"invalid JSON: {exc}", file=path))
    return problems


class _TagBalance(HTMLParser):
    """Tracks open tags; AXML is XML-like, so every tag must close or self-close."""

    def __init__(self, path: str):
        super().__init__(convert_charrefs=True)
        self.path = path
        self.stack: list[tuple[str, tuple[int, int]]] = []
        self.problems: list[Problem] = []

    def handle_starttag(self, tag, attrs):
        self.stack.append((tag, self.getpos()))

    def handle_endtag(self, tag):
        line, col = self.getpos()
        if tag not in (name for name, _ in self.stack):
            self.problems.append(Problem(f"stray closing tag </{tag}>", file=self.path, line=line, column=col + 1))
        else:
            opened, (oline, ocol) = self.stack[-1]
            if opened != tag:
                self.problems.append(Problem(f"</{tag}> closes <{opened}> opened at {oline}:{ocol + 1}",
                                             file=self.path, line=line, column=col + 1))
            # Resynchronise on the matching tag so one mistake is reported once.
            while self.stack.pop()[0] != tag:
                pass

    def close(self):
        super().close()
        for tag, (line, col) in self.stack:
            self.problems.append(Problem(f"<{tag}> is never closed", file=self.path, line=line, column=col + 1))


def axml_well_formed(tree: FileTree) -> list[Problem]:
    problems = []
    for path in tree:
        if path.endswith(".axml"):
            parser = _TagBalance(path)
            parser.feed(tree.text(path))
            parser.close()
            problems.extend(parser.problems)
    return problems


def bindings_clean(tree: FileTree) -> list[Problem]:
    """Every `{{` in AXML opens a plain expression: no merchant text turned into code."""
    problems = []
    for path in tree:
        if not path.endswith(".axml"):
            continue
        text = tree.text(path)
        spans = [m.span() for m in BINDING.finditer(text)]
        for token in ("{{", "}}"):
            offset = _outside(text, token, spans)
            if offset >= 0:
                line = text.count("\n", 0, offset) + 1
                col = offset - (text.rfind("\n", 0, offset) + 1) + 1
                problems.append(Problem(f"stray '{token}' in AXML: bind merchant text through page data",
                                        file=path, line=line, column=col))
                break
    return problems


def _outside(text: str, token: str, spans: list[tuple[int, int]]) -> int:
    """Offset of the first `token` not inside a clean binding, or -1."""
    start = 0
    while (index := text.find(token, start)) >= 0:
        if not any(a <= index < b for a, b in spans):
            return index
        start = index + 1
    return -1


def paths_safe(tree: FileTree) -> list[Problem]:
    """Output paths are plain relative segments that work in every Alipay tool."""
    return [Problem("output file name is not a safe path; use ASCII letters, digits, '-', '_' and '.'",
                    file=path)
            for path in tree if not SAFE_PATH.match(path) or ".." in path.split("/")]


def assets_exist(tree: FileTree) -> list[Problem]:
    problems = []
    for path in tree:
        if path.endswith((".axml", ".js", ".json", ".acss")):
            for match in ASSET_REF.finditer(tree.text(path)):
                if match.group(1) not in tree:
                    problems.append(Problem(f"references missing asset {match.group(1)}", file=path))
    return problems


# Alipay's limit for the main package; mpforge emits no subpackages, so that is everything.
MAIN_PACKAGE_BYTES = 2 * 1024 * 1024


def package_size(tree: FileTree) -> list[Problem]:
    """Warn when the output is over Alipay's main-package limit, naming the largest files."""
    total = sum(len(data) for _, data in tree.items())
    if total <= MAIN_PACKAGE_BYTES:
        return []
    largest = sorted(tree.items(), key=lambda item: -len(item[1]))[:3]
    names = ", ".join(f"{path} ({len(data) // 1024} KiB)" for path, data in largest)
    return [Problem(f"the output is {total / 1048576:.1f} MB, over Alipay's 2 MB main-package limit",
                    hint=f"largest: {names}", severity="warning")]


CORE_CHECKS = [pages_complete, tabbar_valid, json_parses, axml_well_formed, bindings_clean,
               paths_safe, assets_exist, package_size]
