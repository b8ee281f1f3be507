"""Mini-program codes (小程序码) that `mpforge qrcodes` made, as the build finds them.

`mpforge qrcodes` (builder/serve/qrcodes.py) asks Alipay (alipay.open.app.qrcode.create)
for each entry point's code and keeps it in the project's state folder (`.mpforge/`
beside the spec): `qrcodes.json` records each code under a digest of what Alipay was
asked (`CodeRequest.key`), so renaming an entry point keeps its code and changing what
it opens asks for a new one; `qrcodes/<key>.png` holds the image. The build only reads
these files: it never calls Alipay, and the same files give the same output. Codes from
the sandbox gateway are kept apart, under `sandbox/`, and never reach a build.
"""

from __future__ import annotations

import base64
import hashlib
import json
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

from builder.plugin_api import page_path

from .models import EntryPoint

CACHE_FORMAT = 1
CACHE_FILE = "qrcodes.json"
IMAGES = "qrcodes"
SANDBOX = "sandbox"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@dataclass(frozen=True)
class CodeRequest:
    """What alipay.open.app.qrcode.create is asked for one entry point. `key` names its
    code in the cache: equal requests share one code."""

    appid: str
    url_param: str
    query_param: str
    describe: str

    @classmethod
    def for_entry(cls, appid: str, entry: EntryPoint) -> CodeRequest:
        return cls(appid=appid, url_param=page_path(entry.page), query_param=entry.full_query,
                   describe=entry.description)

    @property
    def key(self) -> str:
        text = json.dumps([self.appid, self.url_param, self.query_param, self.describe], ensure_ascii=False)
        return hashlib.sha256(text.encode("utf-8")).hexdigest()[:32]


def cache_folder(state_dir: Path, *, sandbox: bool) -> Path:
    """Where codes are kept: the state folder, or its `sandbox/` for sandbox codes."""
    return state_dir / SANDBOX if sandbox else state_dir


def read_cache(folder: Path) -> dict[str, dict[str, Any]]:
    """The cached codes by key; empty when there is no cache yet. ValueError when the
    file is not a cache mpforge wrote."""
    path = folder / CACHE_FILE
    try:
        data = json.loads(path.read_text("utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"{path} cannot be read: {exc}") from None
    if not isinstance(data, dict) or data.get("format") != CACHE_FORMAT or not isinstance(data.get("codes"), dict):
        raise ValueError(f"{path} is not a code cache of format {CACHE_FORMAT}")
    codes: dict[str, dict[str, Any]] = data["codes"]
    return codes


def cached_png(folder: Path, codes: dict[str, dict[str, Any]], request: CodeRequest) -> bytes | None:
    """The image of `request`'s code, when the cache holds one whose bytes are the ones
    recorded (a file edited or cut short by hand does not count)."""
    record = codes.get(request.key)
    if not isinstance(record, dict) or not isinstance(record.get("image"), str):
        return None
    image: str = record["image"]
    try:
        data = (folder / IMAGES / image).read_bytes()
    except OSError:
        return None
    if hashlib.sha256(data).hexdigest() != record.get("sha256") or not is_png(data):
        return None
    return data


def is_png(data: bytes) -> bool:
    """A PNG signature, then the IHDR chunk with the image's size."""
    return len(data) > 24 and data.startswith(PNG_SIGNATURE) and data[12:16] == b"IHDR"


def png_size(data: bytes) -> tuple[int, int]:
    """(width, height) in pixels, from the PNG's IHDR chunk."""
    width, height = struct.unpack(">II", data[16:24])
    return int(width), int(height)


def _image(data: bytes, x: float, y: float, size: float) -> str:
    uri = "data:image/png;base64," + base64.b64encode(data).decode("ascii")
    # Pixelated: a QR code scaled up must keep hard module edges.
    return (f'<image x="{x}" y="{y}" width="{size}" height="{size}" preserveAspectRatio="xMidYMid meet" '
            f'image-rendering="optimizeSpeed" style="image-rendering:pixelated" href="{uri}"/>')


def code_svg(png: bytes, caption: str) -> str:
    """The build's SVG of a real code: the image at its own size, `caption` under it."""
    width, height = png_size(png)
    side, band = max(width, height), 40
    return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{side}" height="{side + band}" '
            f'viewBox="0 0 {side} {side + band}"><rect width="100%" height="100%" fill="#fff"/>'
            f'{_image(png, 0, 0, side)}'
            f'<text x="{side // 2}" y="{side + 27}" font-family="sans-serif" font-size="18" text-anchor="middle" '
            f'fill="#000">{escape(caption)}</text></svg>\n')


A6 = (105, 148)  # millimetres


def print_svg(png: bytes, name: str, detail: str, *, warning: str = "") -> str:
    """A print-ready A6 card (105 x 148 mm): the code 85 mm wide, the entry point's name
    and `detail` under it, and `warning` in red when the code must not be printed."""
    width, height = A6
    lines = [(112.0, 7.0, "bold", "#000", name), (122.0, 4.5, "normal", "#444", detail)]
    if warning:
        lines.append((134.0, 4.5, "bold", "#c00", warning))
    texts = "".join(f'<text x="{width / 2}" y="{y}" font-family="sans-serif" font-size="{size}" '
                    f'font-weight="{weight}" text-anchor="middle" fill="{fill}">{escape(text)}</text>'
                    for y, size, weight, fill, text in lines if text)
    return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}mm" height="{height}mm" '
            f'viewBox="0 0 {width} {height}"><rect width="{width}" height="{height}" fill="#fff"/>'
            f'{_image(png, 10, 12, 85)}{texts}</svg>\n')
