"""AXML + page data -> HTML for the preview.

Each mini-program component becomes a plain HTML element carrying the class `mp-<tag>`
(styled by `static/components.css`; ACSS type selectors are rewritten to those
classes). `a:if`/`a:elif`/`a:else`, `a:for` (with `a:for-item`, `a:for-index`, `a:key`)
and `block` work as in the mini-program; `{{ }}` goes through the safe evaluator.

Everything that reaches the HTML is escaped: text, every attribute value, the JSON of a
link. Event handler attributes (`onTap`, ...) are never copied as such: each becomes
`data-mp-on-<event>` (or `data-mp-catch-<event>`) naming the page's handler, and the
element's `data-*` attributes become one `data-mp-dataset` JSON object (keys camelCased,
values typed, as `event.currentTarget.dataset` has them). `mpforge dev`'s runtime
(static/runtime.js) calls the page's handlers from those; the static preview's shell
follows the resolved links (`data-mp-link`, `data-mp-nav`) and says what else would run.
Alipay's coupon plugin component (`get-coupon`) renders its content, marked
`data-mp-component="get-coupon"` with its `params`. An unknown tag renders as a labelled
placeholder with its children inside. Rendering never raises: a broken expression shows
as a marked `{{...}}` and is listed in `warnings`.
"""

from __future__ import annotations

import html
import json
import posixpath
import re
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

from .acss import convert_units
from .axml import Element, Node, Text, unescape_text
from .expr import (
    UNDEFINED,
    ExprError,
    Scope,
    display,
    evaluate,
    has_binding,
    interpolate,
    js_string,
    js_truthy,
    segments,
)

LIFESTYLE_NOTE = "：小程序首次发布并关联生活号前，真机与审核中此组件不显示"
MAX_NODES = 50_000  # elements rendered per page, loops included
MAX_LOOP = 5_000  # items one a:for renders
MAX_DEPTH = 80  # element nesting (the parser already flattens deeper markup)

KNOWN_TAGS = {"view", "text", "image", "swiper", "swiper-item", "button", "navigator", "scroll-view", "icon",
              "lifestyle", "web-view", "contact-button", "block"}
_CONTROL = {"a:if", "a:elif", "a:else", "a:for", "a:for-item", "a:for-index", "a:key", "a:for-items"}
_IMAGE_MODES = {"scaleToFill", "aspectFit", "aspectFill", "widthFix", "heightFix", "top", "bottom", "center",
                "left", "right", "top left", "top right", "bottom left", "bottom right"}
_ICON_GLYPHS = {"success": "✓", "success_no_circle": "✓", "info": "i", "warn": "!", "waiting": "…",
                "clear": "×", "cancel": "×", "download": "↓", "search": "⌕", "loading": "◌"}
# on/catch + an event name (onTap, catchTap, onGetCouponSuccess), and the older bind/catch lowercase forms.
_EVENT_ATTR = re.compile(r"(on|catch|bind)([A-Z][A-Za-z]*|(?<=bind)[a-z]+|(?<=catch)[a-z]+)")
COUPON_PLUGIN_COMPONENT = "plugin://couponPlugin/get-coupon"  # alipay-platform.md: Alipay's 领券组件
_SAFE_CSS_COLOR = re.compile(r"^(#[0-9a-fA-F]{3,8}|[a-zA-Z]{1,30}|rgba?\([\d\s.,%]+\)|hsla?\([\d\s.,%deg]+\))$")

AssetResolver = Callable[[str], "str | None"]


def esc(value: Any) -> str:
    return html.escape(value if isinstance(value, str) else display(value), quote=True)


class PageRenderer:
    """Renders one page. `asset_url(path)` maps an app-relative file path to a URL, or
    None when the app has no such file; `components` is the page's usingComponents."""

    def __init__(self, page_path: str, data: dict[str, Any], asset_url: AssetResolver,
                 components: dict[str, str] | None = None, source_name: str = ""):
        self.page_path = page_path
        self.scope = Scope(data if isinstance(data, dict) else {})
        self.asset_url = asset_url
        self.components = components or {}
        self.source_name = source_name or f"{page_path}.axml"
        self.warnings: list[str] = []
        self.nodes = 0
        self.depth = 0
        self._swiper_counts: list[int] = []

    # --- bookkeeping ---------------------------------------------------------------

    def warn(self, line: int, message: str) -> None:
        entry = f"{self.source_name}:{line}: {message}"
        if entry not in self.warnings and len(self.warnings) < 50:
            self.warnings.append(entry)

    def value(self, raw: str | None, scope: Scope, line: int, attr: str = "") -> Any:
        """An attribute's value: None (written bare) means true; bindings are evaluated."""
        if raw is None:
            return True
        if not has_binding(raw):
            return raw
        try:
            return interpolate(raw, scope)
        except ExprError as exc:
            self.warn(line, f"{attr + ': ' if attr else ''}cannot evaluate {raw!r}: {exc}")
            return UNDEFINED

    def attr(self, node: Element, name: str, scope: Scope) -> Any:
        """The value of attribute `name`, or undefined when the element does not have it."""
        if name not in node.attrs:
            return UNDEFINED
        return self.value(node.attrs[name], scope, node.line, name)

    def attr_text(self, node: Element, name: str, scope: Scope) -> str:
        return display(self.attr(node, name, scope))

    def flag(self, node: Element, name: str, scope: Scope) -> bool:
        return js_truthy(self.attr(node, name, scope))

    # --- tree walk -----------------------------------------------------------------

    def render(self, nodes: list[Node]) -> str:
        return self.children(nodes, self.scope)

    def children(self, nodes: list[Node], scope: Scope) -> str:
        out: list[str] = []
        chain_done: bool | None = None  # None: no a:if chain open
        for node in nodes:
            if isinstance(node, Text):
                if node.text.strip():
                    out.append(self.text(node, scope))
                    chain_done = None
                continue
            attrs = node.attrs
            if "a:elif" in attrs or "a:else" in attrs:
                if chain_done is None:
                    self.warn(node.line, f"<{node.tag}> has {'a:elif' if 'a:elif' in attrs else 'a:else'} "
                                         "without an a:if before it")
                    chain_done = False
                if chain_done:
                    continue
                if "a:elif" in attrs:
                    if "a:for" in attrs:
                        chain_done = self.loop(node, scope, out, condition="a:elif")
                        continue
                    if not js_truthy(self.value(attrs["a:elif"], scope, node.line, "a:elif")):
                        continue
                chain_done = True if "a:elif" in attrs else None
                out.append(self.loop_or_element(node, scope))
                continue
            if "a:if" in attrs:
                if "a:for" in attrs:
                    chain_done = self.loop(node, scope, out, condition="a:if")
                    continue
                chain_done = js_truthy(self.value(attrs["a:if"], scope, node.line, "a:if"))
                if chain_done:
                    out.append(self.element(node, scope))
                continue
            chain_done = None
            out.append(self.loop_or_element(node, scope))
        return "".join(out)

    def loop_or_element(self, node: Element, scope: Scope) -> str:
        if "a:for" in node.attrs or "a:for-items" in node.attrs:
            out: list[str] = []
            self.loop(node, scope, out)
            return "".join(out)
        return self.element(node, scope)

    def loop(self, node: Element, scope: Scope, out: list[str], condition: str | None = None) -> bool:
        """Render `node` once per item; `condition` (a:if / a:elif) is tested per item.
        Returns whether anything rendered (for a following a:else)."""
        attrs = node.attrs
        raw = attrs.get("a:for", attrs.get("a:for-items"))
        items = self.value(raw, scope, node.line, "a:for")
        item_name = attrs.get("a:for-item") or "item"
        index_name = attrs.get("a:for-index") or "index"
        if isinstance(items, dict):
            pairs = list(items.items())
        elif isinstance(items, (list, str)):
            pairs = list(enumerate(items))
        elif isinstance(items, int) and not isinstance(items, bool) and items > 0:
            pairs = [(i, i) for i in range(items)]
        else:
            if items not in (None, UNDEFINED, False, True) and items != "":
                self.warn(node.line, f"a:for over {js_string(items)!r}, not a list")
            pairs = []
        if len(pairs) > MAX_LOOP:
            self.warn(node.line, f"a:for has {len(pairs)} items; the preview shows the first {MAX_LOOP}")
            pairs = pairs[:MAX_LOOP]
        rendered = False
        for index, item in pairs:
            inner = scope.child({item_name: item, index_name: index})
            if condition and not js_truthy(self.value(attrs[condition], inner, node.line, condition)):
                continue
            rendered = True
            out.append(self.element(node, inner))
        return rendered

    def text(self, node: Text, scope: Scope) -> str:
        raw = unescape_text(node.text)
        if not has_binding(raw):
            return esc(raw)
        out = []
        for is_expr, body in segments(raw):
            if not is_expr:
                out.append(esc(body))
                continue
            try:
                out.append(esc(display(evaluate(body, scope))))
            except ExprError as exc:
                self.warn(node.line, f"cannot evaluate {{{{{body}}}}}: {exc}")
                out.append(f'<span class="mp-expr-error" title="{esc(str(exc))}">{esc("{{" + body + "}}")}</span>')
        return "".join(out)

    def element(self, node: Element, scope: Scope) -> str:
        self.nodes += 1
        if self.nodes > MAX_NODES:
            if self.nodes == MAX_NODES + 1:
                self.warn(node.line, f"more than {MAX_NODES} elements; the rest is not shown")
            return ""
        if self.depth >= MAX_DEPTH:
            self.warn(node.line, "elements nested too deeply; the rest is not shown")
            return ""
        self.depth += 1
        try:
            if node.tag == "block":
                return self.children(node.children, scope)
            method = getattr(self, "tag_" + node.tag.replace("-", "_"), None) if node.tag in KNOWN_TAGS else None
            return method(node, scope) if method else self.unknown(node, scope)
        finally:
            self.depth -= 1

    # --- shared attributes -----------------------------------------------------------

    def common(self, node: Element, scope: Scope, *extra_classes: str, style: str = "",
               base: str = "") -> list[str]:
        """class, style, id, hidden, event handlers and dataset, as escaped HTML attributes."""
        attrs = node.attrs
        classes = [base or f"mp-{node.tag}", *extra_classes]
        user_class = self.attr_text(node, "class", scope)
        classes.extend(user_class.split())
        out = [f'class="{esc(" ".join(classes))}"']
        user_style = self.attr_text(node, "style", scope)
        full_style = "; ".join(s for s in (style, convert_units(user_style).strip().rstrip(";")) if s)
        if full_style:
            out.append(f'style="{esc(full_style)}"')
        if "id" in attrs:
            out.append(f'id="{esc(self.attr_text(node, "id", scope))}"')
        if self.flag(node, "hidden", scope):
            out.append("hidden")
        out.extend(self.events(node, scope))
        return out

    def events(self, node: Element, scope: Scope) -> list[str]:
        """The element's event handlers and dataset, as data-mp-* attributes."""
        out: list[str] = []
        for name, raw in node.attrs.items():
            match = _EVENT_ATTR.fullmatch(name)
            if match is None or not raw:
                continue
            kind = "catch" if match.group(1).lower() == "catch" else "on"
            handler = display(self.value(raw, scope, node.line, name))
            out.append(f'data-mp-{kind}-{match.group(2).lower()}="{esc(handler)}"')
        dataset = {_dataset_key(k[5:]): _plain(self.value(v, scope, node.line, k)) for k, v in node.attrs.items()
                   if k.startswith("data-") and len(k) > 5}
        if dataset:
            out.append(f'data-mp-dataset="{esc(json.dumps(dataset, ensure_ascii=False, default=str))}"')
        # The static preview (no page JS) follows a link resolved at build time itself.
        if node.attrs.get("onTap") == "onTapLink" and isinstance(dataset.get("link"), dict):
            out.append(f'data-mp-link="{esc(json.dumps(dataset["link"], ensure_ascii=False))}"')
        return out

    def open(self, tag: str, attrs: list[str]) -> str:
        return f"<{tag} {' '.join(attrs)}>" if attrs else f"<{tag}>"

    def inner(self, node: Element, scope: Scope) -> str:
        return self.children(node.children, scope)

    # --- components -------------------------------------------------------------------

    def tag_view(self, node: Element, scope: Scope) -> str:
        return self.open("div", self.common(node, scope)) + self.inner(node, scope) + "</div>"

    def tag_text(self, node: Element, scope: Scope) -> str:
        return self.open("span", self.common(node, scope)) + self.inner(node, scope) + "</span>"

    def tag_image(self, node: Element, scope: Scope) -> str:
        mode = self.attr_text(node, "mode", scope) or "scaleToFill"
        if mode not in _IMAGE_MODES:
            mode = "scaleToFill"
        attrs = self.common(node, scope, f"mp-image-{mode.replace(' ', '-')}")
        src = self.src(node, scope)
        if src:
            attrs.append(f'src="{esc(src)}"')
        attrs.append('alt=""')
        return self.open("img", attrs)

    def src(self, node: Element, scope: Scope) -> str | None:
        raw = self.attr(node, "src", scope)
        if not isinstance(raw, str) or not raw.strip():
            return None
        raw = raw.strip()
        parts = urlsplit(raw)
        if parts.scheme in ("http", "https"):
            return raw
        if parts.scheme == "data" and raw.lower().startswith("data:image/") and not raw.lower().startswith(
                "data:image/svg"):
            return raw
        if parts.scheme or parts.netloc:
            self.warn(node.line, f"image source {raw[:60]!r} is not shown in the preview")
            return None
        base = posixpath.dirname(self.page_path)
        path = posixpath.normpath(parts.path.lstrip("/") if parts.path.startswith("/")
                                  else posixpath.join(base, parts.path))
        url = self.asset_url(path) if not path.startswith("..") else None
        if url is None:
            self.warn(node.line, f"image {raw[:80]!r} is not in the output")
        return url

    def tag_swiper(self, node: Element, scope: Scope) -> str:
        vertical = self.flag(node, "vertical", scope)
        style = []
        for attr, var in (("indicator-color", "--mp-dot"), ("indicator-active-color", "--mp-dot-active")):
            color = self.attr_text(node, attr, scope)
            if color and _SAFE_CSS_COLOR.match(color):
                style.append(f"{var}: {color}")
        attrs = self.common(node, scope, *(["mp-swiper-vertical"] if vertical else []), style="; ".join(style))
        for attr in ("autoplay", "circular"):
            if self.flag(node, attr, scope):
                attrs.append(f"data-mp-{attr}")
        if "interval" in node.attrs:
            attrs.append(f'data-mp-interval="{esc(self.attr_text(node, "interval", scope))}"')
        self._swiper_counts.append(0)
        try:
            items = self.inner(node, scope)
        finally:
            count = self._swiper_counts.pop()
        dots = ""
        if self.flag(node, "indicator-dots", scope):
            dots = ('<div class="mp-swiper-dots">'
                    + "".join(f'<span class="mp-swiper-dot{" mp-swiper-dot-active" if i == 0 else ""}"></span>'
                              for i in range(count)) + "</div>")
        return self.open("div", attrs) + f'<div class="mp-swiper-track">{items}</div>{dots}</div>'

    def tag_swiper_item(self, node: Element, scope: Scope) -> str:
        if self._swiper_counts:
            self._swiper_counts[-1] += 1
        return self.open("div", self.common(node, scope)) + self.inner(node, scope) + "</div>"

    def tag_scroll_view(self, node: Element, scope: Scope) -> str:
        flags = []
        for axis in ("x", "y"):
            attr = f"scroll-{axis}"
            on = self.flag(node, attr, scope)
            flags.append(f"overflow-{axis}: {'auto' if on else 'hidden'}")
        return (self.open("div", self.common(node, scope, style="; ".join(flags)))
                + self.inner(node, scope) + "</div>")

    def tag_button(self, node: Element, scope: Scope) -> str:
        kind = self.attr_text(node, "type", scope) or "default"
        size = self.attr_text(node, "size", scope) or "default"
        classes = [f"mp-button-{kind if kind in ('primary', 'default', 'warn') else 'default'}",
                   f"mp-button-size-{size if size in ('mini', 'default') else 'default'}"]
        if self.flag(node, "plain", scope):
            classes.append("mp-button-plain")
        if self.flag(node, "loading", scope):
            classes.append("mp-button-loading")
        attrs = ['type="button"', *self.common(node, scope, *classes)]
        if self.flag(node, "disabled", scope):
            attrs.append("disabled")
        return self.open("button", attrs) + self.inner(node, scope) + "</button>"

    def tag_navigator(self, node: Element, scope: Scope) -> str:
        url = self.attr_text(node, "url", scope)
        open_type = self.attr_text(node, "open-type", scope) or "navigate"
        attrs = self.common(node, scope)
        target = {"url": url, "openType": open_type}
        attrs.append(f'data-mp-nav="{esc(json.dumps(target, ensure_ascii=False))}"')
        attrs.append('role="link"')
        return self.open("a", attrs) + self.inner(node, scope) + "</a>"

    def tag_icon(self, node: Element, scope: Scope) -> str:
        kind = self.attr_text(node, "type", scope)
        size_raw = self.attr_text(node, "size", scope) or "23"
        try:
            size = max(1.0, min(float(convert_units(size_raw).removesuffix("px")), 200.0))
        except ValueError:
            size = 23.0
        color = self.attr_text(node, "color", scope)
        style = f"width: {size:g}px; height: {size:g}px; font-size: {size * 0.7:g}px"
        if color and _SAFE_CSS_COLOR.match(color):
            style += f"; background-color: {color}"
        attrs = self.common(node, scope, f"mp-icon-{re.sub(r'[^a-z_]', '', kind)}", style=style)
        attrs.append(f'title="icon {esc(kind)}"')
        return self.open("span", attrs) + esc(_ICON_GLYPHS.get(kind, "•")) + "</span>"

    def tag_lifestyle(self, node: Element, scope: Scope) -> str:
        public_id = self.attr_text(node, "public-id", scope)
        memo = self.attr_text(node, "memo", scope)
        attrs = self.common(node, scope)
        # Alipay's component shows nothing until the app has been published once and the
        # life account linked to it: the preview says so, as the merchant would otherwise
        # see a follow button that the IDE and the first review do not.
        attrs.append(f'title="{esc("生活号 life account " + public_id + LIFESTYLE_NOTE)}"')
        attrs.append(f'data-mp-public-id="{esc(public_id)}"')
        memo_html = f'<span class="mp-lifestyle-memo">{esc(memo)}</span>' if memo else ""
        return (self.open("div", attrs) + '<span class="mp-lifestyle-badge">生活号</span>' + memo_html
                + '<span class="mp-lifestyle-follow" role="button">+ 关注</span></div>')

    def tag_contact_button(self, node: Element, scope: Scope) -> str:
        """Alipay's 智能客服 button: its icon in the colour and size given; the chat itself
        is Alipay's (enterprise accounts only), so the preview names what it would open."""
        size = self.attr_text(node, "size", scope)
        px = int(size) if size.isdigit() and 0 < int(size) <= 200 else 25
        color = self.attr_text(node, "color", scope)
        style = f"width: {px}px; height: {px}px; line-height: {px}px; font-size: {max(8, px // 2)}px"
        if re.fullmatch(r"#[0-9A-Fa-f]{3,8}", color):
            style += f"; background-color: {color}"
        attrs = self.common(node, scope, style=style)
        what = (f"智能客服 contact-button: tnt-inst-id {self.attr_text(node, 'tnt-inst-id', scope)}, scene "
                f"{self.attr_text(node, 'scene', scope)} (enterprise Alipay accounts only; the chat is Alipay's)")
        attrs.append(f'title="{esc(what)}"')
        return self.open("span", attrs) + "客服</span>"

    def tag_web_view(self, node: Element, scope: Scope) -> str:
        src = self.attr_text(node, "src", scope)
        shown = src or "(address set when the page opens)"
        return (self.open("div", self.common(node, scope)) + '<span class="mp-placeholder-label">web-view</span>'
                + f'<span class="mp-web-view-src">{esc(shown)}</span></div>')

    def get_coupon(self, node: Element, scope: Scope) -> str:
        """Alipay's coupon plugin component: its content (the merchant's button), marked
        with its params for the runtime, which emulates a successful claim on a tap."""
        attrs = self.common(node, scope, base="mp-get-coupon")
        attrs.append('data-mp-component="get-coupon"')
        params = json.dumps(_plain(self.attr(node, "params", scope)), ensure_ascii=False, default=str)
        attrs.append(f'data-mp-params="{esc(params)}"')
        attrs.append(f'title="{esc("领券组件 " + str(self.components.get(node.tag, node.tag)))}"')
        return self.open("div", attrs) + self.inner(node, scope) + "</div>"

    def unknown(self, node: Element, scope: Scope) -> str:
        source = self.components.get(node.tag)
        if source == COUPON_PLUGIN_COMPONENT or (source is None and node.tag == "get-coupon"):
            return self.get_coupon(node, scope)
        if source:
            label = f"{'plugin ' if str(source).startswith('plugin://') else ''}component <{node.tag}> ({source})"
        else:
            label = f"<{node.tag}>"
            self.warn(node.line, f"<{node.tag}> is not a component the preview knows; shown as a placeholder")
        attrs = self.common(node, scope, "mp-placeholder", base="mp-unknown")
        attrs.append(f'data-mp-tag="{esc(node.tag)}"')
        return (self.open("div", attrs) + f'<span class="mp-placeholder-label">{esc(label)}</span>'
                + self.inner(node, scope) + "</div>")


def _dataset_key(name: str) -> str:
    """`data-coupon-id` -> dataset key `couponId`, as the mini-program names it."""
    head, *rest = name.split("-")
    return head + "".join(part[:1].upper() + part[1:] for part in rest)


def _plain(value: Any) -> Any:
    """Data made JSON-safe for an attribute (undefined becomes null)."""
    if value is UNDEFINED:
        return None
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, float) and (value != value or value in (float("inf"), float("-inf"))):
        return None
    return value
