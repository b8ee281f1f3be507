"""The preview of one build, read from the same FileTree that is written.

`PreviewApp(tree)` parses the generated `app.json`; each page's preview (HTML from its
`.axml` and the data in its `.js`, CSS from its `.acss`, window settings from its
`.json`) is rendered on first request and cached. Given the previous `PreviewApp`, a
new one reuses every page whose files did not change and can say which pages did,
so a rebuild re-renders only what the browser is looking at.
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

from ..filetree import FileTree
from .acss import acss_to_css
from .axml import Document, parse_axml
from .renderer import PageRenderer

STATIC_DIR = Path(__file__).parent / "static"
PAGE_SUFFIXES = (".axml", ".js", ".json", ".acss")
_PAGE_DATA = re.compile(r"\bPage\s*\(\s*\{\s*data\s*:\s*")


def static_text(name: str) -> str:
    return (STATIC_DIR / name).read_text("utf-8")


def read_page_data(js: str) -> dict[str, Any] | None:
    """The `data: {...}` object of a generated page script (JSON), or None."""
    match = _PAGE_DATA.search(js)
    if not match:
        return None
    try:
        value, _ = json.JSONDecoder().raw_decode(js, match.end())
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def text_color_for(background: str) -> str:
    """Black or white title text, whichever reads better on `background` (#rgb/#rrggbb)."""
    match = re.fullmatch(r"#([0-9a-fA-F]{3}|[0-9a-fA-F]{6})", background or "")
    if not match:
        return "#000000"
    hexa = match.group(1)
    if len(hexa) == 3:
        hexa = "".join(c * 2 for c in hexa)
    r, g, b = (int(hexa[i:i + 2], 16) for i in (0, 2, 4))
    luminance = 0.299 * r + 0.587 * g + 0.114 * b
    return "#000000" if luminance > 160 else "#ffffff"


def _color(value: Any, default: str) -> str:
    text = value if isinstance(value, str) else ""
    return text if re.fullmatch(r"#[0-9a-fA-F]{3,8}|[a-zA-Z]{1,30}", text) else default


@dataclass
class PageInfo:
    path: str  # "pages/home/home"
    title: str
    tab: bool
    key: str  # digest of the page's own files


@dataclass
class _Cache:
    app_css: tuple[str, str] | None = None  # (digest, css)
    pages: dict[str, tuple[str, dict[str, Any]]] = field(default_factory=dict)  # path -> (key, model)
    documents: dict[str, Document] = field(default_factory=dict)  # path -> its parsed AXML (setData renders)


class PreviewApp:
    def __init__(self, tree: FileTree, *, asset_prefix: str = "app/", version: int = 0,
                 previous: PreviewApp | None = None):
        self.tree = tree
        self.asset_prefix = asset_prefix
        self.version = version
        self.lock = threading.Lock()
        self.warnings: list[str] = []
        self.referenced: set[str] = set()  # app files the rendered pages use (for the static copy)
        self.digests = {path: hashlib.sha256(data).hexdigest() for path, data in tree.items()}
        self.app_json = self._json("app.json") or {}
        page_paths = [p for p in self.app_json.get("pages", []) if isinstance(p, str)]
        self.tab_paths = [i.get("pagePath") for i in self.tab_bar.get("items", []) if isinstance(i, dict)]
        page_files = {f"{p}{suffix}" for p in page_paths for suffix in PAGE_SUFFIXES}
        # Anything outside the pages (app.json, app.acss, assets) can change every page.
        shared = hashlib.sha256()
        for path in sorted(self.digests):
            if path not in page_files:
                shared.update(f"{path}\0{self.digests[path]}\n".encode())
        self.app_key = shared.hexdigest()
        self.pages: list[PageInfo] = []
        for path in page_paths:
            own = hashlib.sha256("".join(self.digests.get(path + s, "-") for s in PAGE_SUFFIXES).encode())
            page_json = self._json(path + ".json") or {}
            title = page_json.get("defaultTitle") or self.window.get("defaultTitle") or path.rsplit("/", 1)[-1]
            self.pages.append(PageInfo(path, str(title), path in self.tab_paths, own.hexdigest()))
        self.by_path = {p.path: p for p in self.pages}
        self._cache = _Cache()
        if previous is not None and previous.app_key == self.app_key and previous.asset_prefix == asset_prefix:
            with previous.lock:
                self._cache.app_css = previous._cache.app_css
                for path, (key, model) in previous._cache.pages.items():
                    if path in self.by_path and self.by_path[path].key == key:
                        self._cache.pages[path] = (key, model)
                self.referenced |= previous.referenced

    # --- reading the tree -------------------------------------------------------------

    def _json(self, path: str) -> dict[str, Any] | None:
        if path not in self.tree:
            return None
        try:
            value = json.loads(self.tree.text(path))
        except ValueError:
            if f"{path} is not valid JSON" not in self.warnings:  # read again by each render
                self.warnings.append(f"{path} is not valid JSON")
            return None
        return value if isinstance(value, dict) else None

    @property
    def window(self) -> dict[str, Any]:
        window = self.app_json.get("window")
        return window if isinstance(window, dict) else {}

    @property
    def tab_bar(self) -> dict[str, Any]:
        tab = self.app_json.get("tabBar")
        return tab if isinstance(tab, dict) else {}

    def asset_url(self, path: str) -> str | None:
        if path not in self.tree:
            return None
        self.referenced.add(path)
        return f"{self.asset_prefix}{quote(path)}?v={self.digests[path][:10]}"

    def scripts(self) -> dict[str, str]:
        """Every JavaScript file of the build with a short digest of its content: what
        `mpforge dev`'s runtime loads (and reloads when a digest changes)."""
        return {path: digest[:12] for path, digest in sorted(self.digests.items()) if path.endswith(".js")}

    def changes_since(self, previous: PreviewApp | None) -> tuple[bool, list[str]]:
        """(whether app-wide files changed, the pages whose own files changed)."""
        if previous is None:
            return True, [p.path for p in self.pages]
        old = {p.path: p.key for p in previous.pages}
        changed = [p.path for p in self.pages if old.get(p.path) != p.key]
        app_changed = previous.app_key != self.app_key or [p.path for p in previous.pages] != [
            p.path for p in self.pages]
        return app_changed, changed

    # --- models for the shell ---------------------------------------------------------

    def app_css(self) -> str:
        digest = self.digests.get("app.acss", "")
        with self.lock:
            if self._cache.app_css and self._cache.app_css[0] == digest:
                return self._cache.app_css[1]
        css = acss_to_css(self.tree.text("app.acss")) if "app.acss" in self.tree else ""
        with self.lock:
            self._cache.app_css = (digest, css)
        return css

    def app_model(self) -> dict[str, Any]:
        tab = self.tab_bar
        items = []
        for item in tab.get("items", []):
            if isinstance(item, dict) and item.get("pagePath") in self.by_path:
                items.append({
                    "pagePath": item["pagePath"],
                    "name": str(item.get("name", "")),
                    "icon": self._icon(item.get("icon")),
                    "activeIcon": self._icon(item.get("activeIcon")),
                })
        window = self.window
        name = window.get("defaultTitle") or (self.pages[0].title if self.pages else "")
        return {
            "version": self.version,
            "name": str(name),
            "entry": self.pages[0].path if self.pages else None,
            "pages": [{"path": p.path, "title": p.title, "tab": p.tab} for p in self.pages],
            "tabBar": {
                "items": items,
                "textColor": _color(tab.get("textColor"), "#666666"),
                "selectedColor": _color(tab.get("selectedColor"), "#108ee9"),
                "backgroundColor": _color(tab.get("backgroundColor"), "#ffffff"),
            } if len(items) >= 2 else None,
            "css": self.app_css(),
            "baseCss": static_text("components.css"),
            "warnings": list(self.warnings),
        }

    def _icon(self, path: Any) -> str | None:
        return self.asset_url(path.lstrip("/")) if isinstance(path, str) and path else None

    def page_model(self, path: str) -> dict[str, Any] | None:
        """The preview of the page at `path`, or None when the app has no such page."""
        info = self.by_path.get(path)
        return None if info is None else self._page_model(info)

    def _page_model(self, info: PageInfo) -> dict[str, Any]:
        with self.lock:
            cached = self._cache.pages.get(info.path)
            if cached and cached[0] == info.key:
                return {**cached[1], "version": self.version}
        model = self._render_page(info)
        with self.lock:
            self._cache.pages[info.path] = (info.key, model)
        return {**model, "version": self.version}

    def _render_page(self, info: PageInfo) -> dict[str, Any]:
        path = info.path
        warnings: list[str] = []
        data = read_page_data(self.tree.text(path + ".js")) if path + ".js" in self.tree else None
        if data is None:
            warnings.append(f"{path}.js: the page data could not be read; bindings show empty")
            data = {}
        body, render_warnings = self._render_axml(path, data)
        warnings.extend(render_warnings)
        page_json = self._json(path + ".json") or {}
        css = acss_to_css(self.tree.text(path + ".acss")) if path + ".acss" in self.tree else ""
        window = {**self.window, **{k: v for k, v in page_json.items() if k != "usingComponents"}}
        bar = _color(window.get("titleBarColor"), "#ffffff")
        return {
            "path": path,
            "title": str(window.get("defaultTitle") or info.title),
            "tab": info.tab,
            "navBackground": bar,
            "navColor": text_color_for(bar),
            "background": _color(window.get("backgroundColor"), "#ffffff"),
            "html": body,
            "css": css,
            "warnings": warnings,
        }

    def _render_axml(self, path: str, data: dict[str, Any]) -> tuple[str, list[str]]:
        """The page's AXML rendered with `data`: (HTML, warnings)."""
        warnings: list[str] = []
        page_json = self._json(path + ".json") or {}
        components = page_json.get("usingComponents")
        renderer = PageRenderer(path, data, self.asset_url,
                                components if isinstance(components, dict) else {}, f"{path}.axml")
        if path + ".axml" not in self.tree:
            return "", [f"{path}.axml is missing"]
        with self.lock:
            document = self._cache.documents.get(path)
        if document is None:
            document = parse_axml(self.tree.text(path + ".axml"))
            with self.lock:
                self._cache.documents[path] = document
        warnings.extend(f"{path}.axml: {w}" for w in document.warnings)
        body = renderer.render(document.children)
        return body, warnings + renderer.warnings

    def render_with_data(self, path: str, data: dict[str, Any]) -> dict[str, Any] | None:
        """The page's HTML for `data` (what the runtime's setData produced), never cached:
        {html, warnings}; None when the app has no such page."""
        if path not in self.by_path:
            return None
        body, warnings = self._render_axml(path, data)
        return {"path": path, "html": body, "warnings": warnings}

    def all_page_models(self) -> dict[str, dict[str, Any]]:
        return {p.path: self._page_model(p) for p in self.pages}
