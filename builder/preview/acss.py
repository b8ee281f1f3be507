"""ACSS -> CSS for the preview.

- `rpx` becomes `px`: 750 rpx is the width of the 375 px phone frame, so 1 rpx = 0.5 px.
- `vh` becomes a fraction of the phone screen (`--mp-vh`, set by the preview shell).
- Component type selectors (`page`, `view`, `text`, `image`, ...) become the classes the
  renderer gives those elements (`.mp-root`, `.mp-view`, ...).
- `@import` is dropped (mpforge's output has none; a project template might).

Strings and comments are respected; the converter never raises.
"""

from __future__ import annotations

import re
from collections.abc import Callable

FRAME_WIDTH = 375  # CSS px
RPX_PER_FRAME = 750
RPX = FRAME_WIDTH / RPX_PER_FRAME

# AXML component names that may appear as type selectors, and the class each gets.
COMPONENT_CLASSES = {name: f".mp-{name}" for name in (
    "view", "text", "image", "swiper-item", "swiper", "button", "navigator", "scroll-view", "icon",
    "lifestyle", "web-view", "contact-button", "movable-area", "movable-view", "cover-view", "cover-image", "rich-text",
    "progress", "input", "textarea", "label", "form", "picker", "switch", "slider", "checkbox", "radio",
    "map", "canvas", "video")}
COMPONENT_CLASSES["page"] = ".mp-root"

_SELECTOR_NAME = re.compile(
    r"(?<![\w\-.#:\[=\"'@%])(" + "|".join(sorted(map(re.escape, COMPONENT_CLASSES), key=len, reverse=True))
    + r")(?![\w-])")
_RPX = re.compile(r"(?<![\w.#-])(-?(?:\d+\.?\d*|\.\d+))rpx\b", re.IGNORECASE)
_VH = re.compile(r"(?<![\w.#-])(-?(?:\d+\.?\d*|\.\d+))vh\b", re.IGNORECASE)


def px(rpx: float) -> str:
    value = round(rpx * RPX, 3)
    return f"{value:g}px"


def convert_units(text: str) -> str:
    """rpx -> px and vh -> the screen's vh, outside strings."""
    def units(chunk: str) -> str:
        chunk = _RPX.sub(lambda m: px(float(m.group(1))), chunk)
        return _VH.sub(lambda m: f"calc({float(m.group(1)):g} * var(--mp-vh, 1vh))", chunk)

    return _outside_strings(text, units)


def rewrite_selector(selector: str) -> str:
    return _outside_strings(selector, lambda chunk: _SELECTOR_NAME.sub(
        lambda m: COMPONENT_CLASSES[m.group(1)], chunk))


def _outside_strings(text: str, func: Callable[[str], str]) -> str:
    out, pos = [], 0
    for match in re.finditer(r"\"(?:\\.|[^\"\\])*\"|'(?:\\.|[^'\\])*'", text):
        out.append(func(text[pos:match.start()]))
        out.append(match.group())
        pos = match.end()
    out.append(func(text[pos:]))
    return "".join(out)


def acss_to_css(source: str) -> str:
    """Convert a stylesheet; see the module docstring."""
    text = re.sub(r"/\*.*?(\*/|\Z)", "", source, flags=re.DOTALL)
    out: list[str] = []
    # Each open block is "rules" (its preludes are selectors or at-rules), "keyframes"
    # (preludes are percentages) or "decls" (declarations).
    stack: list[str] = ["rules"]
    i, start, n = 0, 0, len(text)
    while i < n:
        ch = text[i]
        if ch in "\"'":
            match = re.compile(r"\"(?:\\.|[^\"\\])*\"|'(?:\\.|[^'\\])*'").match(text, i)
            i = match.end() if match else n
            continue
        if ch == ";" and stack[-1] != "decls":
            prelude = text[start:i].strip()
            if prelude and not prelude.lower().startswith("@import"):
                out.append(convert_units(prelude) + ";")
            start = i = i + 1
            continue
        if ch == "{":
            prelude = text[start:i].strip()
            context = stack[-1]
            if context == "decls":  # a nested block inside declarations: keep as is
                out.append(convert_units(text[start:i + 1]))
                stack.append("decls")
            elif prelude.startswith("@"):
                keyword = prelude[1:].split(None, 1)[0].lower() if len(prelude) > 1 else ""
                out.append(convert_units(prelude) + " {")
                if keyword.endswith("keyframes"):
                    stack.append("keyframes")
                elif keyword in ("media", "supports", "layer", "container", "document"):
                    stack.append("rules")
                else:  # @font-face, @page ...
                    stack.append("decls")
            elif context == "keyframes":
                out.append(prelude + " {")
                stack.append("decls")
            else:
                out.append(convert_units(rewrite_selector(prelude)) + " {")
                stack.append("decls")
            start = i = i + 1
            continue
        if ch == "}":
            if len(stack) > 1:
                if stack[-1] == "decls":
                    out.append(convert_units(text[start:i]))
                stack.pop()
                out.append("}")
            start = i = i + 1
            continue
        i += 1
    if stack[-1] == "decls" and start < n:
        out.append(convert_units(text[start:]))
    out.extend("}" for _ in stack[1:])
    return "".join(_tidy(out))


def _tidy(parts: list[str]) -> list[str]:
    """Newlines after closing braces, so the CSS stays readable in the browser's tools."""
    return [part + "\n" if part == "}" else part for part in parts]
