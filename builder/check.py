"""Stage 5, check: output rules over the rendered FileTree, before anything is written.

Each rule takes the tree and returns problems located in the output file. These are
mpforge's own fast rules; tests also run third-party Alipay tooling over the output.
"""

from __future__ import annotations

import json
import re
from functools import lru_cache

from .errors import Problem, line_and_column
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


# A tag or a comment (regex scanning runs in C; HTMLParser was the slowest part of
# checking a large build). Attribute values may hold '>' inside quotes.
TAG = re.compile(r"""<!--.*?-->|<(/?)([A-Za-z][\w:.-]*)((?:[^>"']|"[^"]*"|'[^']*')*?)(/?)>""", re.S)


# The per-file rules depend on nothing but the file: a rebuild re-checks changed files
# only. Keyed by the tree's own bytes objects, so the caches hold no copies.
@lru_cache(maxsize=4096)
def _tag_problems(path: str, content: bytes) -> tuple[Problem, ...]:
    """AXML is XML-like: every tag must close or self-close, in order."""
    text = content.decode("utf-8")
    problems = []
    stack: list[tuple[str, int]] = []
    for match in TAG.finditer(text):
        closing, name, _, self_closing = match.groups()
        if name is None or self_closing:
            continue
        if not closing:
            stack.append((name, match.start()))
            continue
        if stack and stack[-1][0] == name:
            stack.pop()
            continue
        line, col = line_and_column(text, match.start())
        if all(tag != name for tag, _ in stack):
            problems.append(Problem(f"stray closing tag </{name}>", file=path, line=line, column=col))
            continue
        opened, at = stack[-1]
        oline, ocol = line_and_column(text, at)
        problems.append(Problem(f"</{name}> closes <{opened}> opened at {oline}:{ocol}",
                                file=path, line=line, column=col))
        # Resynchronise on the matching tag so one mistake is reported once.
        while stack.pop()[0] != name:
            pass
    for name, at in stack:
        line, col = line_and_column(text, at)
        problems.append(Problem(f"<{name}> is never closed", file=path, line=line, column=col))
    return tuple(problems)


def axml_well_formed(tree: FileTree) -> list[Problem]:
    problems = []
    for path in tree:
        if path.endswith(".axml"):
            problems.extend(_tag_problems(path, tree[path]))
    return problems


# A clean binding, or a bare '{{' / '}}' outside one (group 2; group 1 is BINDING's).
BINDING_OR_BRACES = re.compile(BINDING.pattern + r"|(\{\{|\}\})")


def bindings_clean(tree: FileTree) -> list[Problem]:
    """Every `{{` in AXML opens a plain expression: no merchant text turned into code."""
    return [problem for path in tree if path.endswith(".axml") for problem in _binding_problems(path, tree[path])]


@lru_cache(maxsize=4096)
def _binding_problems(path: str, content: bytes) -> tuple[Problem, ...]:
    text = content.decode("utf-8")
    for match in BINDING_OR_BRACES.finditer(text):
        if match.group(2):
            line, col = line_and_column(text, match.start())
            return (Problem(f"stray '{match.group(2)}' in AXML: bind merchant text through page data",
                            file=path, line=line, column=col),)
    return ()


def paths_safe(tree: FileTree) -> list[Problem]:
    """Output paths are plain relative segments that work in every Alipay tool."""
    return [Problem("output file name is not a safe path; use ASCII letters, digits, '-', '_' and '.'",
                    file=path)
            for path in tree if not SAFE_PATH.match(path) or ".." in path.split("/")]


def assets_exist(tree: FileTree) -> list[Problem]:
    problems = []
    for path in tree:
        if path.endswith((".axml", ".js", ".json", ".acss")):
            for asset in _asset_refs(tree[path]):
                if asset not in tree:
                    problems.append(Problem(f"references missing asset {asset}", file=path))
    return problems


@lru_cache(maxsize=8192)
def _asset_refs(content: bytes) -> tuple[str, ...]:
    return tuple(match.group(1) for match in ASSET_REF.finditer(content.decode("utf-8")))


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
