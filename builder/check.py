"""Stage 5, check: output rules over the rendered FileTree, before anything is written.

Each rule takes the tree and returns problems located in the output file. These are
mpforge's own fast rules; tests also run third-party Alipay tooling over the output.
"""

from __future__ import annotations

import json
import posixpath
import re
from functools import lru_cache
from typing import Any

from . import axml, expr
from .errors import Problem, line_and_column
from .filetree import FileTree

PAGE_FILES = (".axml", ".acss", ".js", ".json")
SAFE_PATH = re.compile(r"^[A-Za-z0-9_\-.@]+(/[A-Za-z0-9_\-.@]+)*$")
ASSET_REF = re.compile(r"""["'(]/?(assets/[^"')\s]+)""")
# require() of a relative or absolute path literal; a bare name ('path') is a module, not a
# file. The lookbehind follows the literal `require` so the scan can search for that word.
REQUIRE = re.compile(r"""require(?<![\w$.]require)\s*\(\s*(?:'([./][^'\n]*)'|"([./][^"\n]*)")\s*\)""")


def _app_json(tree: FileTree) -> dict[str, Any]:
    app = json.loads(tree.text("app.json")) if "app.json" in tree else {}
    return app if isinstance(app, dict) else {}


def pages_complete(tree: FileTree) -> list[Problem]:
    """Every page in app.json has its .axml, .acss, .js and .json."""
    if "app.json" not in tree:
        return [Problem("app.json is missing", file="app.json")]
    problems: list[Problem] = []
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
    problems: list[Problem] = []
    if not 2 <= len(items) <= 5:
        problems.append(Problem(f"tabBar has {len(items)} items; Alipay needs 2 to 5", file="app.json"))
    for item in items:
        if item.get("pagePath") not in app.get("pages", []):
            problems.append(Problem(f"tabBar item '{item.get('name')}' points at missing page "
                                    f"'{item.get('pagePath')}'", file="app.json"))
    return problems


def json_parses(tree: FileTree) -> list[Problem]:
    problems: list[Problem] = []
    for path in tree:
        if path.endswith(".json"):
            try:
                json.loads(tree.text(path))
            except ValueError as exc:
                problems.append(Problem(f"invalid JSON: {exc}", file=path))
    return problems


# The per-file rules depend on nothing but the file: a rebuild re-checks changed files
# only. Keyed by the tree's own bytes objects, so the caches hold no copies.
@lru_cache(maxsize=4096)
def _tag_problems(path: str, content: bytes) -> tuple[Problem, ...]:
    """AXML is XML-like: every tag ends with '>' and closes or self-closes, in order, and
    every comment ends."""
    text = content.decode("utf-8")
    problems: list[Problem] = []
    stack: list[tuple[str, int]] = []
    for kind, name, _, start, _ in axml.tokens(text):
        if kind == axml.OPEN:
            stack.append((name, start))
            continue
        if kind != axml.CLOSE:
            if kind == axml.CUT:
                line, col = line_and_column(text, start)
                problems.append(Problem(axml.cut_message(name), file=path, line=line, column=col))
            continue
        if stack and stack[-1][0] == name:
            stack.pop()
            continue
        line, col = line_and_column(text, start)
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
    problems: list[Problem] = []
    for path in tree:
        if path.endswith(".axml"):
            problems.extend(_tag_problems(path, tree[path]))
    return problems


def bindings_clean(tree: FileTree) -> list[Problem]:
    """Every `{{…}}` in AXML is an expression of the binding grammar (builder/expr.py):
    no merchant text turned into code, nothing the preview could not show."""
    return [problem for path in tree if path.endswith(".axml") for problem in _binding_problems(path, tree[path])]


MERCHANT_TEXT_HINT = "bind merchant text through page data"


@lru_cache(maxsize=4096)
def _binding_problems(path: str, content: bytes) -> tuple[Problem, ...]:
    text = content.decode("utf-8")
    problems: list[Problem] = []
    for start, body in axml.bindings(text):
        if body is None:
            line, col = line_and_column(text, start)
            problems.append(Problem(f"stray '{text[start:start + 2]}' in AXML: {MERCHANT_TEXT_HINT}",
                                    file=path, line=line, column=col))
            continue
        try:
            expr.parse(body)
        except expr.ExprError as exc:
            line, col = line_and_column(text, start)
            reason = exc.reason
            if exc.pos is not None:
                reason += " at {}:{}".format(*line_and_column(text, start + 2 + exc.pos))
            problems.append(Problem(f"{_shorten(body)} is not a valid binding expression: {reason}",
                                    file=path, line=line, column=col, hint=MERCHANT_TEXT_HINT))
    return tuple(problems)


def _shorten(body: str, limit: int = 40) -> str:
    """A binding as quoted in a message: on one line, long ones cut in the middle."""
    flat = re.sub(r"\s+", " ", body)
    if len(flat) > limit:
        flat = f"{flat[:limit // 2]}…{flat[-limit // 2:]}"
    return "{{" + flat + "}}"


def paths_safe(tree: FileTree) -> list[Problem]:
    """Output paths are plain relative segments that work in every Alipay tool."""
    return [Problem("output file name is not a safe path; use ASCII letters, digits, '-', '_' and '.'",
                    file=path)
            for path in tree if not SAFE_PATH.match(path) or ".." in path.split("/")]


def assets_exist(tree: FileTree) -> list[Problem]:
    problems: list[Problem] = []
    for path in tree:
        if path.endswith((".axml", ".js", ".json", ".acss")):
            for asset in _asset_refs(tree[path]):
                if asset not in tree:
                    problems.append(Problem(f"references missing asset {asset}", file=path))
    return problems


@lru_cache(maxsize=8192)
def _asset_refs(content: bytes) -> tuple[str, ...]:
    return tuple(match.group(1) for match in ASSET_REF.finditer(content.decode("utf-8")))


def requires_resolve(tree: FileTree) -> list[Problem]:
    """Every `require('./x')` in generated JS names a file of the output (relative to the
    requiring file, or to the package root for '/x'; '.js' may be left out): a build
    must not leave a page calling a module that was never generated."""
    problems: list[Problem] = []
    for path in tree:
        if path.endswith(".js"):
            for target, line, col in _requires(tree[path]):
                missing = _missing_module(tree, path, target)
                if missing:
                    problems.append(Problem(f"require('{target}'): {missing}", file=path, line=line, column=col))
    return problems


@lru_cache(maxsize=8192)
def _requires(content: bytes) -> tuple[tuple[str, int, int], ...]:
    text = content.decode("utf-8")
    return tuple((match.group(1) or match.group(2), *line_and_column(text, match.start()))
                 for match in REQUIRE.finditer(text))


def _missing_module(tree: FileTree, path: str, target: str) -> str | None:
    """Why `require(target)` in `path` finds no file, or None when it finds one."""
    joined = target if target.startswith("/") else posixpath.join(posixpath.dirname(path), target)
    resolved = posixpath.normpath(joined).lstrip("/")
    if resolved == ".." or resolved.startswith("../"):
        return "the path leads out of the mini-program's folder"
    if resolved in tree or f"{resolved}.js" in tree:
        return None
    return f"{resolved if resolved.endswith('.js') else resolved + '.js'} is not in the output"


CORE_CHECKS = [pages_complete, tabbar_valid, json_parses, axml_well_formed, bindings_clean,
               paths_safe, assets_exist, requires_resolve]
